//! Where a segment's last few batches lie, kept in memory as they are appended, so that a
//! consumer reading at the tail (the common case: a long poll woken by the append it waits for)
//! is answered without reading the offset index or batch headers from disk, and therefore
//! without a trip to the blocking pool. Anything older goes the disk way (`Segment::region`),
//! which gives the same answer.

use std::collections::VecDeque;

use crate::limits::RECENT_BATCHES_MAX;
use crate::Offset;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecentBatch {
    base_offset: Offset,
    last_offset: Offset,
    position: u64,
    bytes: u64,
}

/// The last [`RECENT_BATCHES_MAX`] batches of a segment, adjacent and in offset order.
#[derive(Debug, Default)]
pub(crate) struct RecentBatches {
    batches: VecDeque<RecentBatch>,
}

impl RecentBatches {
    /// Records a batch appended at `position` (right after the previous one).
    pub(crate) fn push(
        &mut self,
        base_offset: Offset,
        last_offset: Offset,
        position: u64,
        bytes: u64,
    ) {
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|b| b.position + b.bytes == position && b.last_offset < base_offset));
        if self.batches.len() == RECENT_BATCHES_MAX {
            self.batches.pop_front();
        }
        self.batches.push_back(RecentBatch {
            base_offset,
            last_offset,
            position,
            bytes,
        });
    }

    /// Forgets everything: the segment was rolled or its files replaced.
    pub(crate) fn clear(&mut self) {
        self.batches = VecDeque::new();
    }

    /// `Segment::region`'s answer as `(position, length)`, if the batches it needs are all
    /// here: the batch holding `offset` (or the first after it) whole, then the batches after it
    /// while they fit in `max_bytes` and start below `high_watermark`; length 0 if the first
    /// starts at or past the high watermark. `None` when `offset` is older than what is kept,
    /// or past the segment's last batch.
    pub(crate) fn region(
        &self,
        offset: Offset,
        max_bytes: u32,
        high_watermark: Offset,
    ) -> Option<(u64, u64)> {
        let oldest = self.batches.front()?;
        if offset < oldest.base_offset {
            return None;
        }
        let first = self.batches.partition_point(|b| b.last_offset < offset);
        let head = self.batches.get(first)?;
        if head.base_offset >= high_watermark {
            return Some((head.position, 0));
        }
        let limit = head.position + (max_bytes as u64).max(head.bytes);
        let mut end = head.position + head.bytes;
        for batch in self.batches.range(first + 1..) {
            if batch.base_offset >= high_watermark || end + batch.bytes > limit {
                break;
            }
            end += batch.bytes;
        }
        Some((head.position, end - head.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of `records` records and `bytes` bytes each, from offset 0 at position 0.
    fn recent(batches: &[(i64, u64)]) -> RecentBatches {
        let mut recent = RecentBatches::default();
        let (mut offset, mut position) = (0, 0);
        for &(records, bytes) in batches {
            recent.push(offset, offset + records - 1, position, bytes);
            offset += records;
            position += bytes;
        }
        recent
    }

    #[test]
    fn the_region_starts_at_the_batch_holding_the_offset() {
        let r = recent(&[(2, 100), (3, 150), (1, 80)]);
        assert_eq!(r.region(0, 1 << 20, 6), Some((0, 330)));
        assert_eq!(r.region(3, 1 << 20, 6), Some((100, 230)));
        assert_eq!(r.region(5, 1 << 20, 6), Some((250, 80)));
        assert_eq!(r.region(6, 1 << 20, 6), None, "past the last batch");
    }

    #[test]
    fn the_first_batch_is_whole_and_the_rest_within_max_bytes() {
        let r = recent(&[(2, 100), (3, 150), (1, 80)]);
        assert_eq!(r.region(0, 10, 6), Some((0, 100)));
        assert_eq!(r.region(0, 249, 6), Some((0, 100)));
        assert_eq!(r.region(0, 250, 6), Some((0, 250)));
    }

    #[test]
    fn batches_at_or_past_the_high_watermark_are_left_out() {
        let r = recent(&[(2, 100), (3, 150), (1, 80)]);
        assert_eq!(r.region(0, 1 << 20, 2), Some((0, 100)));
        assert_eq!(r.region(2, 1 << 20, 2), Some((100, 0)));
    }

    #[test]
    fn only_the_last_batches_are_kept() {
        let r = recent(&vec![(1, 10); RECENT_BATCHES_MAX + 5]);
        assert_eq!(r.region(4, 1 << 20, i64::MAX), None, "forgotten");
        let last = (RECENT_BATCHES_MAX + 4) as i64;
        assert_eq!(
            r.region(last, 1 << 20, i64::MAX),
            Some((last as u64 * 10, 10))
        );
        assert_eq!(r.region(5, 1 << 20, i64::MAX).map(|(p, _)| p), Some(50));
    }
}
