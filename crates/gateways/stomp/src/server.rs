//! STOMP on the gateway kit's listener (TCP), and [`StompProtocol`] for any other transport:
//! the HTTP gateway serves it over WebSocket at `/ws` by calling [`Protocol::serve`] with a
//! WebSocket-backed stream. The kit accepts, registers, budgets and drains; on shutdown each
//! connection gets an ERROR frame ("connection closed by the broker") before it closes.

use std::sync::Arc;
use std::time::Duration;

use porter_core::Broker;
use porter_gateway_kit::auth::Authenticator;
use porter_gateway_kit::limits::LimitsError;
use porter_gateway_kit::{Acceptor, CloseReason, Connection, Drained, Listener, Protocol, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::StompConfig;
use crate::connection;
use crate::session::Context;

/// The STOMP protocol, as a kit listener (or the WebSocket endpoint) serves it. Cheap to
/// clone: connections share one context.
#[derive(Clone)]
pub struct StompProtocol {
    ctx: Arc<Context>,
}

impl StompProtocol {
    /// Logins are checked by the serving listener's authenticator; see
    /// [`with_authenticator`](Self::with_authenticator) for transports without one.
    pub fn new(broker: Arc<Broker>, config: StompConfig) -> Self {
        StompProtocol {
            ctx: Arc::new(Context {
                broker,
                config: Arc::new(config),
                authenticator: None,
            }),
        }
    }

    /// The same protocol checking logins with `authenticator` wherever the listener serving
    /// it has none (the HTTP listener's WebSocket endpoint): STOMP over WebSocket then logs in
    /// the same users as over TCP.
    pub fn with_authenticator(self, authenticator: Arc<dyn Authenticator>) -> Self {
        StompProtocol {
            ctx: Arc::new(Context {
                broker: self.ctx.broker.clone(),
                config: self.ctx.config.clone(),
                authenticator: Some(authenticator),
            }),
        }
    }

    pub fn config(&self) -> &StompConfig {
        &self.ctx.config
    }
}

impl Protocol for StompProtocol {
    async fn serve<S: Stream>(&self, stream: S, conn: &Connection) -> CloseReason {
        connection::run(stream, conn, self.ctx.clone()).await
    }
}

/// The kit listener with STOMP's limits, and `authenticator` (the broker's users) if given.
pub fn stomp_listener(
    listener: TcpListener,
    config: &StompConfig,
    drain_timeout: Duration,
    authenticator: Option<Arc<dyn Authenticator>>,
) -> Result<Listener, LimitsError> {
    let listener = Listener::new(listener, "stomp", config.listener_limits(drain_timeout))?;
    Ok(match authenticator {
        Some(a) => listener.with_authenticator(a),
        None => listener,
    })
}

/// Serves until `shutdown` is cancelled, then drains (at most `drain_timeout`).
pub async fn serve<A: Acceptor>(
    listener: Listener<A>,
    protocol: StompProtocol,
    shutdown: CancellationToken,
) {
    let drained: Drained = listener.serve(Arc::new(protocol), shutdown).await;
    if !drained.still_open.is_empty() {
        tracing::warn!(
            connections = drained.still_open.len(),
            "stomp connections still open after the drain timeout"
        );
    }
}
