//! Named limits and defaults for storage (STYLE.md §4). Each says what it bounds and why.

/// Default roll size of a segment: 1 GiB keeps the number of files per partition small while
/// letting retention free space at a reasonable granularity.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Positions in the offset index are u32, so a segment can never grow past 4 GiB.
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// Default age after which a non-empty active segment is rolled: 7 days (Kafka's `segment.ms`).
pub const SEGMENT_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Default retention: 7 days (Kafka's `retention.ms`).
pub const RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Largest accepted batch by default; the same as Kafka's `max.message.bytes` (1 MiB + overhead).
/// Worst case memory of one append call is bounded by the caller's request size, not by this.
pub const BATCH_BYTES_MAX_DEFAULT: u32 = 1_048_588;
/// Bytes of log data between two sparse index entries: a read scans at most about this much.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Default time a tombstone survives compaction: 1 day (Kafka's `delete.retention.ms`), long
/// enough for a consumer that fell behind to see the delete.
pub const DELETE_RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;
/// Kafka's `min.cleanable.dirty.ratio` default: compact once half the log was written since the
/// last pass.
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;
/// Default bound on the cleaner's key → offset map (`CleanerLimits::key_map_bytes_max`):
/// about 1.6 million distinct keys per pass at `KEY_MAP_ENTRY_BYTES` each.
pub const KEY_MAP_BYTES_DEFAULT: usize = 64 << 20;
/// Memory of one key-map entry: a 16-byte key hash and an 8-byte offset, padded to 32 bytes by
/// the u128's alignment, plus the hash table's control byte and 7/8 load factor, rounded up.
pub const KEY_MAP_ENTRY_BYTES: usize = 40;
/// Default cleaner I/O throttle (reads + writes): leaves most of a disk to produce and fetch.
pub const CLEANER_IO_BYTES_PER_SEC_DEFAULT: u64 = 50 << 20;
/// The cleaner reads segments in chunks of this size (or one batch, if larger).
pub const CLEANER_READ_CHUNK_BYTES: usize = 1 << 20;
/// The cleaner writes a cleaned segment in chunks of this size.
pub const CLEANER_WRITE_CHUNK_BYTES: usize = 1 << 20;
/// Most key-hash buckets one compaction splits its keys into when they overflow the key map;
/// each bucket is one more read of the log. Past this the run stops with what it cleaned.
pub const CLEANER_PASSES_MAX: u64 = 1 << 12;
/// Period of the caller's flush timer under `FlushMode::Interval`.
pub const FLUSH_INTERVAL_MS_DEFAULT: u64 = 1000;
/// Default number of file descriptors a `FileCache` keeps open (three per segment: log + 2 indexes).
pub const OPEN_FILES_DEFAULT: usize = 1024;
/// Jobs the background segment thread (`background`) queues: one per roll not yet synced, so
/// this bounds how many rolled segments wait for their fdatasyncs (a boxed closure of ~100 B
/// each: at most ~400 KiB). Past it, a roll syncs inline as it used to.
pub const BACKGROUND_JOBS_MAX: usize = 4096;
/// Size of the buffer used to walk batch headers while looking for an offset: one read covers
/// a whole index interval of small batches.
pub const SCAN_CHUNK_BYTES: usize = 16 * 1024;
/// Batches per segment whose positions are kept in memory (`recent_batches`), so a consumer at
/// the tail is answered without disk reads. 32 bytes each: at most 512 bytes per active segment
/// that has had appends since it was opened (a rolled segment forgets them; a queue's log keeps
/// them too, outside `QUEUE_IDLE_BYTES`, which is measured on empty queues).
pub const RECENT_BATCHES_MAX: usize = 16;
/// Size of the buffer used to stream a batch through CRC-32C during recovery, so a corrupt
/// length field never makes us allocate a huge buffer.
pub const RECOVERY_CHUNK_BYTES: usize = 64 * 1024;

const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
const _: () = assert!((BATCH_BYTES_MAX_DEFAULT as u64) < SEGMENT_BYTES_MAX);
const _: () = assert!(BACKGROUND_JOBS_MAX >= 1);
const _: () = assert!(SCAN_CHUNK_BYTES >= crate::record_batch::HEADER_BYTES);
