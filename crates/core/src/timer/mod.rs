//! Durable delayed delivery: messages held until a due time (any millisecond up to
//! [`TimerConfig::max_delay_ms`], 40 days by default), surviving SIGTERM and kill -9, delivered
//! once due and never early. Protocol-neutral: RocketMQ delay messages and AMQP's
//! `x-delayed-message` exchange both come here.
//!
//! - [`TimerStore`] (blocking, one thread): the files and the in-memory window.
//! - [`TimerService`] (async): owns a store on its own thread, groups schedules per fsync, sleeps
//!   until the next due time and hands due timers to the broker on a bounded channel.
//!
//! # On disk (`dir/`)
//!
//! - `segments/<id>.log`: the payloads, appended as CRC-framed records
//!   `[crc32c u32][len u32][due_ms i64][payload]` (the CRC covers everything after it). The
//!   segments are also the write-ahead log: a schedule is durable once its record is fdatasync'ed,
//!   so one fsync covers a whole group of schedules whatever buckets they fall in. A segment is
//!   deleted whole once no pending timer refers to it.
//! - `buckets/<bucket_start_ms>.idx`: one file per time bucket (`bucket_width_ms` wide, 10 s by
//!   default) of fixed 24-byte entries `[due_ms i64][segment u32][offset u32][len u32][crc u32]`,
//!   appended in log order. Entry `i` of bucket `b` is timer `(b, i)`: the [`TimerId`].
//! - `buckets/<bucket_start_ms>.fired`: the indices of the bucket's timers marked fired, 8 bytes
//!   each (`[index u32][crc u32]`), in any order. Durable at the next [`TimerStore::sync`].
//! - `checkpoint`: `[segment u32][offset u32][bucket_width_ms i64][crc u32]`, replaced atomically:
//!   every record before that log position has its bucket entry fdatasync'ed. Bucket files are
//!   therefore written without a sync of their own; a checkpoint (at each segment roll, after
//!   `DIRTY_BUCKETS_CHECKPOINT` bucket files were touched, and at open and close) syncs them in
//!   one go, on its own thread (see `checkpoint`), so firing never waits for those fsyncs.
//!
//! # Recovery
//!
//! At open every bucket file is cut at its first torn entry and at its first entry at or after
//! the checkpoint (entries are appended in log order, so those form a suffix), then the log from
//! the checkpoint on is replayed, its torn tail cut, re-appending those entries: the same
//! entries in the same order, so the same indices, so fired marks still name the right timers.
//! Marks naming an index the replay did not bring back (their record never reached the disk)
//! are dropped. A timer whose mark was not synced fires again (at-least-once); a timer is never
//! fired early, and a synced schedule is never lost.
//!
//! # Memory
//!
//! Only a window of the earliest pending timers is in memory, sorted: at most
//! `TimerConfig::loaded_max` entries (~80 bytes each) below a global bound, plus at most
//! `TimerConfig::in_flight_max` handed out and not yet marked. Everything at or above the bound
//! stays in the bucket files; when the window empties, the next buckets are scanned (streaming,
//! keeping the smallest `REFILL_MAX` keys in a bounded heap) to refill it. Beside the window: ~100 bytes per bucket file
//! and per segment. Worst case with the defaults: (262,144 + 65,536) × ~80 B ≈ 26 MiB plus
//! 100 B × bucket files (40 days / 10 s = 345,600 ≈ 33 MiB if every 10 s of 40 days holds a
//! timer). See `limits` for the named values. Measured: 1 M pending timers (100-byte payloads,
//! spread over a day, 8,641 bucket files) in a 19 MiB process.
//!
//! # Not yet
//!
//! A bucket is one width at every distance: far-future timers spread over 40 days make many
//! small files (a hierarchical wheel would put them in coarse buckets and cascade them into fine
//! ones as they approach), and a very busy bucket costs a scan of its whole file per refill
//! (~10 ms for 500k entries, on the firing thread: refilling while idle before the next due time
//! would hide it).

mod checkpoint;
mod files;
mod format;
mod service;
mod store;

#[cfg(test)]
mod tests;

