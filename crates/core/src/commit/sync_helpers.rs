//! A writer's fsync helpers: threads that take the commit steps of the logs its batches wrote,
//! so that the fdatasyncs of a writer's logs overlap instead of running in a row, and overlap
//! the writer's next writes. Each fdatasync waits on the device; in a row, the waiters of the
//! last log paid for all of them (at half the Kafka linger-0 peak, p99 23–27 ms against 11–12 ms
//! side by side, issue 14). Started once per writer: spawning threads per batch cost a quarter
//! more broker CPU per record.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::limits::SYNC_HELPERS_PER_WRITER;
use super::rule::CommitRule;
use super::writer::{commit, Tracked};

pub(super) struct SyncHelpers {
    work: Vec<Sender<Arc<Tracked>>>,
    threads: Vec<JoinHandle<()>>,
}

impl SyncHelpers {
    /// `SYNC_HELPERS_PER_WRITER` threads named after the writer. A helper that cannot be
    /// started is simply absent: its logs are committed on the writer.
    pub(super) fn start(writer: &str) -> SyncHelpers {
        let mut work = Vec::new();
        let mut threads = Vec::new();
        for i in 0..SYNC_HELPERS_PER_WRITER {
            let (tx, rx) = mpsc::channel::<Arc<Tracked>>();
            let spawned = std::thread::Builder::new()
                .name(format!("{writer}-sync-{i}"))
                .spawn(move || {
                    while let Ok(log) = rx.recv() {
                        // Cleared before the step captures the log's end: writes after this
                        // queue another step.
                        log.sync_queued.store(false, Ordering::Release);
                        // `commit` reports its own errors; a panic is caught so this helper
                        // goes on with the other logs.
                        if std::panic::catch_unwind(AssertUnwindSafe(|| {
                            commit(&log, CommitRule::Synced)
                        }))
                        .is_err()
                        {
                            tracing::error!(log = %log.dir.display(), "a commit step panicked");
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
        SyncHelpers { work, threads }
    }

    /// Queues the commit steps of `logs` (all `Synced`) on the helpers, each log on the helper
    /// its address picks (so one log's syncs stay in order), and returns without waiting. A log
    /// whose step is queued and not started yet is skipped: that step will cover these writes.
    pub(super) fn start_all(&self, logs: &[&Arc<Tracked>]) {
        for log in logs {
            if log.sync_queued.swap(true, Ordering::AcqRel) {
                continue;
            }
            let helper = (!self.work.is_empty())
                .then(|| &self.work[(Arc::as_ptr(log) as usize >> 4) % self.work.len()]);
            match helper {
                Some(helper) if helper.send(Arc::clone(log)).is_ok() => {}
                _ => {
                    log.sync_queued.store(false, Ordering::Release);
                    commit(log, CommitRule::Synced);
                }
            }
        }
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
