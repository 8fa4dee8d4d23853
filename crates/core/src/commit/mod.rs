//! The commit seam: where log writes happen and where "committed" is decided.
//!
//! A [`Committer`] runs a fixed set of writer OS threads (`CommitConfig::writer_threads`), each
//! fed by its own bounded queue (`CommitConfig::writer_queue_jobs`). Every log is pinned to one
//! writer when it is registered ([`Committer::register`] → [`LogWriter`]), so the writes to one
//! log run in the order they were queued. A writer drains a batch of jobs (appends, and closures
//! for other file work such as a queue's ack file), then takes one commit step per log the batch
//! wrote: under [`CommitRule::Synced`] one fdatasync, however many appends and waiters the
//! batch held (group commit), then `Log::commit_to` and a publish on the log's [`CommitPoint`].
//!
//! Why threads of our own instead of tokio's blocking pool: a waiter never occupies a thread.
//! Before, each produce or confirm parked a blocking-pool thread in `flush_to` until someone's
//! fsync covered it, so 16 slow waiters starved fetch reads and metadata changes. Now the
//! reactor only queues a job (awaiting room when the queue is full: backpressure, not a
//! blocked thread) and awaits a watch.
//!
//! Who decides what: storage writes, syncs and moves the high watermark when told; the rule for
//! when a write counts as committed lives in [`CommitRule`] only (today the topic's flush mode,
//! tomorrow a Raft quorum); gateways await [`CommitPoint::wait`] and answer.
//!
//! A failed fsync halts its log: waiters past the commit point get an error (never an
//! acknowledgement), later writes are refused, an error line is logged, and the thread goes on
//! serving its other logs.
//!
//! Today one data directory, so one set of writers; with several disks, one `Committer` per
//! disk keeps one device's stall from delaying another's commits.

mod group_sync;
mod limits;
mod point;
mod rule;
mod sync_helpers;
mod writer;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use porter_storage::{AppendInfo, Log, Offset};
use tokio::sync::{mpsc, oneshot};

pub use limits::*;
pub use point::CommitPoint;
pub use rule::CommitRule;

use crate::error::{CoreError, Result};
use writer::{Job, Tracked};

/// Writer threads and their queues (broker settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitConfig {
    /// Writer OS threads; clamped to `1..=WRITER_THREADS_MAX`.
    pub writer_threads: usize,
    /// Jobs each writer's queue holds before senders wait; clamped to
    /// `1..=WRITER_QUEUE_JOBS_MAX`.
    pub writer_queue_jobs: usize,
    /// How long a writer whose jobs stream in (some arrived during its last commit step) keeps
    /// gathering a small batch before its next fsync; clamped to `COMMIT_DELAY_MAX`. Zero: sync
    /// as soon as the batch is run. See `writer::run`.
    pub commit_delay: std::time::Duration,
    /// Fewest `Synced` logs on one device a batch must have written for them to share one
    /// `syncfs` instead of an fdatasync each (see `group_sync`); 0: always one fdatasync per
    /// log. Clamped to `SYNCFS_MIN_LOGS_MAX`.
    pub syncfs_min_logs: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            writer_threads: WRITER_THREADS_DEFAULT,
            writer_queue_jobs: WRITER_QUEUE_JOBS_DEFAULT,
            commit_delay: COMMIT_DELAY_DEFAULT,
            syncfs_min_logs: SYNCFS_MIN_LOGS_DEFAULT,
        }
    }
}

/// The writer threads. Dropping every handle (the committer and all its `LogWriter`s) lets the
/// threads finish their queues and exit; [`Committer::shutdown`] does it explicitly.
pub struct Committer {
    writers: Vec<mpsc::Sender<Job>>,
    /// Round-robin pinning of newly registered logs.
    next: AtomicUsize,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Every commit step's fdatasync (or group `syncfs`), however long it took.
    fsync: Arc<porter_telemetry::Histogram>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("writers", &self.writers.len())
            .field("queued_jobs", &self.queued_jobs())
            .finish()
    }
}

impl Committer {
    /// Starts the writer threads.
    pub fn start(config: &CommitConfig) -> Result<Arc<Committer>> {
        let threads = config.writer_threads.clamp(1, WRITER_THREADS_MAX);
        let queue = config.writer_queue_jobs.clamp(1, WRITER_QUEUE_JOBS_MAX);
        let delay = config.commit_delay.min(COMMIT_DELAY_MAX);
        let mut syncfs_min_logs = config.syncfs_min_logs.min(SYNCFS_MIN_LOGS_MAX);
        if syncfs_min_logs > 0 && !group_sync::syncfs_reports_errors() {
            tracing::info!("this kernel's syncfs does not report write-back errors (before Linux 5.8): every log is synced on its own");
            syncfs_min_logs = 0;
        }
        let mut writers = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let (sender, receiver) = mpsc::channel(queue);
            let handle = std::thread::Builder::new()
                .name(format!("porter-writer-{index}"))
                .spawn(move || writer::run(receiver, delay, syncfs_min_logs))
                .map_err(|source| CoreError::Io {
                    path: "porter-writer".into(),
                    source,
                })?;
            writers.push(sender);
            handles.push(handle);
        }
        Ok(Arc::new(Committer {
            writers,
            next: AtomicUsize::new(0),
            threads: Mutex::new(handles),
            fsync: Arc::default(),
        }))
    }

    /// Pins `log` to a writer thread; all writes to it go through the returned handle.
    pub fn register(&self, log: Arc<Log>) -> LogWriter {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.writers.len();
        let tracked = Arc::new(Tracked::new(log, self.fsync.clone()));
        let point = CommitPoint::new(tracked.state.subscribe(), Arc::clone(&tracked.dir));
        LogWriter {
            tracked,
            jobs: self.writers[index].clone(),
            point,
        }
    }

    /// How long commit steps' fsyncs took, so far (`/metrics`).
    pub fn fsync_latency(&self) -> porter_telemetry::Snapshot {
        self.fsync.snapshot()
    }

    /// Jobs queued on all writers and not yet taken (observability; tests).
    pub fn queued_jobs(&self) -> usize {
        self.writers
            .iter()
            .map(|w| w.max_capacity() - w.capacity())
            .sum()
    }

    /// Lets every writer finish the jobs queued so far, then stops and joins the threads.
    /// Writes queued afterwards fail with `ShuttingDown`. Blocking: call from a blocking
    /// thread (the broker's shutdown), after the gateways stopped producing.
    pub fn shutdown(&self) {
        for writer in &self.writers {
            // A writer already gone has nothing left to finish.
            let _ = writer.blocking_send(Job::Stop);
        }
        for handle in self.threads.lock().drain(..) {
            if handle.join().is_err() {
                tracing::error!("a writer thread panicked");
            }
        }
    }
}

