//! The Kafka gateway's named limits and their defaults (the settings in
//! [`KafkaConfig`](crate::KafkaConfig) start from these).
//!
//! Worst case, per listener: request and response bytes held ≤ `REQUEST_MEMORY_BYTES_MAX`
//! (the listener's one memory budget), plus each connection's overdraft for responses already
//! encoded when its share ran out (at most `INFLIGHT_REQUESTS_MAX` answers). Per connection:
//! ≤ `CONNECTION_MEMORY_BYTES_MAX`, or one request of up to `REQUEST_BYTES_MAX` let in alone,
//! plus those answers in flight, plus one spliced-write chunk
//! (`porter_gateway_kit::spliced::SPLICE_CHUNK_BYTES`). Fetch answers hold only their encoded
//! header bytes (a few dozen bytes per partition, about what the request's partition entries
//! took): their records stay in the segment files until the writer streams them, so a Fetch
//! of `FETCH_RESPONSE_BYTES_MAX` costs no more memory than a small one, and no reservation of
//! its response size is needed. A client that pipelines requests and never reads its answers is
//! stopped at its share or at the outbound queue's frame limit, whichever comes first; after
//! `WRITE_STALL_MS` without progress it is closed. Each queued Fetch answer keeps its segment
//! files open (usually the file cache's own handles, shared).

/// Largest request frame (Kafka: socket.request.max.bytes).
pub const REQUEST_BYTES_MAX: u32 = 100 * 1024 * 1024;
/// The listener's memory budget: request and response bytes held across all connections
/// (Kafka: queued.max.request.bytes, which covers requests only).
pub const REQUEST_MEMORY_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// One connection's share of the budget; past it the connection stops reading.
pub const CONNECTION_MEMORY_BYTES_MAX: u64 = 16 * 1024 * 1024;
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
const _: () = assert!(INFLIGHT_REQUESTS_MAX >= 1 && CONNECTIONS_MAX >= 1);
