//! MQTT on the gateway kit's listener (and on any other stream, e.g. the HTTP listener's
//! WebSocket at `/mqtt`): the kit accepts, registers and budgets each connection and, on
//! shutdown, asks each to close — an MQTT 5 client is told DISCONNECT 0x8B "server shutting
//! down" — and waits for them, at most the drain deadline.

use std::sync::Arc;
use std::time::Duration;

use porter_core::retained::{RetainedLimits, RetainedStore};
use porter_core::{Broker, CoreError};
use porter_gateway_kit::auth::Authenticator;
use porter_gateway_kit::{Acceptor, CloseReason, Connection, Drained, Listener, Protocol, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::MqttConfig;
use crate::connection;
use crate::context::{Context, Stats};
use crate::limits;
use crate::session::session_queue;
use crate::store::SessionStore;
use porter_core::keyed_store::KeyedLimits;

/// How often expired sessions are looked for.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// Ends sessions whose expiry has passed with no connection: their queue (and so their
/// subscriptions and queued messages) and their record go.
async fn expire_sessions(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(EXPIRY_SWEEP);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        for client_id in ctx.sessions.expired() {
            if ctx.clients.is_connected(&client_id) {
                continue;
            }
            let owner = porter_core::vhost::next_owner_id();
            let queue = session_queue(&client_id);
            match ctx.vhost.delete_queue(&queue, false, false, owner).await {
                Ok(_) => {
                    tracing::debug!(%client_id, "MQTT session expired");
                    if let Err(e) = ctx.sessions.remove(&client_id).await {
                        tracing::warn!(%client_id, error = %e, "removing an expired session's record failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(%client_id, error = %e, "deleting an expired MQTT session failed")
                }
            }
        }
    }
}

/// The MQTT 3.1.1 / 5.0 protocol. Cheap to clone: every listener serving MQTT (TCP,
/// WebSocket) shares one, so client ids, sessions and retained messages are one set.
#[derive(Clone)]
pub struct MqttProtocol {
    ctx: Arc<Context>,
}

impl MqttProtocol {
    /// Opens the gateway: loads the retained messages and starts the `$SYS` statistics, which
    /// stop when `shutdown` is cancelled. Logins are checked by `authenticator` (the broker's
    /// users) on every transport.
    pub async fn open(
        broker: Arc<Broker>,
        config: MqttConfig,
        authenticator: Option<Arc<dyn Authenticator>>,
        shutdown: CancellationToken,
    ) -> Result<Self, CoreError> {
        let vhost = broker.vhost(&config.vhost)?;
        let retained = RetainedStore::open(&broker, RetainedLimits::default()).await?;
        let sessions = SessionStore::open(
            &broker,
            KeyedLimits {
                entries_max: limits::SESSIONS_MAX,
                bytes_max: limits::SESSION_RECORDS_BYTES_MAX,
            },
        )
        .await?;
        let ended = sessions.end_open_sessions().await?;
        if ended > 0 {
            tracing::info!(
                sessions = ended,
                "MQTT sessions open at the last stop now count down their expiry"
            );
        }
        let interval = config.sys_interval_secs;
        let ctx = Arc::new(Context {
            vhost,
            config: Arc::new(config),
            retained,
            clients: Default::default(),
            sessions,
            stats: Stats::default(),
            sys: Default::default(),
            pending: Default::default(),
            authenticator,
        });
        let shutdown_for_expiry = shutdown.clone();
        if interval > 0 {
            tokio::spawn(crate::sys::run(
                ctx.clone(),
                Duration::from_secs(interval),
                shutdown,
            ));
        }
        crate::will::resume(&ctx);
        tokio::spawn(expire_sessions(ctx.clone(), shutdown_for_expiry));
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

impl MqttProtocol {
    /// The listener limits of this protocol's configuration (for listeners made elsewhere,
    /// e.g. MQTTS).
    pub fn listener_limits(&self, drain: Duration) -> porter_gateway_kit::ListenerLimits {
        self.ctx.config.listener_limits(drain)
    }
}

/// The kit listener with the MQTT limits of `protocol`'s configuration; exposes the registry
/// before serving (management API).
pub fn mqtt_listener(
    listener: TcpListener,
    protocol: &MqttProtocol,
    drain_timeout: Duration,
) -> Result<Listener, porter_gateway_kit::limits::LimitsError> {
    Listener::new(
        listener,
        "mqtt",
        protocol.ctx.config.listener_limits(drain_timeout),
    )
}

/// Serves `protocol` on `listener` (from [`mqtt_listener`]) until `shutdown` is cancelled, then
/// drains.
pub async fn serve<A: Acceptor>(
    listener: Listener<A>,
    protocol: MqttProtocol,
    shutdown: CancellationToken,
) {
    let drained: Drained = listener.serve(Arc::new(protocol), shutdown).await;
    if !drained.still_open.is_empty() {
        tracing::warn!(
            connections = drained.still_open.len(),
            "mqtt connections still open after the drain timeout"
        );
    }
}