/// One log's way in: writes run on its writer thread, in queue order; commits are awaited.
#[derive(Clone)]
pub struct LogWriter {
    tracked: Arc<Tracked>,
    jobs: mpsc::Sender<Job>,
    point: CommitPoint,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("log", &self.tracked.dir)
            .field("committed", &self.point.committed())
            .finish()
    }
}

impl LogWriter {
    /// The log, for reads (which may run anywhere: they take no write lock).
    pub fn log(&self) -> &Arc<Log> {
        &self.tracked.log
    }

    /// The log's committed offset, to await.
    pub fn point(&self) -> &CommitPoint {
        &self.point
    }

    /// Offsets below this are committed.
    pub fn committed(&self) -> Offset {
        self.point.committed()
    }

    /// Returns once every offset below `end` is committed (see [`CommitPoint::wait`]).
    pub async fn wait_committed(&self, end: Offset) -> Result<()> {
        self.point.wait(end).await
    }

    /// Queues `work` on the log's writer thread (waiting for room in its queue) and returns
    /// once it is queued: jobs queued one after another run in that order. Await the returned
    /// [`Written`] for `work`'s result. The log's commit step follows the batch `work` ran in.
    pub async fn enqueue<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Log) -> Result<T> + Send + 'static,
    ) -> Result<Written<T>> {
        let (sender, receiver) = oneshot::channel();
        let job = Job::Log {
            log: Arc::clone(&self.tracked),
            work: Box::new(move |log| {
                let result = match log {
                    Ok(log) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(log))),
                    Err(refused) => Ok(Err(refused)),
                };
                let _ = sender.send(result);
            }),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        Ok(Written { receiver })
    }

    /// [`LogWriter::enqueue`], then its result.
    pub async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Log) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.enqueue(work).await?.await
    }

    /// Appends batches from a client (validated, CRC checked) on the writer thread.
    pub async fn append(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo> {
        self.write(move |log| Ok(log.append(records, now_ms)?))
            .await
    }

    /// Appends batches the core encoded itself (`Log::append_prepared`: no second CRC pass).
    pub async fn append_prepared(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo> {
        self.write(move |log| Ok(log.append_prepared(records, now_ms)?))
            .await
    }

    /// Runs file work that is not a write to this log (a queue's ack file append, sync or
    /// compaction) on the log's writer thread, ordered with its writes. No commit step.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (sender, receiver) = oneshot::channel();
        let job = Job::Run(Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = sender.send(result);
        }));
        self.jobs
            .send(job)
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        match receiver.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(CoreError::ShuttingDown),
        }
    }

    /// Queues file work like [`Self::run`] without waiting for it, if the writer's queue has
    /// room now; otherwise hands `work` back. For work whose outcome only needs logging (a
    /// queue's ack-file appends), this saves a task and two wake-ups per job.
    pub fn try_run<F: FnOnce() + Send + 'static>(&self, work: F) -> std::result::Result<(), F> {
        match self.jobs.try_reserve() {
            Ok(permit) => {
                permit.send(Job::Run(Box::new(work)));
                Ok(())
            }
            Err(_) => Err(work),
        }
    }

    /// Takes a commit step with no write: after the log's flush mode changed (leaving `group`
    /// commits what was written but not yet synced).
    pub async fn recommit(&self) -> Result<()> {
        self.write(|_| Ok(())).await
    }
}

/// The result of a queued log write, once the writer ran it. Ready when the write is done
/// (page cache), not when it is committed: await [`LogWriter::wait_committed`] for that.
#[must_use = "the write's result (its offsets or its error) is in here"]
pub struct Written<T> {
    receiver: oneshot::Receiver<std::thread::Result<Result<T>>>,
}

impl<T> Future for Written<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Ok(result))) => Poll::Ready(result),
            // The caller's closure panicked on the writer thread: a bug; surface it here, as
            // `spawn_blocking` did.
            Poll::Ready(Ok(Err(panic))) => std::panic::resume_unwind(panic),
            Poll::Ready(Err(_)) => Poll::Ready(Err(CoreError::ShuttingDown)),
        }
    }
}
