//! The writer thread: runs a batch of jobs, then starts one commit step for every log the batch
//! wrote (one fsync per dirty `Synced` log, however many appends and waiters it had, each
//! publishing its log's new committed offset) on its sync helpers, and runs the next batch
//! while they sync.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use porter_storage::{Log, StorageError};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use super::limits::{COMMIT_DELAY_BATCH_JOBS, COMMIT_DELAY_SIBLINGS, JOBS_PER_COMMIT_MAX};
use super::point::{CommitState, Halt};
use super::rule::CommitRule;
use super::sync_helpers::SyncHelpers;
use crate::error::CoreError;

/// Work on one log: given the log, or the error that refuses it (the log halted).
pub(super) type LogWork = Box<dyn FnOnce(Result<&Log, CoreError>) + Send>;

pub(super) enum Job {
    /// Writes to `log`; its commit step follows at the end of the batch.
    Log { log: Arc<Tracked>, work: LogWork },
    /// File work that is not a log write (a queue's ack file): ordered with the thread's other
    /// jobs, no commit step.
    Run(Box<dyn FnOnce() + Send>),
    /// Finish the jobs queued before this one, then exit (graceful shutdown).
    Stop,
}

/// A log registered with a writer thread.
pub(super) struct Tracked {
    pub log: Arc<Log>,
    pub dir: Arc<Path>,
    pub state: watch::Sender<CommitState>,
    /// Whether the log is in the current batch's dirty list (only its writer thread uses it).
    in_batch: AtomicBool,
    /// Whether a commit step for it is queued on a sync helper and not started yet.
    pub sync_queued: AtomicBool,
    /// Its file system's device: logs on one device share a `syncfs` (see `group_sync`).
    pub device: Option<u64>,
    /// The committer's fsync latency histogram (`/metrics`), shared by all its logs.
    pub fsync: Arc<porter_telemetry::Histogram>,
}

impl Tracked {
    pub fn new(log: Arc<Log>, fsync: Arc<porter_telemetry::Histogram>) -> Tracked {
        let state = watch::Sender::new(CommitState {
            committed: log.high_watermark(),
            halted: None,
        });
        Tracked {
            device: super::group_sync::device_of(log.dir()),
            fsync,
            dir: Arc::from(log.dir()),
            log,
            state,
            in_batch: AtomicBool::new(false),
            sync_queued: AtomicBool::new(false),
        }
    }
}

