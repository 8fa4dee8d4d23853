//! The server's own limits, and the broker-wide worst case of client-driven memory they sit in.
//!
//! Each layer states its own products in its `limits.rs`; added up at the defaults, the memory
//! clients can make the broker hold is:
//!
//! | what | bound (defaults) | where |
//! |---|---|---|
//! | Kafka request and response bytes held by connections | 512 MiB (`request_memory_bytes_max`) plus one encoded answer per connection in flight | `porter_gateway_kafka::limits` |
//! | AMQP frames, bodies being assembled and bytes not yet written | 512 MiB (`memory_budget_bytes`) plus one burst per connection | `porter_gateway_amqp::limits`, `porter_gateway_kit::limits` |
//! | writes waiting for a writer thread | 2 × 1,024 jobs, whose bytes are already in the budgets above | `porter_core::commit::limits` |
//! | idle queues | 4.2 KiB each, ≤ ~4.9 GiB at `QUEUES_MAX` | `porter_core::limits` |
//! | undelivered message bodies in queue caches | 256 MiB for all queues (`[storage] queue_cache_bytes`), 8 MiB per queue; a backlog past it stays in the logs | `porter_core::limits` |
//! | deliveries in consumer buffers | `CONSUMER_BUFFER_MAX` per consumer, sharing the cached bodies; their bytes on the way out are in the gateways' budgets above | `porter_core::limits` |
//!
//! The memory alarm (40 % of RAM by default, `[alarms]`) is the backstop behind these bounds:
//! past it, publishers on every protocol are blocked until memory falls.

use std::time::Duration;

/// Threads for blocking file work that is not a log write: fetch and queue reads, metadata
/// changes, opening logs, retention, compaction, the interval flusher, queue maintenance. Log
/// appends and fsyncs run on the core's own writer threads (`porter_core::commit`), and nobody
/// parks here waiting for an fsync, so a slow disk's commit latency cannot starve reads. Bounds
/// memory and contention; more concurrent work than this waits in tokio's queue.
pub const BLOCKING_THREADS_MAX: usize = 16;

/// How long connections get to finish in-flight requests at shutdown.
pub const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(10);

const _: () = assert!(BLOCKING_THREADS_MAX >= 2);
const _: () = assert!(SHUTDOWN_DRAIN_MAX.as_secs() >= 1 && SHUTDOWN_DRAIN_MAX.as_secs() <= 60);
