//! Reads at the tail without disk I/O: what a long-polling consumer asks for on nearly every
//! append, answered on the caller's thread (the reactor) from memory.

use super::{Log, ReadRegion};
use crate::{Offset, StorageError};

impl Log {
    /// `read_region`'s answer when it needs no disk I/O: at the high watermark (nothing to
    /// read), or from the active segment's recent batches (a consumer at the tail). `None`
    /// means "ask `read_region`", which gives the same answer from the disk. Takes only
    /// in-memory locks held for a copy, so async callers may call it on the reactor.
    pub fn read_region_cached(
        &self,
        offset: Offset,
        max_bytes: u32,
    ) -> Option<Result<ReadRegion, StorageError>> {
        let (at, segments) = match self.read_plan(offset) {
            Ok(plan) => plan,
            Err(e) => return Some(Err(e)),
        };
        let mut read = ReadRegion {
            region: None,
            high_watermark: at.high_watermark,
            log_start_offset: at.log_start_offset,
            log_end_offset: at.log_end_offset,
        };
        if let Some(segment) = segments.first() {
            let region =
                segment.region_cached(&self.files, offset, max_bytes, at.high_watermark)?;
            read.region = (region.len > 0).then_some(region);
        }
        Some(Ok(read))
    }
}
