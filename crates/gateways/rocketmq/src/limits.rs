//! The RocketMQ gateway's named limits and their worst case.
//!
//! A gRPC request is decoded whole (tonic), so one connection holds at most
//! `HTTP2_STREAMS_MAX × request_bytes_max` of requests being decoded; HTTP/2 flow control
//! (`STREAM_WINDOW_BYTES`, `CONNECTION_WINDOW_BYTES`) bounds what a client can push before the
//! broker reads it. Worst case per listener: `connections_max × HTTP2_STREAMS_MAX ×
//! request_bytes_max` = 1,024 × 64 × 4.1 MiB ≈ 269 GiB in theory; in practice a stream's
//! bytes arrive only as fast as its window is returned, and a receive's answer is at most
//! [`RECEIVE_BATCH_MAX`] messages. Lower `connections_max` where clients are untrusted.

use std::time::Duration;

/// RocketMQ's default `maxMessageSize`: 4 MiB of body.
pub const BODY_BYTES_MAX: usize = 4 << 20;
/// A request: the body plus properties and framing.
pub const REQUEST_BYTES_MAX: usize = BODY_BYTES_MAX + (64 << 10);
/// Concurrent HTTP/2 streams (RPCs, long polls included) per connection.
pub const HTTP2_STREAMS_MAX: u32 = 64;
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;
pub const CONNECTION_WINDOW_BYTES: u32 = 4 << 20;
/// Header bytes per request (gRPC metadata).
pub const HEADER_LIST_BYTES_MAX: u32 = 16 << 10;
pub const CONNECTIONS_MAX: usize = 1024;
/// Messages one ReceiveMessage returns at most (RocketMQ's batch size maximum is 32 in its
/// clients; Porter allows more).
pub const RECEIVE_BATCH_MAX: usize = 1024;
/// Messages in one SendMessage.
pub const SEND_BATCH_MAX: usize = 1024;
/// Clients with an open telemetry stream (each holds a small bounded command queue).
pub const TELEMETRY_CLIENTS_MAX: usize = 10_000;
/// Commands queued towards one client's telemetry stream (settings, transaction checks).
pub const TELEMETRY_QUEUE_MAX: usize = 64;
/// Default invisible duration when a receive names none (RocketMQ's SimpleConsumer: 30 s).
pub const INVISIBLE_DEFAULT: Duration = Duration::from_secs(30);
/// Longest long poll honoured.
pub const LONG_POLL_MAX: Duration = Duration::from_secs(60);
/// Delivery attempts before a message goes to the group's DLQ (RocketMQ: 16 + 1).
pub const MAX_ATTEMPTS_DEFAULT: u32 = 17;
/// Partitions ("message queues") of an auto-created topic.
pub const AUTO_CREATE_QUEUES: u32 = 4;
