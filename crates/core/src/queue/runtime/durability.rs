//! Durability: ack changes appended to the lanes' ack files, a delivered watermark fsynced
//! before the deliveries it covers are sent, and waiting for a lane's log to be durable.

use porter_storage::Offset;

use super::Queue;
use crate::error::Result;
use crate::partition::{blocking, run_blocking};
use crate::queue::state::AckChange;

impl Queue {
    /// Appends the states' pending ack changes to the ack files (page cache).
    pub(crate) fn persist_changes(&self) -> Result<()> {
        let changes = self.inner.lock().take_changes();
        for (lane, changes) in changes.iter().enumerate() {
            self.lanes[lane].acks.lock().append(changes)?;
        }
        Ok(())
    }

    /// Appends `changes`; a delivered watermark among them is fsynced before returning, since
    /// deliveries taken after it are about to be sent.
    pub(crate) async fn persist_before_send(&self, changes: Vec<Vec<AckChange>>) -> Result<()> {
        for (lane, changes) in changes.into_iter().enumerate() {
            if changes.is_empty() {
                continue;
            }
            let watermark = changes
                .iter()
                .any(|c| matches!(c, AckChange::DeliveredWatermark(_)));
            let acks = self.lanes[lane].acks.clone();
            acks.lock().append(&changes)?;
            if watermark {
                run_blocking(move || acks.sync()).await?;
            }
        }
        Ok(())
    }

    /// Returns once `lane`'s log is durable below `end` (no-op for transient queues).
    pub(crate) async fn wait_durable(&self, lane: usize, end: Offset) -> Result<()> {
        let log = self.lanes[lane].log.clone();
        if !self.definition.durable || log.high_watermark() >= end {
            return Ok(());
        }
        blocking(move || log.flush_to(end)).await
    }
}
