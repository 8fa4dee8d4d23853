//! MQTT on the gateway kit's listener (and on any other stream, e.g. the HTTP listener's
//! WebSocket at `/mqtt`): the kit accepts, registers and budgets each connection and, on
//! shutdown, asks each to close — an MQTT 5 client is told DISCONNECT 0x8B "server shutting
//! down" — and waits for them, at most the drain deadline.

use std::sync::Arc;
use std::time::Duration;

use porter_core::retained::{RetainedLimits, RetainedStore};
use porter_core::{Broker, CoreError};
use porter_gateway_kit::{CloseReason, Connection, Drained, Listener, Protocol, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::MqttConfig;
use crate::connection;
use crate::context::{Context, Stats};

/// The MQTT 3.1.1 / 5.0 protocol. Cheap to clone: every listener serving MQTT (TCP,
/// WebSocket) shares one, so client ids, sessions and retained messages are one set.
#[derive(Clone)]
pub struct MqttProtocol {
    ctx: Arc<Context>,
}

impl MqttProtocol {
    /// Opens the gateway: loads the retained messages and starts the `$SYS` statistics, which
    /// stop when `shutdown` is cancelled.
    pub async fn open(
        broker: Arc<Broker>,
        config: MqttConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, CoreError> {
        let vhost = broker.vhost(&config.vhost)?;
        let retained = RetainedStore::open(&broker, RetainedLimits::default()).await?;
        let interval = config.sys_interval_secs;
        let ctx = Arc::new(Context {
            vhost,
            config: Arc::new(config),
            retained,
            clients: Default::default(),
            stats: Stats::default(),
            sys: Default::default(),
        });
        if interval > 0 {
            tokio::spawn(crate::sys::run(
                ctx.clone(),
                Duration::from_secs(interval),
                shutdown,
            ));
        }
        Ok(MqttProtocol { ctx })
    }

    /// Clients connected now (over every listener serving this protocol).
    pub fn connected_clients(&self) -> usize {
        self.ctx.clients.connected()
    }
}

impl Protocol for MqttProtocol {
    async fn serve<S: Stream>(&self, stream: S, conn: &Connection) -> CloseReason {
        connection::run(stream, conn, self.ctx.clone()).await
    }
}

/// Serves `protocol` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve(
    listener: TcpListener,
    protocol: MqttProtocol,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    let limits = protocol.ctx.config.listener_limits(drain_timeout);
    let listener = match Listener::new(listener, "mqtt", limits) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "mqtt listener limits; not serving MQTT");
            return;
        }
    };
    let drained: Drained = listener.serve(Arc::new(protocol), shutdown).await;
    if !drained.still_open.is_empty() {
        tracing::warn!(
            connections = drained.still_open.len(),
            "mqtt connections still open after the drain timeout"
        );
    }
}
