//! One thread per process for segment work that must not run on an append path: the
//! fdatasyncs a roll leaves behind (see `Log::roll`), and the next segment's files (`spare`). A roll used to fdatasync the old
//! segment's three files under the append lock, on the partition's writer thread, so every
//! append queued behind it (and every other log sharing that writer) waited for the disk.
//!
//! The queue is bounded (`limits::BACKGROUND_JOBS_MAX`); when it is full, or the thread could
//! not be started, the caller runs the job itself, as before the deferral: slower, never
//! unsafe. Jobs are idempotent and safe to run late: a segment deleted meanwhile has nothing
//! left to sync, and `Log::close` runs whatever is still due.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

use crate::limits;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

static WORKER: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();

/// Queues `job` for the background thread, or runs it here when the queue is full.
pub(crate) fn run(job: Job) {
    let worker = WORKER.get_or_init(start);
    let job = match worker {
        Some(sender) => match sender.try_send(job) {
            Ok(()) => return,
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job,
        },
        None => job,
    };
    run_caught(job);
}

fn start() -> Option<SyncSender<Job>> {
    let (sender, receiver) = sync_channel::<Job>(limits::BACKGROUND_JOBS_MAX);
    let spawned = std::thread::Builder::new()
        .name("porter-segments".into())
        .spawn(move || {
            for job in receiver {
                run_caught(job);
            }
        });
    match spawned {
        Ok(_) => Some(sender),
        Err(error) => {
            tracing::error!(%error, "cannot start the segment thread: rolls sync inline");
            None
        }
    }
}

/// A panicking job (a bug) must not take the thread, and every later job, with it.
fn run_caught(job: Job) {
    if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
        tracing::error!("a background segment job panicked");
    }
}
