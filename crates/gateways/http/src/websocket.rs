//! WebSocket endpoints (`/mqtt`, `/ws`): an upgrade handler generic over any stream
//! [`Protocol`], which takes a slot of the endpoint's own `connections_max` before answering
//! (503 past it), negotiates the subprotocol, sets the frame and message limits, and serves the
//! upgraded socket as a byte stream ([`WsStream`]) through the kit [`Endpoint`], so WebSocket
//! connections are in a registry (as "mqtt-ws", "stomp-ws"), share a memory budget, and are
//! asked for their protocol's goodbye on shutdown like TCP ones. When the protocol is done the
//! route sends the close frame: 1000 normal, 1001 shutdown, 1009 over the size limit, 1008 a
//! protocol error or a limit.

use std::future::ready;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use porter_gateway_kit::limits::LimitsError;
use porter_gateway_kit::{CloseReason, ClosedBy, Endpoint, ListenerLimits, Protocol};

use crate::config::WebSocketConfig;
use crate::cross_origin::{is_cross_origin, is_local_origin};
use crate::limits::{WEBSOCKET_CONTROL_FRAME_BYTES, WEBSOCKET_FRAME_HEADER_BYTES};
use crate::peer::PeerAddrs;
use crate::ws_stream::{Returned, WsStream};

/// MQTT over WebSocket: `mqtt` (MQTT 3.1.1 and 5), `mqttv3.1` (older clients).
pub const MQTT_SUBPROTOCOLS: &[&str] = &["mqtt", "mqttv3.1"];
/// STOMP over WebSocket, newest first.
pub const STOMP_SUBPROTOCOLS: &[&str] = &["v12.stomp", "v11.stomp", "v10.stomp"];

/// One WebSocket endpoint: the protocol it carries, the subprotocols it accepts, its limits
/// and its connections.
pub struct WebSocketRoute<P> {
    subprotocols: &'static [&'static str],
    endpoint: Arc<Endpoint>,
    protocol: Arc<P>,
    config: WebSocketConfig,
}

impl<P> std::fmt::Debug for WebSocketRoute<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketRoute")
            .field("subprotocols", &self.subprotocols)
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .finish()
    }
}

impl<P: Protocol> WebSocketRoute<P> {
    /// An endpoint registering its connections as `name`, accepting the `subprotocols` (in
    /// order of preference; a client that offers none is served too), with the protocol's kit
    /// `limits` (its `connections_max` is replaced by the WebSocket one).
    pub fn new(
        name: &'static str,
        subprotocols: &'static [&'static str],
        protocol: Arc<P>,
        limits: ListenerLimits,
        config: WebSocketConfig,
    ) -> Result<Self, LimitsError> {
        let limits = ListenerLimits {
            connections_max: config.connections_max,
            ..limits
        };
        Ok(WebSocketRoute {
            subprotocols,
            endpoint: Arc::new(Endpoint::new(name, limits)?),
            protocol,
            config,
        })
    }

    /// The endpoint its connections live in (registry, budget, drain).
    pub fn endpoint(&self) -> Arc<Endpoint> {
        self.endpoint.clone()
    }
}

/// The upgrade handler (`GET` with `Upgrade: websocket`).
pub async fn upgrade<P: Protocol>(
    State(route): State<Arc<WebSocketRoute<P>>>,
    Extension(addrs): Extension<PeerAddrs>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let cross_origin = is_cross_origin(&headers);
    if addrs.peer.ip().is_loopback() && cross_origin && !is_local_origin(&headers) {
        // A page from elsewhere in a browser on this host: it must not get what a local
        // program gets (`guest`, loopback `anonymous`); see `crate::cross_origin`.
        let origin = headers.get(axum::http::header::ORIGIN).cloned();
        tracing::warn!(protocol = route.endpoint.protocol(), peer = %addrs.peer, ?origin,
            "refusing WebSocket: another site's page on a loopback client");
        return (
            StatusCode::FORBIDDEN,
            "cross-site WebSocket from a loopback client refused\n",
        )
            .into_response();
    }
    let Some(slot) = route.endpoint.try_slot() else {
        tracing::warn!(protocol = route.endpoint.protocol(), peer = %addrs.peer, "refusing WebSocket: connections_max reached");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections\n",
        )
            .into_response();
    };
    let config = &route.config;
    let upgrade = upgrade
        .protocols(route.subprotocols.iter().copied())
        .max_frame_size(config.frame_bytes_max)
        .max_message_size(config.message_bytes_max)
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_write_buffer_size(
            // Never reached: a write waits for the buffer to drain below write_buffer_bytes, then
            // adds one frame (and tungstenite perhaps a pong). The bound turns a bug into an
            // error instead of unbounded memory.
            config.write_buffer_bytes
                + config.frame_bytes_max
                + WEBSOCKET_FRAME_HEADER_BYTES
                + WEBSOCKET_CONTROL_FRAME_BYTES,
        );
    let name = route.endpoint.protocol();
    // A certificate login carries over to MQTT or STOMP inside the WebSocket, unless another
    // site's page opened it: the browser presents the certificate on its own.
    let client_login = addrs
        .client_login
        .filter(|_| !cross_origin)
        .map(|user| user.to_string());
    upgrade
        .on_failed_upgrade(
            move |e| tracing::debug!(protocol = name, error = %e, "WebSocket upgrade failed"),
        )
        .on_upgrade(move |socket| async move {
            let (stream, returned) = WsStream::new(socket, route.config.frame_bytes_max);
            let serve = route.endpoint.serve(
                slot,
                addrs.peer,
                addrs.local,
                route.protocol.clone(),
                ready(Ok((stream, client_login))),
            );
            let reason = serve.await;
            let write_stall = route.endpoint.limits().deadlines.write_stall;
            // The stream is dropped when serve ends, unless the protocol kept it in a task.
            if let Ok(Ok(returned)) = tokio::time::timeout(write_stall, returned).await {
                let _ = tokio::time::timeout(write_stall, close(returned, &reason)).await;
            }
        })
}

/// Sends the close frame saying why the connection ended.
async fn close(mut returned: Returned, reason: &CloseReason) {
    if returned.finished {
        return;
    }
    let code = if returned.too_big {
        1009
    } else {
        match reason.by {
            ClosedBy::Peer | ClosedBy::Local => 1000,
            ClosedBy::Shutdown => 1001,
            ClosedBy::Deadline(_) | ClosedBy::Limit | ClosedBy::ProtocolError => 1008,
        }
    };
    let frame = CloseFrame {
        code,
        // A close frame's reason is at most 123 bytes.
        reason: porter_gateway_kit::truncated(&reason.text, 123).into(),
    };
    let _ = returned.socket.send(Message::Close(Some(frame))).await;
}