pub use service::{TimerService, DUE_CHANNEL_DEFAULT, SCHEDULE_REQUESTS_MAX};
pub use store::TimerStore;

use bytes::Bytes;

/// Default and maximum delay: RocketMQ 5's timer wheel allows up to 40 days by default
/// (`timerMaxDelaySec`).
pub const MAX_DELAY_MS_DEFAULT: i64 = 40 * 24 * 3600 * 1000;
/// Default width of one bucket file.
pub const BUCKET_WIDTH_MS_DEFAULT: i64 = 10_000;
/// Default window of timers held in memory, sorted (~80 bytes each: ~20 MiB).
pub const LOADED_MAX_DEFAULT: usize = 262_144;
/// Default timers handed out by `take_due` and not yet marked fired (~80 bytes each).
pub const IN_FLIGHT_MAX_DEFAULT: usize = 65_536;
/// Default size at which a payload segment is rolled (and a checkpoint taken).
pub const SEGMENT_BYTES_DEFAULT: u32 = 64 << 20;
/// Largest payload one timer may carry: a message is held whole in a segment.
pub const PAYLOAD_BYTES_MAX: usize = 16 << 20;
/// A checkpoint is taken once this many bucket files were written since the last one, so the
/// fdatasyncs it costs stay bounded (each is one small file's metadata and tail).
pub const DIRTY_BUCKETS_CHECKPOINT: usize = 1_024;
/// Timers one refill of the window loads at most. A refill scans whole bucket files (a bucket
/// at 50k timers/s and 10 s holds 500k), and sorting a big batch into the window stalls the
/// timer thread: 262k at once cost up to ~80 ms of lateness, 32k cost a scan (~10 ms) more
/// often.
pub const REFILL_MAX: usize = 32_768;
/// Open payload segments kept for reads; more are opened on demand.
pub const SEGMENT_FILES_OPEN_MAX: usize = 64;
/// Open bucket files kept for appends; more are reopened on demand.
pub const BUCKET_FILES_OPEN_MAX: usize = 256;

const _: () = assert!(PAYLOAD_BYTES_MAX as u64 * 2 <= SEGMENT_BYTES_DEFAULT as u64);
const _: () = assert!((LOADED_MAX_DEFAULT + IN_FLIGHT_MAX_DEFAULT) * 80 <= 32 << 20);

/// Settings of one timer store.
#[derive(Clone, Debug)]
pub struct TimerConfig {
    /// The furthest into the future a timer may be scheduled, from the wall clock at schedule.
    pub max_delay_ms: i64,
    /// Width of one bucket file. Fixed when the store is created: a reopen with another width
    /// keeps the stored one (and logs it).
    pub bucket_width_ms: i64,
    /// Timers held in memory ahead of firing (the loaded window).
    pub loaded_max: usize,
    /// Timers handed out by `take_due` and not yet marked fired; `take_due` returns nothing more
    /// until some are marked.
    pub in_flight_max: usize,
    /// Payload segment size at which a new one is started.
    pub segment_bytes: u32,
    /// Run checkpoints (one fdatasync per bucket file written since the last) on their own
    /// thread, so firing does not wait for them. Off only in tests that need to know when
    /// index bytes became durable.
    pub background_checkpoints: bool,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            max_delay_ms: MAX_DELAY_MS_DEFAULT,
            bucket_width_ms: BUCKET_WIDTH_MS_DEFAULT,
            loaded_max: LOADED_MAX_DEFAULT,
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            background_checkpoints: true,
        }
    }
}

/// One timer: its bucket and its position in the bucket file. Unique within a store while the
/// timer is pending (a bucket file, once every timer in it fired, may be deleted and a later
/// schedule into the same, past, bucket start again at 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    bucket_ms: i64,
    index: u32,
}

impl TimerId {
    /// Start of the time bucket the timer is filed under.
    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// Position within the bucket.
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// A timer whose time has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueTimer {
    pub id: TimerId,
    pub due_ms: i64,
    pub payload: Bytes,
}

/// Milliseconds since the Unix epoch, by the wall clock: due times are wall-clock times (a
/// message delayed to 12:00 fires at 12:00 after a restart too).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
