//! The HTTP listener's named limits and their defaults, and the worst cases they allow.
//!
//! Plain HTTP (health, the chat page, later the management API), per listener:
//! - connections ≤ [`CONNECTIONS_MAX`] (a kit [`Listener`](porter_gateway_kit::Listener) slot is
//!   taken before `accept`); each holds ≤ [`HEADER_BYTES_MAX`] of request head and
//!   ≤ [`BODY_BYTES_MAX`] of request body, so request memory ≤ their product;
//! - a connection with no request for [`IDLE`] (or whose request head takes longer) is closed.
//!
//! WebSocket, per endpoint (`/mqtt`, `/ws`), counted apart from plain HTTP because an upgraded
//! connection leaves the HTTP listener's slot and takes one of its endpoint's:
//! - connections ≤ [`WEBSOCKET_CONNECTIONS_MAX`]; past it the upgrade is refused with 503;
//! - a frame ≤ [`WEBSOCKET_FRAME_BYTES_MAX`] and a message (its fragments joined) ≤
//!   [`WEBSOCKET_MESSAGE_BYTES_MAX`]; a larger one closes the connection with 1009;
//! - the adapter to a byte stream holds one received message at a time, and outbound bytes
//!   ≤ [`WEBSOCKET_WRITE_BUFFER_BYTES`] + one frame before a write waits for the socket
//!   (backpressure reaches the protocol as a pending `write`);
//! - so transport memory per connection ≤ read buffer + message + write buffer + frame
//!   ([`WEBSOCKET_CONNECTION_BYTES_MAX`]), and per endpoint ≤ that × connections. What the
//!   protocol itself holds is charged to the endpoint's kit memory budget as on TCP.

use std::time::Duration;

/// Open plain-HTTP connections.
pub const CONNECTIONS_MAX: usize = 1_024;
/// Largest request head (request line and headers). hyper's floor is 8 KiB.
pub const HEADER_BYTES_MAX: usize = 16 << 10;
/// Largest request body an extractor reads (the management API's JSON).
pub const BODY_BYTES_MAX: usize = 1 << 20;
/// A connection with no request head completed for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

/// Open WebSocket connections per endpoint.
pub const WEBSOCKET_CONNECTIONS_MAX: usize = 10_000;
/// Largest WebSocket frame accepted.
pub const WEBSOCKET_FRAME_BYTES_MAX: usize = 256 << 10;
/// Largest WebSocket message (fragments joined) accepted.
pub const WEBSOCKET_MESSAGE_BYTES_MAX: usize = 256 << 10;
/// Outbound bytes gathered before they are written to the socket; a flush writes them earlier.
pub const WEBSOCKET_WRITE_BUFFER_BYTES: usize = 16 << 10;
/// What tungstenite reads from the socket at a time. Allocated for every connection, idle or not,
/// so it is small: with 4 KiB an idle MQTT-over-WebSocket connection costs ~35 KiB of broker RSS,
/// with 16 KiB ~51 KiB (2,000 idle connections, debug build; the same over TCP: ~17 KiB).
pub const WEBSOCKET_READ_BUFFER_BYTES: usize = 4 << 10;
/// The largest header of a frame the broker sends (2 bytes, 8 of length, no mask).
pub const WEBSOCKET_FRAME_HEADER_BYTES: usize = 10;
/// The largest control frame (a pong or close: 2 bytes of header, 125 of payload), which
/// tungstenite may queue behind a data frame while the socket is full.
pub const WEBSOCKET_CONTROL_FRAME_BYTES: usize = 127;
/// Bytes the WebSocket transport of one connection holds at most (see the module docs).
pub const WEBSOCKET_CONNECTION_BYTES_MAX: usize = WEBSOCKET_READ_BUFFER_BYTES
    + WEBSOCKET_MESSAGE_BYTES_MAX
    + WEBSOCKET_WRITE_BUFFER_BYTES
    + WEBSOCKET_FRAME_BYTES_MAX
    + WEBSOCKET_FRAME_HEADER_BYTES
    + WEBSOCKET_CONTROL_FRAME_BYTES;

/// hyper refuses a read buffer under 8 KiB.
pub const HEADER_BYTES_MIN: usize = 8 << 10;

const _: () = assert!(HEADER_BYTES_MAX >= HEADER_BYTES_MIN);
const _: () = assert!(WEBSOCKET_FRAME_BYTES_MAX <= WEBSOCKET_MESSAGE_BYTES_MAX);
const _: () = assert!(CONNECTIONS_MAX > 0 && WEBSOCKET_CONNECTIONS_MAX > 0);
// Request memory of plain HTTP at its worst: 1,024 × (16 KiB + 1 MiB) ≈ 1 GiB.
const _: () =
    assert!((CONNECTIONS_MAX as u64) * ((HEADER_BYTES_MAX + BODY_BYTES_MAX) as u64) <= 2 << 30);
// WebSocket transport memory at its worst: 10,000 × ~532 KiB ≈ 5.1 GiB; a deployment that expects
// many browser clients lowers the frame and message limits (MQTT packets may span frames).
const _: () = assert!(
    (WEBSOCKET_CONNECTIONS_MAX as u64) * (WEBSOCKET_CONNECTION_BYTES_MAX as u64) <= 6 << 30
);
