//! A sync made outside the log for many logs at once (the commit seam's `syncfs`, one flush of
//! the whole file system for all the logs a batch wrote): the log says what such a sync covers
//! before it starts, and is told afterwards that it happened.

use std::sync::atomic::Ordering;

use super::Log;
use crate::{Offset, StorageError};

impl Log {
    /// First half of a sync made by someone else for many logs at once (the commit seam's
    /// `syncfs`, one flush of the whole file system for all the logs a batch wrote): the end
    /// that such a sync, started after this call, makes durable. `None` when the log end is
    /// already durable. Rolled segments' data is covered too: a file-system sync writes every
    /// dirty file, and the directory entries fdatasync alone would leave to the journal.
    pub fn sync_target(&self) -> Result<Option<Offset>, StorageError> {
        let state = self.state.lock();
        state.check_open()?;
        if self.fail_next_sync.swap(false, Ordering::Relaxed) {
            return Err(StorageError::Io(std::io::Error::other(
                "injected fdatasync failure",
            )));
        }
        Ok((state.durable_offset < state.log_end_offset).then_some(state.log_end_offset))
    }

    /// Second half: everything below `target` (from [`Log::sync_target`]) reached the disk
    /// through that outside sync. Returns the durable end.
    pub fn mark_synced(&self, target: Offset) -> Offset {
        let mut state = self.state.lock();
        debug_assert!(
            target <= state.log_end_offset,
            "a sync target is never past what was written"
        );
        state.durable_offset = state.durable_offset.max(target);
        state.durable_offset
    }
}
