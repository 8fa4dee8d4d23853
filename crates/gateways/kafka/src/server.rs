//! The Kafka protocol on the gateway kit's listener: the kit accepts (a slot is taken before
//! `accept`, so past the limit new clients wait in the kernel's backlog), registers each
//! connection, gives it a share of the listener's memory budget, and drains on shutdown; this
//! module only says how a Kafka connection is served.

use std::sync::Arc;
use std::time::Duration;

use porter_core::Broker;
use porter_gateway_kit::limits::LimitsError;
use porter_gateway_kit::{CloseReason, Connection, Drained, Listener, Protocol, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::Context;
use crate::config::KafkaConfig;
use crate::connection;

/// The Kafka wire protocol, as the kit's listener serves it.
pub struct KafkaProtocol {
    ctx: Arc<Context>,
}

impl KafkaProtocol {
    pub fn new(broker: Arc<Broker>, config: KafkaConfig) -> Self {
        KafkaProtocol {
            ctx: Arc::new(Context::new(broker, config)),
        }
    }
}

impl Protocol for KafkaProtocol {
    async fn serve<S: Stream>(&self, stream: S, conn: &Connection) -> CloseReason {
        connection::run(stream, conn, self.ctx.clone()).await
    }
}

/// Serves until `shutdown` is cancelled, then lets open connections answer what they have read
/// (bounded by `drain_timeout`). Kafka has no goodbye message: a connection asked to close
/// stops reading, answers its in-flight requests and closes.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: KafkaConfig,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> Result<Drained, LimitsError> {
    let listener = kafka_listener(listener, &config, drain_timeout)?;
    Ok(listener
        .serve(Arc::new(KafkaProtocol::new(broker, config)), shutdown)
        .await)
}

/// The kit listener with Kafka's limits; exposes the registry before serving (management API).
pub fn kafka_listener(
    listener: TcpListener,
    config: &KafkaConfig,
    drain_timeout: Duration,
) -> Result<Listener, LimitsError> {
    assert!(
        config.request_memory_bytes_max >= config.request_bytes_max as u64,
        "request_memory_bytes_max must hold at least one maximal request"
    );
    Listener::new(listener, "kafka", config.listener_limits(drain_timeout))
}
