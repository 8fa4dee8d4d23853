//! Every named limit of the core, in one place to read, with the worst cases they add up to.
//!
//! Each limit is defined beside the code it bounds (its doc says why that value); this module
//! gathers them so a reader, or a gateway sizing its own limits, sees the whole budget, and so
//! the products below are checked by the compiler whenever one of them changes.
//!
//! # Worst cases
//!
//! **Idle queues.** `QUEUES_MAX` × `QUEUE_IDLE_BYTES` = 1,000,000 × 5 KiB ≈ 4.9 GiB of
//! bookkeeping with every queue declared and idle (no task, timer or descriptor per queue: the
//! scheduler, the timer set and the `FileCache` are shared).
//!
//! **One busy queue's bookkeeping** (message bodies aside): unacked entries
//! `UNACKED_PER_QUEUE_MAX` × ~64 B ≈ 4 MiB, settled ranges `SETTLED_RANGES_MAX` × ~32 B ≈ 2 MiB,
//! consumers `CONSUMERS_PER_QUEUE_MAX` × ~100 B ≈ 0.4 MiB: under 7 MiB, checked below.
//!
//! **Message bodies in memory.** All queues together keep at most
//! `BrokerConfig::queue_cache_bytes_max` (`QUEUE_CACHE_TOTAL_BYTES_DEFAULT`, 256 MiB) of
//! undelivered bodies decoded in memory, and one queue at most `QUEUE_CACHE_BYTES_MAX` (8 MiB) of
//! it; a backlog past that stays in the logs and is read back `READ_AHEAD_BYTES` at a time when
//! delivered. On top come what consumers' buffers hold: `CONSUMER_BUFFER_MAX` deliveries per
//! consumer, sharing the cached `Arc` rather than copying it, and bounded in bytes by each
//! gateway's memory budget, which also bounds the bodies a connection holds on its way in and
//! out. The memory alarm (`alarm`, 40 % of RAM by default) is the last line: it blocks publishers
//! broker-wide.
//!
//! **Writes waiting for a writer thread.** `WRITER_THREADS_MAX` × `WRITER_QUEUE_JOBS_MAX` jobs at
//! most (2 × 1,024 at the defaults); their bytes were admitted by a gateway's memory budget.
//!
//! **One publish call.** `PUBLISH_BATCH_MAX` messages, each routed to at most every queue bound
//! through `EXCHANGE_TO_EXCHANGE_DEPTH_MAX` hops of `BINDINGS_PER_EXCHANGE_MAX` bindings.
//!
//! **Filters.** A subscription's expression is at most `FILTER_EXPRESSION_BYTES_MAX` (4 KiB) and
//! `FILTER_DEPTH_MAX` (64) levels deep; compiled, under 256 KiB at worst.
//!
//! **Transactions.** `TRANSACTIONS_PENDING_MAX` pending half messages, each indexed in memory in
//! under ~450 B (ids ≤ `TRANSACTION_NAME_BYTES_MAX`): ≈ 43 MiB at most; payloads stay on disk,
//! at most `TRANSACTIONS_PENDING_BYTES_MAX`. Queued commands and checks hold at most
//! `TRANSACTION_QUEUE_MAX` + `TRANSACTION_CHECKS_QUEUE_MAX` payloads of `HALF_PAYLOAD_BYTES_MAX`.
//!
//! **Delayed delivery.** A timer store holds at most `TimerConfig::loaded_max` +
//! `in_flight_max` timers in memory (262,144 + 65,536 by default, ~80 B each: under 32 MiB, checked
//! in `timer`), plus ~100 B per bucket file; a million pending timers over a day measured 19 MiB
//! RSS. Schedules waiting for its thread: `SCHEDULE_REQUESTS_MAX`.
//!
//! **Pop consumption.** `POP_UNRESOLVED_MAX` (65,536) unresolved offsets per consumer group and
//! partition (~120 B each) and `POP_CURSORS_MAX` (100,000) group-partitions open.
//!
//! **Metadata.** A command is at most `COMMAND_BYTES_MAX`; the journal is folded into a snapshot
//! every `JOURNAL_COMMANDS_MAX` commands.

