//! A writer's fsync helpers: threads that take the commit step of some of the logs a batch
//! wrote while the writer takes another's, so that the fdatasyncs of a writer's logs overlap
//! instead of running in a row. Each fdatasync waits on the device; in a row, the waiters of the
//! last log paid for all of them (at half the Kafka linger-0 peak, p99 23–27 ms against 11–12 ms
//! side by side, issue 14). Started once per writer: spawning threads per batch cost a quarter
//! more broker CPU per record.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::limits::SYNC_HELPERS_PER_WRITER;
use super::rule::CommitRule;
use super::writer::{commit, Tracked};

pub(super) struct SyncHelpers {
    work: Vec<Sender<Arc<Tracked>>>,
    done: Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl SyncHelpers {
    /// `SYNC_HELPERS_PER_WRITER` threads named after the writer. A helper that cannot be
    /// started is simply absent: its logs are committed on the writer.
    pub(super) fn start(writer: &str) -> SyncHelpers {
        let (done_tx, done) = mpsc::channel();
        let mut work = Vec::new();
        let mut threads = Vec::new();
        for i in 0..SYNC_HELPERS_PER_WRITER {
            let (tx, rx) = mpsc::channel::<Arc<Tracked>>();
            let done_tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{writer}-sync-{i}"))
                .spawn(move || {
                    while let Ok(log) = rx.recv() {
                        // `commit` reports its own errors; a panic must still say "done", or
                        // the writer would wait for it forever.
                        if std::panic::catch_unwind(AssertUnwindSafe(|| {
                            commit(&log, CommitRule::Synced)
                        }))
                        .is_err()
                        {
                            tracing::error!(log = %log.dir.display(), "a commit step panicked");
                        }
                        if done_tx.send(()).is_err() {
                            break;
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
            done,
            threads,
        }
    }

    /// The commit steps of `logs` (all `Synced`), up to one per helper on the helpers and the
    /// rest here; returns when all are done.
    pub(super) fn commit_all(&self, logs: &[&Arc<Tracked>]) {
        let Some((first, rest)) = logs.split_first() else {
            return;
        };
        let mut pending = 0;
        for (i, log) in rest.iter().enumerate() {
            match self.work.get(i) {
                Some(helper) if helper.send(Arc::clone(log)).is_ok() => pending += 1,
                _ => commit(log, CommitRule::Synced),
            }
        }
        commit(first, CommitRule::Synced);
        for _ in 0..pending {
            if self.done.recv().is_err() {
                break;
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
