//! A log's mutable bookkeeping: the segment list and the offsets that matter to readers. Held
//! by `Log` under its `state` mutex only to copy or publish, never across I/O (see `log.rs`).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::LogConfig;
use crate::segment::Segment;
use crate::{Offset, StorageError};

pub(crate) struct LogState {
    pub(crate) config: LogConfig,
    /// By base offset; never empty; the last one is the active segment.
    pub(crate) segments: BTreeMap<Offset, Arc<Segment>>,
    pub(crate) log_start_offset: Offset,
    pub(crate) log_end_offset: Offset,
    /// Offsets below this are fdatasync'ed.
    pub(crate) durable_offset: Offset,
    /// Offsets below this are committed (set by the owner through `commit_to`): readers see them.
    pub(crate) high_watermark: Offset,
    pub(crate) closed: bool,
}

impl LogState {
    pub(crate) fn active(&self) -> &Arc<Segment> {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    pub(crate) fn check_open(&self) -> Result<(), StorageError> {
        if self.closed {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Segments that may hold data not yet fdatasync'ed: from the one holding `durable_offset`.
    pub(crate) fn unsynced_segments(&self) -> Vec<Arc<Segment>> {
        let from = self
            .segments
            .range(..=self.durable_offset)
            .next_back()
            .map_or(Bound::Unbounded, |(&base, _)| Bound::Included(base));
        self.segments
            .range((from, Bound::Unbounded))
            .map(|(_, s)| Arc::clone(s))
            .collect()
    }

    /// The segment holding `offset` and every later one (reads walk on past gaps).
    pub(crate) fn segments_from(&self, offset: Offset) -> Vec<Arc<Segment>> {
        let floor = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(Offset::MIN, |(&b, _)| b);
        self.segments
            .range(floor..)
            .map(|(_, s)| Arc::clone(s))
            .collect()
    }

    pub(crate) fn set_high_watermark(&mut self, offset: Offset, sender: &watch::Sender<Offset>) {
        assert!(
            offset <= self.log_end_offset,
            "high watermark past the log end"
        );
        if offset > self.high_watermark {
            self.high_watermark = offset;
            sender.send_replace(offset);
        }
    }
}