/// The thread's loop; returns when `Stop` arrives or every sender is gone.
///
/// The commit delay: when the last batch held several writes and more jobs arrived while it was
/// being committed, the writes come from clients that do not wait for their commit to send more
/// (a publisher with many confirms outstanding, Kafka producers with requests in flight).
/// Syncing each small batch at once would then cost one fsync per handful of messages, and on
/// a VM an fsync costs the broker more CPU than everything else a message needs. So a small
/// batch waits up to `delay` for more jobs before its fsync (PostgreSQL's `commit_delay` with
/// `commit_siblings`, RabbitMQ's batched syncs). A client with one message in flight makes
/// batches of one write (its queue's ack-file jobs are not writes to a log), and is synced at
/// once as before: delaying it would only slow it down.
pub(super) fn run(mut jobs: mpsc::Receiver<Job>, delay: Duration, syncfs_min_logs: usize) {
    let mut dirty: Vec<Arc<Tracked>> = Vec::new();
    let helpers = SyncHelpers::start(
        std::thread::current().name().unwrap_or("porter-writer"),
        syncfs_min_logs,
    );
    // Jobs were queued when the last commit step ended: they stream in.
    let mut streaming = false;
    while let Some(job) = jobs.blocking_recv() {
        let mut writes = 0;
        let mut stop = run_job(job, &mut dirty, &mut writes);
        let mut ran = 1;
        let gather_until = (streaming && !delay.is_zero()).then(|| Instant::now() + delay);
        while !stop && ran < JOBS_PER_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(job) => {
                    stop = run_job(job, &mut dirty, &mut writes);
                    ran += 1;
                }
                Err(TryRecvError::Empty) => {
                    let Some(until) = gather_until.filter(|_| ran < COMMIT_DELAY_BATCH_JOBS) else {
                        break;
                    };
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    std::thread::sleep((until - now).min(GATHER_POLL));
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        for log in &dirty {
            log.in_batch.store(false, Ordering::Relaxed);
        }
        commit_all(&dirty, &helpers);
        dirty.clear();
        if stop {
            break;
        }
        streaming = writes >= COMMIT_DELAY_SIBLINGS && !jobs.is_empty();
    }
}

/// How often a gathering writer looks for new jobs (a sleep, not a wake-up per job).
const GATHER_POLL: Duration = Duration::from_micros(100);

/// Runs one job; true for `Stop`. The job's own code catches its panics (see `LogWriter`), so a
/// bug in one caller's closure cannot take the thread, and every other log, down with it.
fn run_job(job: Job, dirty: &mut Vec<Arc<Tracked>>, writes: &mut usize) -> bool {
    match job {
        Job::Log { log, work } => {
            *writes += 1;
            let halted = log.state.borrow().halted.clone();
            match halted {
                Some(halt) => work(Err(halt.error(&log.dir))),
                None => {
                    work(Ok(&log.log));
                    if !log.in_batch.swap(true, Ordering::Relaxed) {
                        dirty.push(log);
                    }
                }
            }
        }
        Job::Run(work) => {
            if std::panic::catch_unwind(AssertUnwindSafe(work)).is_err() {
                tracing::error!("a writer job panicked");
            }
        }
        Job::Stop => return true,
    }
    false
}

/// The commit step of every log the batch wrote: the fsyncing ones queued on the writer's
/// helpers (see `sync_helpers`), the others done here. Each log's rule is read once.
///
/// The writer does not wait for the fsyncs: each waits on the device, and the jobs queued
/// behind them (the next messages' writes, which make those deliverable, and ack-file writes)
/// would wait with them; a chat room's message written to 40 members' queues held every later
/// write behind 40 fsyncs. Storage allows it: a log's sync captures its end before the
/// fdatasync and appends go on beside it (`Log`'s `sync_lock`).
fn commit_all(logs: &[Arc<Tracked>], helpers: &SyncHelpers) {
    let mut synced = Vec::with_capacity(logs.len());
    for log in logs {
        match CommitRule::of(&log.log.config()) {
            CommitRule::Synced => synced.push(log),
            CommitRule::Written => commit(log, CommitRule::Written),
        }
    }
    helpers.start_all(&synced);
}

/// The commit step of one log under `rule`: sync or not, move the high watermark, publish.
pub(super) fn commit(tracked: &Tracked, rule: CommitRule) {
    let log = &tracked.log;
    let end = match rule {
        CommitRule::Synced => {
            let started = Instant::now();
            let end = log.sync();
            tracked.fsync.record(started.elapsed());
            end
        }
        CommitRule::Written => Ok(log.log_end_offset()),
    };
    match end {
        Ok(end) => publish_committed(tracked, end),
        Err(StorageError::Closed) => halt(tracked, Halt::Closed),
        Err(error) => {
            tracing::error!(log = %tracked.dir.display(), %error, "fsync failed: the log's unacknowledged writes fail and it takes no more until a restart");
            halt(tracked, Halt::SyncFailed(error.to_string().into()));
        }
    }
}

/// Moves the log's high watermark to `end` (durable or written, as its rule wants) and wakes
/// the waiters it covers.
pub(super) fn publish_committed(tracked: &Tracked, end: porter_storage::Offset) {
    let committed = tracked.log.commit_to(end);
    tracked.state.send_if_modified(|state| {
        let moved = committed > state.committed;
        state.committed = state.committed.max(committed);
        moved
    });
}

pub(super) fn halt(tracked: &Tracked, halt: Halt) {
    tracked.state.send_modify(|state| {
        state.halted.get_or_insert(halt);
    });
}
