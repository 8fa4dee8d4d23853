//! AMQP on the gateway kit's listener: the kit accepts (a slot is taken before `accept`, so
//! past `connections_max` new clients wait in the kernel's backlog), registers each connection,
//! gives it a share of the listener's memory budget, and on shutdown asks every connection to
//! close — each answers with AMQP's goodbye, `connection.close` 320 CONNECTION_FORCED — and
//! waits for them, at most the drain deadline. This module only says how an AMQP connection is
//! served.

use std::sync::Arc;
use std::time::Duration;

use porter_core::Broker;
use porter_gateway_kit::auth::Authenticator;
use porter_gateway_kit::limits::LimitsError;
use porter_gateway_kit::{Acceptor, CloseReason, Connection, Drained, Listener, Protocol, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::static_users;
use crate::config::AmqpConfig;
use crate::connection::{self, Context};

/// The AMQP 0-9-1 protocol, as the kit's listener serves it.
pub struct AmqpProtocol {
    ctx: Arc<Context>,
}

impl AmqpProtocol {
    pub fn new(broker: Arc<Broker>, config: AmqpConfig) -> Self {
        AmqpProtocol {
            ctx: Arc::new(Context {
                broker,
                users: static_users(&config.users),
                config: Arc::new(config),
                replies: Default::default(),
            }),
        }
    }
}

impl Protocol for AmqpProtocol {
    async fn serve<S: Stream>(&self, stream: S, conn: &Connection) -> CloseReason {
        connection::run(stream, conn, self.ctx.clone()).await
    }
}

/// The kit listener with AMQP's limits and `authenticator` (the configured users when `None`);
/// exposes the registry before serving (management API).
pub fn amqp_listener(
    listener: TcpListener,
    config: &AmqpConfig,
    drain_timeout: Duration,
    authenticator: Option<Arc<dyn Authenticator>>,
) -> Result<Listener, LimitsError> {
    let authenticator = authenticator.unwrap_or_else(|| Arc::new(static_users(&config.users)) as _);
    Ok(
        Listener::new(listener, "amqp", config.listener_limits(drain_timeout))?
            .with_authenticator(authenticator),
    )
}

/// Serves on `listener` (from [`amqp_listener`]) until `shutdown` is cancelled, then has open
/// connections say goodbye (320 CONNECTION_FORCED) and waits for them, at most the listener's
/// drain timeout.
pub async fn serve<A: Acceptor>(
    listener: Listener<A>,
    broker: Arc<Broker>,
    config: AmqpConfig,
    shutdown: CancellationToken,
) {
    let drained: Drained = listener
        .serve(Arc::new(AmqpProtocol::new(broker, config)), shutdown)
        .await;
    if !drained.still_open.is_empty() {
        tracing::warn!(
            connections = drained.still_open.len(),
            "amqp connections still open after the drain timeout"
        );
    }
}
