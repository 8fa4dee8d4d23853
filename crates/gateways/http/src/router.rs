//! [`Routes`]: what the HTTP listener serves: `/healthz`, the chat-room example page under
//! `/chat/` (and its rooms' history), the WebSocket endpoints, and the management API's routes
//! (`porter-management`), merged in by the server.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use porter_gateway_kit::{Endpoint, Protocol};

use crate::assets;
use crate::config::HttpConfig;
use crate::websocket::{upgrade, WebSocketRoute};

/// The router being assembled, and the WebSocket endpoints whose connections the listener
/// drains on shutdown.
#[derive(Debug, Default)]
pub struct Routes {
    router: Router,
    endpoints: Vec<Arc<Endpoint>>,
}

impl Routes {
    /// `/healthz` and the chat page.
    pub fn new() -> Self {
        Routes {
            router: Router::new()
                .route("/healthz", get(healthz))
                .merge(assets::router()),
            endpoints: Vec::new(),
        }
    }

    /// Serves chat rooms' history from `topic` at `/chat/history/{room}` (see
    /// [`crate::chat_history`]).
    pub fn chat_history(mut self, broker: Arc<porter_core::Broker>, topic: String) -> Self {
        self.router = self
            .router
            .merge(crate::chat_history::router(broker, topic));
        self
    }

    /// Adds another application's routes (the management API).
    pub fn merge(mut self, router: Router) -> Self {
        self.router = self.router.merge(router);
        self
    }

    /// Serves `route`'s protocol over WebSocket at `path`.
    pub fn websocket<P: Protocol>(mut self, path: &str, route: WebSocketRoute<P>) -> Self {
        self.endpoints.push(route.endpoint());
        let ws = Router::new()
            .route(path, get(upgrade::<P>))
            .with_state(Arc::new(route));
        self.router = self.router.merge(ws);
        self
    }

    /// The WebSocket endpoints added so far.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The finished router (with the request body limit) and the endpoints.
    pub(crate) fn into_parts(self, config: &HttpConfig) -> (Router, Vec<Arc<Endpoint>>) {
        let router = self
            .router
            .layer(DefaultBodyLimit::max(config.body_bytes_max));
        (router, self.endpoints)
    }
}

/// 200 while the listener serves: for load balancers and `systemd` health checks.
async fn healthz() -> &'static str {
    "ok\n"
}
