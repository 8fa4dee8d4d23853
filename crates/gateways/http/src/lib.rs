//! porter-gateway-http: Porter's HTTP listener (default 0.0.0.0:15672). It carries the
//! WebSocket transports of the stream protocols (MQTT at `/mqtt`, STOMP at `/ws`), `/healthz`,
//! the chat-room example page at `/chat/`, and later the management API.
//!
//! One concept per module:
//! - [`server`]: the listener: a kit [`Listener`](porter_gateway_kit::Listener) serving HTTP/1.1
//!   with hyper, its shutdown draining the WebSocket endpoints too;
//! - [`router`]: [`Routes`], what is served where;
//! - [`websocket`]: the upgrade handler, generic over any kit
//!   [`Protocol`](porter_gateway_kit::Protocol), serving through a kit
//!   [`Endpoint`](porter_gateway_kit::Endpoint);
//! - [`ws_stream`]: a WebSocket as a byte stream;
//! - [`peer`]: the connection's addresses on every request;
//! - [`cross_origin`]: which requests a browser sent from another site's page;
//! - [`assets`]: the embedded chat page;
//! - [`chat_history`]: a chat room's last messages, read from the log;
//! - [`config`] and [`limits`]: the named limits and what they bound.

pub mod assets;
pub mod chat_history;
pub mod config;
pub mod cross_origin;
pub mod limits;
pub mod peer;
pub mod router;
pub mod server;
pub mod websocket;
pub mod ws_stream;

pub use config::{HttpConfig, WebSocketConfig, CHAT_HISTORY_TOPIC};
pub use peer::PeerAddrs;
pub use router::Routes;
pub use server::{HttpError, HttpListener};
pub use websocket::{WebSocketRoute, MQTT_SUBPROTOCOLS, STOMP_SUBPROTOCOLS};
