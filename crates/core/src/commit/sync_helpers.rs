//! A writer's fsync helpers: threads that take the commit steps of the logs its batches wrote,
//! so that the fdatasyncs of a writer's logs overlap instead of running in a row, and overlap
//! the writer's next writes. Each fdatasync waits on the device; in a row, the waiters of the
//! last log paid for all of them (at half the Kafka linger-0 peak, p99 23–27 ms against 11–12 ms
//! side by side, issue 14). Started once per writer: spawning threads per batch cost a quarter
//! more broker CPU per record.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::group_sync::commit_group;
use super::limits::SYNC_HELPERS_PER_WRITER;
use super::rule::CommitRule;
use super::writer::{commit, Tracked};

/// A commit step queued on a helper.
enum Step {
    /// One log: its own fdatasync.
    One(Arc<Tracked>),
    /// Logs on one device: one `syncfs` for all (`group_sync`).
    Group(Vec<Arc<Tracked>>),
}

pub(super) struct SyncHelpers {
    work: Vec<Sender<Step>>,
    threads: Vec<JoinHandle<()>>,
    /// Fewest logs one batch must have dirtied on one device for them to share a `syncfs`;
    /// 0 turns the grouping off.
    syncfs_min_logs: usize,
    /// Round robin of groups over the helpers.
    next_group: AtomicUsize,
}

impl SyncHelpers {
    /// `SYNC_HELPERS_PER_WRITER` threads named after the writer. A helper that cannot be
    /// started is simply absent: its logs are committed on the writer.
    pub(super) fn start(writer: &str, syncfs_min_logs: usize) -> SyncHelpers {
        let mut work = Vec::new();
        let mut threads = Vec::new();
        for i in 0..SYNC_HELPERS_PER_WRITER {
            let (tx, rx) = mpsc::channel::<Step>();
            let spawned = std::thread::Builder::new()
                .name(format!("{writer}-sync-{i}"))
                .spawn(move || {
                    while let Ok(step) = rx.recv() {
                        // The steps report their own errors; a panic is caught so this helper
                        // goes on with the other logs.
                        if std::panic::catch_unwind(AssertUnwindSafe(|| take_step(step))).is_err() {
                            tracing::error!("a commit step panicked");
                        }
                    }
                });
            match spawned {
                Ok(thread) => {
                    work.push(tx);
                    threads.push(thread);
                }
                Err(e) => tracing::warn!(error = %e, "starting an fsync helper failed"),
            }
        }
        SyncHelpers {
            work,
            threads,
            syncfs_min_logs,
            next_group: AtomicUsize::new(0),
        }
    }

    /// Queues the commit steps of `logs` (all `Synced`) on the helpers and returns without
    /// waiting. Logs sharing a device, when at least `syncfs_min_logs` of them, become one
    /// group step (one `syncfs`); the others each go to the helper its address picks (so one
    /// log's syncs stay in order). A log whose step is queued and not started yet is skipped:
    /// that step will cover these writes.
    pub(super) fn start_all(&self, logs: &[&Arc<Tracked>]) {
        let mut due: Vec<Arc<Tracked>> = logs
            .iter()
            .filter(|log| !log.sync_queued.swap(true, Ordering::AcqRel))
            .map(|log| Arc::clone(log))
            .collect();
        if self.syncfs_min_logs > 0 && due.len() >= self.syncfs_min_logs && !self.work.is_empty() {
            due.sort_by_key(|log| log.device);
            let mut alone = Vec::new();
            for group in due.chunk_by(|a, b| a.device == b.device) {
                if group[0].device.is_some() && group.len() >= self.syncfs_min_logs {
                    let helper = self.next_group.fetch_add(1, Ordering::Relaxed) % self.work.len();
                    if let Err(refused) = self.work[helper].send(Step::Group(group.to_vec())) {
                        take_step(refused.0);
                    }
                } else {
                    alone.extend(group.iter().cloned());
                }
            }
            due = alone;
        }
        for log in due {
            let helper = (!self.work.is_empty())
                .then(|| &self.work[(Arc::as_ptr(&log) as usize >> 4) % self.work.len()]);
            match helper {
                Some(helper) => {
                    if let Err(refused) = helper.send(Step::One(log)) {
                        take_step(refused.0);
                    }
                }
                None => take_step(Step::One(log)),
            }
        }
    }
}

/// Runs a queued step (on a helper, or on the writer when no helper took it).
fn take_step(step: Step) {
    match step {
        Step::One(log) => {
            // Cleared before the step captures the log's end: writes after this queue another
            // step.
            log.sync_queued.store(false, Ordering::Release);
            commit(&log, CommitRule::Synced);
        }
        Step::Group(logs) => commit_group(&logs),
    }
}

impl Drop for SyncHelpers {
    fn drop(&mut self) {
        self.work.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
