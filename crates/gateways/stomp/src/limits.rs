//! The STOMP gateway's named limits not set by configuration, and their worst-case products.
//! Configurable ones (frame size, header count and line length, subscriptions, open
//! transactions and their frames and bytes, the default prefetch, connections) are in
//! [`crate::config`].
//!
//! Worst case per connection of what it holds:
//! - the frame being read: ≤ `frame_bytes_max` (the codec refuses a frame, or a partial one,
//!   that would exceed it, and never allocates from `content-length` before the bytes arrive).
//!   A partial frame is charged to the connection's share of the kit's listener budget before
//!   more is read, so all connections together hold ≤ the listener budget (512 MiB by
//!   default) of partial frames, not `connections_max × frame_bytes_max`; an idle connection
//!   holds no read buffer and no charge;
//! - the burst being written: ≤ [`WRITE_BUFFER_BYTES`] plus one frame, or
//!   [`EVENTS_PER_WRITE_MAX`] frames;
//! - deliveries waiting in the connection's feed: ≤ [`DELIVERY_FEED_MAX`] queue deliveries
//!   (each an `Arc` of a message the queue holds) and ≤ [`KAFKA_FEED_MAX`] records read from
//!   Kafka partitions (each ≤ one read of [`KAFKA_READ_BYTES`]);
//! - unacknowledged deliveries: ≤ `subscriptions_max` × prefetch (`prefetch_default` when the
//!   client names none) entries of 16 bytes in the session, the messages held by their queues;
//! - open transactions: ≤ `transaction_bytes_max` of buffered frames (and ≤
//!   `transactions_max` × `transaction_frames_max` frames);
//! - after ERROR or DISCONNECT: ≤ [`LINGER_BYTES_MAX`] read and dropped for ≤ [`LINGER`].

use std::time::Duration;

/// Queue deliveries buffered between a connection's queues and its writer, shared by all of
/// its subscriptions. Smaller than the core's per-consumer bound: deliveries waiting here pin
/// their bodies, and a STOMP client that stops reading should cost little (256 × a 32 KiB
/// body = 8 MiB); queues wait on a full feed (backpressure), they do not drop.
pub const DELIVERY_FEED_MAX: usize = 256;
/// Kafka records buffered between a connection's partition readers and its writer.
pub const KAFKA_FEED_MAX: usize = 256;
/// Bytes one read of a Kafka partition returns at most (at least one batch).
pub const KAFKA_READ_BYTES: u32 = 256 << 10;
/// Outgoing bytes gathered before a write, at most (plus one frame).
pub const WRITE_BUFFER_BYTES: usize = 256 << 10;
/// Events (frames, deliveries) handled before one write to the socket.
pub const EVENTS_PER_WRITE_MAX: usize = 256;
/// The read buffer while bytes arrive; freed whenever the socket is drained.
pub const READ_BUFFER_BYTES: usize = 8 << 10;
/// Heart-beat grace: a client that promised a beat every `n` ms is closed after
/// `n × HEARTBEAT_GRACE_FACTOR` ms of silence (the spec lets the receiver allow for timing
/// error; RabbitMQ allows twice the interval).
pub const HEARTBEAT_GRACE_FACTOR: u32 = 2;
/// Shortest heart-beat interval honoured either way: a client asking for 1 ms beats gets this.
pub const HEARTBEAT_MIN: Duration = Duration::from_millis(100);
/// Longest heart-beat interval honoured either way: a larger ask gets this (timers cannot
/// take `u64::MAX` ms).
pub const HEARTBEAT_MAX: Duration = Duration::from_secs(3_600);
/// Time allowed from accept to CONNECTED (the kit's handshake deadline by default).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After ERROR or DISCONNECT: how long the connection keeps reading (and dropping) what the
/// client still sends, so its close is a FIN after our last frame rather than a reset.
pub const LINGER: Duration = Duration::from_secs(1);
/// Bytes dropped that way, at most.
pub const LINGER_BYTES_MAX: usize = 1 << 20;
/// Length of a prefetch-count the gateway honours: larger asks are capped here.
pub const PREFETCH_MAX: u16 = u16::MAX;

/// The largest burst one write can carry.
pub const fn burst_bytes_max(frame_bytes_max: usize) -> usize {
    WRITE_BUFFER_BYTES + frame_bytes_max
}

const _: () = assert!(EVENTS_PER_WRITE_MAX > 0 && WRITE_BUFFER_BYTES >= 4096);
const _: () = assert!(KAFKA_FEED_MAX > 0 && DELIVERY_FEED_MAX > 0);
const _: () = assert!(DELIVERY_FEED_MAX <= porter_core::queue::api::CONSUMER_BUFFER_MAX);
const _: () = assert!(HEARTBEAT_GRACE_FACTOR >= 2);
const _: () = assert!(HEARTBEAT_MIN.as_millis() < HANDSHAKE_TIMEOUT.as_millis());
const _: () = assert!(HEARTBEAT_MIN.as_millis() < HEARTBEAT_MAX.as_millis());
