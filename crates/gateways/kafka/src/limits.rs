//! The Kafka gateway's named limits and their defaults (the settings in
//! [`KafkaConfig`](crate::KafkaConfig) start from these).
//!
//! Worst case, per listener: request and response bytes held ≤ `REQUEST_MEMORY_BYTES_MAX`
//! (the listener's one memory budget), plus each connection's overdraft for responses already
//! encoded when its share ran out (a Fetch's answer is charged to the budget when it exists, so
//! at most connections × `CONNECTION_MEMORY_BYTES_MAX / FETCH_SHARE_DIVISOR` past the budget in
//! a burst, after which every connection's reading waits). Per connection: ≤ `CONNECTION_MEMORY_BYTES_MAX`, or one
//! request of up to `REQUEST_BYTES_MAX` let in alone, plus at most `INFLIGHT_REQUESTS_MAX`
//! non-Fetch responses (Fetch responses are reserved before they are read, at most
//! `CONNECTION_MEMORY_BYTES_MAX / FETCH_SHARE_DIVISOR` each) and one record batch past a Fetch's
//! reservation (KIP-74: the first partition always gets a whole batch). A client that pipelines
//! requests and never reads its answers is stopped at its share; after `WRITE_STALL_MS`
//! without progress it is closed.

/// Largest request frame (Kafka: socket.request.max.bytes).
pub const REQUEST_BYTES_MAX: u32 = 100 * 1024 * 1024;
/// The listener's memory budget: request and response bytes held across all connections
/// (Kafka: queued.max.request.bytes, which covers requests only).
pub const REQUEST_MEMORY_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// One connection's share of the budget; past it the connection stops reading.
pub const CONNECTION_MEMORY_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// A Fetch reserves at most this fraction of its connection's share for its response, so
/// requests pipelined behind a long-polling fetch (heartbeats, commits) still fit.
pub const FETCH_SHARE_DIVISOR: u64 = 2;
/// Requests read but not answered per connection.
pub const INFLIGHT_REQUESTS_MAX: usize = 32;
/// Open connections.
pub const CONNECTIONS_MAX: usize = 10_000;
/// Records in one Fetch response (Kafka: fetch.max.bytes).
pub const FETCH_RESPONSE_BYTES_MAX: u32 = 50 * 1024 * 1024;
/// Cap on a Fetch's max_wait_ms.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// A write making no progress this long closes the connection.
pub const WRITE_STALL_MS: u64 = 30_000;
/// No request and nothing in flight this long closes the connection (Kafka:
/// connections.max.idle.ms); 0 disables.
pub const IDLE_MS: u64 = 600_000;
/// Socket read buffer: most requests fit, large produces read straight through. Held only
/// while bytes arrive (`LazyBufReader`): an idle connection holds none.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

const _: () = assert!(REQUEST_MEMORY_BYTES_MAX >= REQUEST_BYTES_MAX as u64);
const _: () = assert!(CONNECTION_MEMORY_BYTES_MAX <= REQUEST_MEMORY_BYTES_MAX);
const _: () = assert!(CONNECTION_MEMORY_BYTES_MAX / FETCH_SHARE_DIVISOR >= 1024 * 1024);
const _: () = assert!(INFLIGHT_REQUESTS_MAX >= 1 && CONNECTIONS_MAX >= 1);
