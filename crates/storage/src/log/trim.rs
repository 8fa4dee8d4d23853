//! Trimming a log's front: delete-records (a start inside a segment, checkpointed) and
//! retention (whole segments). Both hold only the cleaner lock, never the append lock: they
//! drop segments from the front, appends touch only the active (last) one.

use std::sync::Arc;

use super::Log;
use crate::checkpoint;
use crate::retention::{self, SegmentSummary};
use crate::segment::Segment;
use crate::{Offset, StorageError};

impl Log {
    /// Where the oldest segment ends, unless it is the active one: `delete_records_before` must
    /// reach this offset to free any file. Lets a caller skip a move that would only rewrite the
    /// log-start checkpoint.
    pub fn oldest_segment_end(&self) -> Option<Offset> {
        self.state.lock().segments.keys().nth(1).copied()
    }

    /// Moves the log start to `offset` (persisted) and deletes segments wholly below it.
    /// `offset` may not pass the high watermark. Returns the new log start.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        let _cleaner = self.cleaner_lock.lock();
        let (log_start_offset, high_watermark) = {
            let state = self.state.lock();
            state.check_open()?;
            (state.log_start_offset, state.high_watermark)
        };
        if offset > high_watermark || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: log_start_offset,
                high_watermark,
            });
        }
        if offset <= log_start_offset {
            return Ok(log_start_offset);
        }
        self.move_log_start(offset, true)?;
        Ok(offset)
    }

    /// Persists the new start first (with `checkpoint`), then drops and deletes the segments
    /// below it: a crash in between leaves files recovery deletes. Caller holds the cleaner lock
    /// (not the append lock: see the module doc). The active segment is never removed.
    ///
    /// Without `checkpoint` (retention, whose new start is a segment's base offset or the
    /// start already checkpointed), recovery finds the start from the files: the first segment
    /// left. A crash before the unlinks reach the disk brings segments back, which the next
    /// retention pass deletes again. This spares each retention pass the two fsyncs and the
    /// directory fsync of a checkpoint, each a journal commit the writers' fdatasyncs queue
    /// behind.
    fn move_log_start(&self, new_start: Offset, checkpoint: bool) -> Result<u64, StorageError> {
        if checkpoint {
            checkpoint::write_log_start_offset(&self.dir, new_start)?;
        }
        let removed: Vec<Arc<Segment>> = {
            let mut state = self.state.lock();
            // Closed (or deleted) meanwhile: the checkpoint is on disk, so a reopen applies it.
            state.check_open()?;
            assert!(
                new_start >= state.log_start_offset,
                "log start went backwards"
            );
            state.log_start_offset = new_start;
            let mut removed = Vec::new();
            while state.segments.len() > 1 {
                let mut bases = state.segments.keys();
                let (_, second) = (bases.next(), *bases.next().expect("two segments"));
                if second > new_start {
                    break;
                }
                removed.push(state.segments.pop_first().expect("non-empty").1);
            }
            removed
        };
        let mut freed = 0;
        for segment in removed {
            freed += segment.snapshot().size_bytes;
            segment.delete_files(&self.files)?;
        }
        Ok(freed)
    }

    /// Deletes non-active segments past `retention_ms` or beyond `retention_bytes`, when the
    /// cleanup policy includes delete (a `Compact`-only log keeps every segment).
    /// Returns the bytes freed.
    pub fn apply_retention(&self, now_ms: i64) -> Result<u64, StorageError> {
        let _cleaner = self.cleaner_lock.lock();
        let (config, segments, log_start_offset) = {
            let state = self.state.lock();
            state.check_open()?;
            let segments: Vec<Arc<Segment>> = state.segments.values().cloned().collect();
            (state.config.clone(), segments, state.log_start_offset)
        };
        if !config.cleanup_policy.deletes() {
            return Ok(0);
        }
        let summaries: Vec<SegmentSummary> = segments
            .iter()
            .map(|s| {
                let snapshot = s.snapshot();
                SegmentSummary {
                    base_offset: s.base_offset(),
                    size_bytes: snapshot.size_bytes,
                    max_timestamp: snapshot.max_timestamp,
                }
            })
            .collect();
        let total_bytes = summaries.iter().map(|s| s.size_bytes).sum();
        let inactive = &summaries[..summaries.len() - 1];
        let count = retention::segments_to_delete(inactive, total_bytes, &config, now_ms);
        if count == 0 {
            return Ok(0);
        }
        // A segment's base, or a start `delete_records_before` checkpointed: no checkpoint.
        let new_start = summaries[count].base_offset.max(log_start_offset);
        tracing::info!(dir = %self.dir.display(), segments = count, new_start, "retention deleting segments");
        self.move_log_start(new_start, false)
    }
}
