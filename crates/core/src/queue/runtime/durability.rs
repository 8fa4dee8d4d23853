//! Durability: ack changes appended to the lanes' ack files, a delivered watermark fsynced
//! before the deliveries it covers are sent, and waiting for a lane's log to be durable.
//!
//! Ack-file writes run on the lane's writer thread ([`crate::commit`]), never on a reactor
//! thread: an append may trigger the ack file's compaction (write, fsync, rename, dir fsync).
//! Synchronous callers (`ack`, `purge`) hand their changes to [`PendingAcks`] and a queued job
//! writes them, in order; a graceful close writes what is left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use porter_storage::Offset;

use super::Queue;
use crate::error::Result;
use crate::queue::ack_log::SharedAckLog;
use crate::queue::state::AckChange;

/// A lane's ack changes on their way to its ack file, in the order the state produced them.
/// Not bounded by a count of its own: it holds only changes produced while the lane's writer
/// job is queued (each job takes all of them), at most one per settled or delivered message,
/// and those are bounded by the queue's deliveries in flight (consumer prefetch) and its
/// length limits.
#[derive(Default)]
pub(crate) struct PendingAcks {
    changes: Mutex<Vec<AckChange>>,
    /// A writer job that will take `changes` is queued.
    job_queued: AtomicBool,
}

impl PendingAcks {
    /// Appends everything pending to `acks` (page cache). Blocking: on the writer thread, or at
    /// close once the writers stopped.
    pub(crate) fn write_to(&self, acks: &SharedAckLog) -> Result<()> {
        // Cleared before taking: changes added from here on queue a job of their own.
        self.job_queued.store(false, Ordering::Release);
        let changes = std::mem::take(&mut *self.changes.lock());
        acks.lock().append(&changes)
    }
}

impl Queue {
    /// Hands the states' pending ack changes to the lanes' writer threads, behind every change
    /// handed over before; they reach the ack files' page cache shortly after.
    pub(crate) fn persist_changes(&self) -> Result<()> {
        let lanes: Vec<usize> = {
            let mut inner = self.inner.lock();
            let changes = inner.take_changes();
            // Under the state's lock, so concurrent callers queue changes in state order.
            changes
                .into_iter()
                .enumerate()
                .filter(|(_, changes)| !changes.is_empty())
                .map(|(lane, changes)| {
                    self.lanes[lane].pending_acks.changes.lock().extend(changes);
                    lane
                })
                .collect()
        };
        for lane in lanes {
            self.write_acks_later(lane);
        }
        Ok(())
    }

    /// Queues one writer job for `lane`'s pending acks unless one is queued already.
    fn write_acks_later(&self, lane: usize) {
        let files = &self.lanes[lane];
        if files.pending_acks.job_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let (writer, pending, acks) = (
            files.writer.clone(),
            Arc::clone(&files.pending_acks),
            Arc::clone(&files.acks),
        );
        let (vhost, name) = (self.vhost.clone(), self.name.clone());
        let write = move || match pending.write_to(&acks) {
            // Stopping: the queue's close writes what is pending.
            Ok(()) | Err(crate::error::CoreError::ShuttingDown) => {}
            Err(e) => {
                tracing::error!(vhost = %vhost, queue = %name, error = %e, "writing ack changes failed")
            }
        };
        // Straight onto the writer's queue when it has room (no task, no wake-up to hear the
        // result); a full queue makes a task wait for room instead of blocking here.
        let Err(write) = writer.try_run(write) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move {
                if let Err(e) = writer.run(write).await {
                    if !matches!(e, crate::error::CoreError::ShuttingDown) {
                        tracing::error!(error = %e, "writing ack changes failed");
                    }
                }
            })),
            // Not on the runtime (a writer thread, a test's plain thread): not a reactor
            // either, so write here.
            Err(_) => write(),
        }
    }

    /// Appends `changes` behind everything pending; a delivered watermark among them is
    /// fsynced before returning (for a durable queue), since deliveries taken after it are
    /// about to be sent.
    pub(crate) async fn persist_before_send(&self, changes: Vec<Vec<AckChange>>) -> Result<()> {
        for (lane, changes) in changes.into_iter().enumerate() {
            if changes.is_empty() {
                continue;
            }
            // A transient queue is deleted at restart: nothing would read its watermark.
            let watermark = self.definition.durable
                && changes
                    .iter()
                    .any(|c| matches!(c, AckChange::DeliveredWatermark(_)));
            let files = &self.lanes[lane];
            files.pending_acks.changes.lock().extend(changes);
            let (pending, acks) = (Arc::clone(&files.pending_acks), Arc::clone(&files.acks));
            files
                .writer
                .run(move || -> Result<()> {
                    pending.write_to(&acks)?;
                    if watermark {
                        acks.sync()?;
                    }
                    Ok(())
                })
                .await??;
        }
        Ok(())
    }

    /// Returns once `lane`'s log is committed below `end`: synced, for a durable queue (its
    /// log's flush mode is `group`); written, for a transient one. Awaits the lane's commit
    /// point; no thread waits.
    pub(crate) async fn wait_durable(&self, lane: usize, end: Offset) -> Result<()> {
        self.lanes[lane].writer.wait_committed(end).await
    }
}
