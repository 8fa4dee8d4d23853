//! Named limits of the commit seam, with their worst case.
//!
//! Worst case of jobs waiting: `WRITER_THREADS_MAX * WRITER_QUEUE_JOBS_MAX` (64 × 65,536 ≈ 4.2
//! million boxed closures of ~100 bytes, ~400 MiB); at the defaults `2 * 1,024` = 2,048 jobs.
//! The bytes a job carries (a produce request's batches, an encoded message) are not counted
//! here: they are already charged to the gateway's memory budget that admitted the request,
//! and a full queue makes the sender wait (async), which stops that connection from reading.

/// Writer threads by default: one commit pipeline per core of a small machine. Each thread
/// serialises its logs' writes; their fsyncs run on its `SYNC_HELPERS_PER_WRITER` helpers,
/// side by side and beside the writer's next writes.
pub const WRITER_THREADS_DEFAULT: usize = 2;
/// Helper threads per writer taking the commit steps (fdatasync) of the logs its batches wrote
/// (a log always on the same helper): up to this many fsyncs of one writer overlap, and none
/// holds the writer. A helper's queue holds each log at most once (a log whose step is queued
/// and not started is not queued again), so it is bounded by the logs on its writer. Idle
/// threads otherwise; worst case `WRITER_THREADS_MAX * (1 + SYNC_HELPERS_PER_WRITER)` = 320
/// threads.
pub const SYNC_HELPERS_PER_WRITER: usize = 4;
/// Most writer threads a broker starts (a configured value is clamped to this): each is an OS
/// thread with its own queue, and past a few per disk they only contend for the same device.
pub const WRITER_THREADS_MAX: usize = 64;
/// Jobs a writer's queue holds by default before senders wait for room.
pub const WRITER_QUEUE_JOBS_DEFAULT: usize = 1024;
/// Most jobs a writer's queue may be configured to hold (see the module doc's worst case).
pub const WRITER_QUEUE_JOBS_MAX: usize = 1 << 16;
/// Jobs a writer runs before its commit step (fsync and publish). Bounds how long the first
/// waiter of a batch waits behind later jobs when the queue never runs dry, while still
/// letting one fsync cover a whole burst.
pub const JOBS_PER_COMMIT_MAX: usize = 256;

/// A writer's commit delay by default (see `CommitConfig::commit_delay`): a few fsyncs' worth on
/// a fast disk, far inside a durable publish's latency budget (5 ms at half the peak rate).
pub const COMMIT_DELAY_DEFAULT: std::time::Duration = std::time::Duration::from_micros(500);
/// The longest commit delay a broker accepts: every durable acknowledgement can wait this much
/// more.
pub const COMMIT_DELAY_MAX: std::time::Duration = std::time::Duration::from_millis(10);
/// Writes to logs a batch must have held (with more jobs queued when it was committed) for the
/// next small batch to wait out the commit delay: fewer means the clients wait for their
/// commits, and a delay would only slow them.
pub const COMMIT_DELAY_SIBLINGS: usize = 2;
/// A batch of at least this many jobs is committed at once: it already shares one fsync well.
pub const COMMIT_DELAY_BATCH_JOBS: usize = 32;

/// Fewest logs on one device a batch must have written to share one `syncfs`, by default: 0,
/// off. Measured on this VM (BENCHMARKS.md, MQTT fourth pass) with 4: 100-subscriber fan-out
/// delivered 9-27 % more per second and the broker's own CPU per delivery fell by a third, but
/// the whole machine's CPU per delivery did not fall: the work is writing one dirty page per
/// queue file, and `syncfs` only moves it to the kernel's flusher threads. Meanwhile `syncfs`
/// waits for every other dirty file on the file system (a test run's build output made one take
/// 0.4 s here), so it is only for a data disk of the broker's own: `[storage] syncfs_min_logs`.
pub const SYNCFS_MIN_LOGS_DEFAULT: usize = 0;
/// The threshold measured above, for operators who turn grouping on.
pub const SYNCFS_MIN_LOGS_SUGGESTED: usize = 4;
/// The largest value accepted; past it grouping would never happen on a real batch anyway.
pub const SYNCFS_MIN_LOGS_MAX: usize = JOBS_PER_COMMIT_MAX;

const _: () = assert!(COMMIT_DELAY_DEFAULT.as_micros() <= COMMIT_DELAY_MAX.as_micros());
const _: () = assert!(COMMIT_DELAY_BATCH_JOBS <= JOBS_PER_COMMIT_MAX);
const _: () = assert!(WRITER_THREADS_DEFAULT >= 1 && WRITER_THREADS_DEFAULT <= WRITER_THREADS_MAX);
const _: () =
    assert!(WRITER_QUEUE_JOBS_DEFAULT >= 1 && WRITER_QUEUE_JOBS_DEFAULT <= WRITER_QUEUE_JOBS_MAX);
const _: () = assert!(JOBS_PER_COMMIT_MAX >= 1);
// The worst case stated above: jobs in all queues fit comfortably in a usize and in memory.
const _: () = assert!(WRITER_THREADS_MAX * WRITER_QUEUE_JOBS_MAX <= 1 << 22);