pub use crate::broker::{QUEUES_MAX, QUEUE_IDLE_BYTES, QUEUE_OPEN_THREADS};
pub use crate::commit::{
    JOBS_PER_COMMIT_MAX, WRITER_QUEUE_JOBS_DEFAULT, WRITER_QUEUE_JOBS_MAX, WRITER_THREADS_DEFAULT,
    WRITER_THREADS_MAX,
};
pub use crate::filter::{FILTER_DEPTH_MAX, FILTER_EXPRESSION_BYTES_MAX};
pub use crate::group::offsets::OFFSETS_LOG_COMPACT_BYTES;
pub use crate::metadata::journal::COMMAND_BYTES_MAX;
pub use crate::metadata::JOURNAL_COMMANDS_MAX;
pub use crate::pop::{POP_CURSORS_MAX, POP_UNRESOLVED_MAX};
pub use crate::publish::PUBLISH_BATCH_MAX;
pub use crate::queue::ack_log::ACK_LOG_COMPACT_BYTES;
pub use crate::queue::api::CONSUMER_BUFFER_MAX;
pub use crate::queue::cache_budget::QUEUE_CACHE_TOTAL_BYTES_DEFAULT;
pub use crate::queue::definition::MAX_PRIORITY_MAX;
pub use crate::queue::limits::*;
pub use crate::queue::runtime::{
    QUEUE_BATCH_BYTES_MAX, QUEUE_CACHE_BYTES_MAX, QUEUE_SEGMENT_BYTES,
};
pub use crate::routing::limits::*;
pub use crate::timer::{
    BUCKET_FILES_OPEN_MAX, DIRTY_BUCKETS_CHECKPOINT, IN_FLIGHT_MAX_DEFAULT, LOADED_MAX_DEFAULT,
    MAX_DELAY_MS_DEFAULT, PAYLOAD_BYTES_MAX as TIMER_PAYLOAD_BYTES_MAX, REFILL_MAX,
    SCHEDULE_REQUESTS_MAX, SEGMENT_FILES_OPEN_MAX,
};
pub use crate::topic::{TOPIC_NAME_CHARS_MAX, TOPIC_PARTITIONS_MAX};
pub use crate::transaction::{
    HALF_LOG_COMPACT_BYTES, HALF_PAYLOAD_BYTES_MAX, TRANSACTIONS_PENDING_BYTES_MAX,
    TRANSACTIONS_PENDING_MAX, TRANSACTION_CHECKS_MAX, TRANSACTION_CHECKS_QUEUE_MAX,
    TRANSACTION_NAME_BYTES_MAX, TRANSACTION_QUEUE_MAX,
};

/// Approximate bytes of one unacked entry, one settled range and one consumer, as the worst
/// cases above count them.
const UNACKED_ENTRY_BYTES: usize = 64;
const SETTLED_RANGE_BYTES: usize = 32;
const CONSUMER_BYTES: usize = 100;

/// A busy queue's bookkeeping, message bodies aside.
pub const BUSY_QUEUE_BOOKKEEPING_BYTES_MAX: usize = UNACKED_PER_QUEUE_MAX * UNACKED_ENTRY_BYTES
    + SETTLED_RANGES_MAX * SETTLED_RANGE_BYTES
    + CONSUMERS_PER_QUEUE_MAX * CONSUMER_BYTES;

const _: () = assert!(BUSY_QUEUE_BOOKKEEPING_BYTES_MAX < 7 << 20);
const _: () = assert!(QUEUES_MAX as u64 * QUEUE_IDLE_BYTES as u64 <= 5 << 30);
const _: () = assert!(WRITER_THREADS_DEFAULT * WRITER_QUEUE_JOBS_DEFAULT <= 1 << 12);
const _: () = assert!(PUBLISH_BATCH_MAX <= WRITER_QUEUE_JOBS_DEFAULT);
const _: () = assert!(QUEUE_CACHE_BYTES_MAX as u64 <= QUEUE_SEGMENT_BYTES);
const _: () = assert!(QUEUE_CACHE_BYTES_MAX <= QUEUE_CACHE_TOTAL_BYTES_DEFAULT);
const _: () = assert!(COMMAND_BYTES_MAX <= 1 << 20);
/// The transaction index: per pending message, an id of at most `TRANSACTION_NAME_BYTES_MAX`
/// behind an `Arc` shared by the map and the schedule, plus ~190 B of entries and overhead.
const TRANSACTION_INDEX_ENTRY_BYTES: usize = TRANSACTION_NAME_BYTES_MAX + 190;
const _: () = assert!(TRANSACTIONS_PENDING_MAX * TRANSACTION_INDEX_ENTRY_BYTES <= 45 << 20);

/// Retained messages held (one per topic), in memory and on the compacted retained topic.
pub const RETAINED_MESSAGES_MAX: usize = 100_000;
/// Bytes of retained bodies and topic names together: the store's whole memory, with ~100 B of
/// map overhead per message on top.
pub const RETAINED_BYTES_MAX: u64 = 256 << 20;
const _: () = assert!(RETAINED_BYTES_MAX + RETAINED_MESSAGES_MAX as u64 * 100 <= 300 << 20);
