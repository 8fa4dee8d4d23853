//! The AMQP gateway's named limits not set by configuration, and their worst-case products.
//! Configurable ones (`frame_max`, `channel_max`, `connections_max`, `message_bytes_max`,
//! `confirms_pending_max`, `tx_publishes_max`, the memory budget) are in [`crate::config`].
//!
//! Worst case per connection of what it holds outside the kit's memory budget:
//! - the frame reader's buffer: one frame, ≤ `frame_max` (128 KiB by default), and none
//!   while the connection is idle;
//! - the burst being encoded: [`WRITE_BUFFER_BYTES`] plus one event's worth (a delivery of at
//!   most `message_bytes_max`), before it is charged to the budget and queued for writing;
//! - consumer events waiting in the session's feed: ≤ the core's `CONSUMER_BUFFER_MAX`
//!   deliveries, each an `Arc` of a message the queue holds anyway.
//!
//! Everything else a connection holds (content bodies being assembled, encoded bytes queued
//! for writing) is charged to its share of the listener's budget; past the share it stops
//! reading frames and taking deliveries.

use std::time::Duration;

/// Events (frames, deliveries, confirms) handled before one write to the socket.
pub const EVENTS_PER_WRITE_MAX: usize = 512;
/// Outgoing bytes gathered before a write, at most (plus one event's worth).
pub const WRITE_BUFFER_BYTES: usize = 256 << 10;
/// The frame reader's buffer while frames arrive (tokio-util's default). An idle connection
/// holds none: it is freed whenever the socket is drained (see `connection::next_frame`).
pub const READ_BUFFER_BYTES: usize = 8 << 10;
/// How long a closing connection waits for the client's `close-ok`.
pub const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed from accept to an open connection: protocol header, `start / tune / open`
/// (RabbitMQ: `handshake_timeout`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Direct reply-to consumers per broker (each an entry in the registry and a consumer on a
/// channel): ≤ 100,000 × (name 45 B + tag ~60 B + sink 8 B) ≈ 11 MiB.
pub const REPLY_CONSUMERS_MAX: usize = 100_000;

/// The largest burst one write can carry, with one maximal event on top.
pub const fn burst_bytes_max(message_bytes_max: u64) -> u64 {
    WRITE_BUFFER_BYTES as u64 + message_bytes_max
}

const _: () = assert!(EVENTS_PER_WRITE_MAX > 0 && WRITE_BUFFER_BYTES >= 4096);
const _: () = assert!(CLOSE_OK_TIMEOUT.as_millis() < HANDSHAKE_TIMEOUT.as_millis());
const _: () = assert!(REPLY_CONSUMERS_MAX as u64 * 128 <= 16 << 20);
