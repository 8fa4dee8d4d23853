//! Idempotent-producer state of one partition: for every producer id, its epoch and the
//! sequence ranges of its last few batches. A batch is checked against it before it is
//! appended: a retry of a batch already in the log is answered with the original offset
//! instead of being written twice; a gap in sequence numbers or an old epoch is refused.
//!
//! The state is derived from the log (every batch header carries producer id, epoch and base
//! sequence), so after a restart it is rebuilt from a snapshot plus the batches after it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use porter_storage::record_batch::BatchHeader;
use porter_storage::Offset;
use serde::{Deserialize, Serialize};

/// Batches remembered per producer for duplicate detection: Kafka clients keep at most five
/// requests in flight per partition, so a retry always matches one of the last five.
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Producers remembered per partition; the least recently active is forgotten first.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;
/// A producer silent this long is forgotten (Kafka: producer.id.expiration.ms).
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// `producerId` of batches from producers that are not idempotent.
const NO_PRODUCER_ID: i64 = -1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchRecord>,
    pub last_timestamp_ms: i64,
}

/// What a batch is, seen from the producer state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not from an idempotent producer, or the next in sequence: append it.
    Append,
    /// Already in the log: answer with these offsets and don't append.
    Duplicate {
        first_offset: Offset,
        last_offset: Offset,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {got} is older than {current}")]
    FencedEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
}

#[derive(Default, Serialize, Deserialize)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    /// The log end offset this state reflects: replay after a restart starts here.
    pub end_offset: Offset,
}

fn sequence_after(last: i32, records: i32) -> i32 {
    // Sequences wrap at i32::MAX back to 0, as in Kafka.
    ((last as i64 + records as i64) % (i32::MAX as i64 + 1)) as i32
}

/// Sequence of a batch's last record. From `lastOffsetDelta`, not `recordsCount`: compaction
/// removes records from a producer's last batch (down to an empty header) but keeps its offset
/// range, and sequences advance with offsets inside a batch (Kafka's `lastSequence`).
fn last_sequence(header: &BatchHeader) -> i32 {
    sequence_after(header.base_sequence, header.last_offset_delta)
}

impl ProducerState {
    /// Checks one batch (with `header.base_offset` not yet assigned).
    pub fn check(&self, header: &BatchHeader) -> Result<Verdict, SequenceError> {
        if header.producer_id == NO_PRODUCER_ID {
            return Ok(Verdict::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer (new, or expired): accept and start tracking it.
            return Ok(Verdict::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::FencedEpoch {
                producer_id: header.producer_id,
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.records_count < 1 {
            // Only compaction writes empty batches; the log's validation refuses this one.
            return Ok(Verdict::Append);
        }
        let first = header.base_sequence;
        let last = last_sequence(header);
        if header.producer_epoch > entry.epoch {
            // A bumped epoch restarts the sequence (KIP-360).
            return if first == 0 {
                Ok(Verdict::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id: header.producer_id,
                    expected: 0,
                    got: first,
                })
            };
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Ok(Verdict::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| sequence_after(b.last_sequence, 1));
        if first != expected {
            return Err(SequenceError::OutOfOrder {
                producer_id: header.producer_id,
                expected,
                got: first,
            });
        }
        Ok(Verdict::Append)
    }

    /// Records an appended batch (its header with the assigned base offset).
    pub fn record(&mut self, header: &BatchHeader, now_ms: i64) {
        if header.producer_id == NO_PRODUCER_ID {
            return;
        }
        self.end_offset = self.end_offset.max(header.last_offset() + 1);
        if !self.producers.contains_key(&header.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            self.forget_least_recent();
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchRecord {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        while entry.batches.len() > BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.last_timestamp_ms = now_ms;
    }

    fn forget_least_recent(&mut self) {
        if let Some(id) = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.last_timestamp_ms)
            .map(|(id, _)| *id)
        {
            self.producers.remove(&id);
        }
    }

    pub fn expire(&mut self, now_ms: i64) {
        self.producers
            .retain(|_, e| now_ms - e.last_timestamp_ms < PRODUCER_EXPIRATION_MS);
    }

    /// (producer id, epoch, last sequence, last timestamp) for DescribeProducers.
    pub fn producers(&self) -> Vec<(i64, i16, i32, i64)> {
        let mut out: Vec<_> = self
            .producers
            .iter()
            .map(|(id, e)| {
                (
                    *id,
                    e.epoch,
                    e.batches.back().map_or(-1, |b| b.last_sequence),
                    e.last_timestamp_ms,
                )
            })
            .collect();
        out.sort();
        out
    }

    pub fn snapshot_path(topic_dir: &Path, partition: i32) -> PathBuf {
        topic_dir.join(format!("producer-state-{partition}.json"))
    }

    /// Loads a snapshot; a missing or unreadable one yields an empty state (rebuilt by replay).
    pub fn load(path: &Path) -> ProducerState {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable producer state snapshot");
                ProducerState::default()
            }),
            Err(_) => ProducerState::default(),
        }
    }

    /// Writes a snapshot atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &file, &bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        producer_id: i64,
        epoch: i16,
        seq: i32,
        count: i32,
        base_offset: Offset,
    ) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn in_order_duplicate_and_gap() {
        let mut state = ProducerState::default();
        let h = header(7, 0, 0, 10, 0);
        assert_eq!(state.check(&h), Ok(Verdict::Append));
        state.record(&h, 1);
        let next = header(7, 0, 10, 5, 10);
        assert_eq!(state.check(&next), Ok(Verdict::Append));
        state.record(&next, 2);
        // A retry of the first batch is a duplicate with its original offsets.
        assert_eq!(
            state.check(&header(7, 0, 0, 10, -1)),
            Ok(Verdict::Duplicate {
                first_offset: 0,
                last_offset: 9
            })
        );
        // A gap is refused.
        assert!(matches!(
            state.check(&header(7, 0, 20, 1, -1)),
            Err(SequenceError::OutOfOrder {
                expected: 15,
                got: 20,
                ..
            })
        ));
    }

    #[test]
    fn old_epochs_are_fenced_and_new_epochs_restart_at_zero() {
        let mut state = ProducerState::default();
        state.record(&header(1, 3, 0, 1, 0), 1);
        assert!(matches!(
            state.check(&header(1, 2, 1, 1, -1)),
            Err(SequenceError::FencedEpoch { .. })
        ));
        assert_eq!(state.check(&header(1, 4, 0, 1, -1)), Ok(Verdict::Append));
        assert!(state.check(&header(1, 4, 5, 1, -1)).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut state = ProducerState::default();
        for i in 0..7 {
            state.record(&header(1, 0, i, 1, i as i64), 1);
        }
        assert!(matches!(
            state.check(&header(1, 0, 6, 1, -1)),
            Ok(Verdict::Duplicate { .. })
        ));
        assert!(matches!(
            state.check(&header(1, 0, 2, 1, -1)),
            Ok(Verdict::Duplicate { .. })
        ));
        // Batch 1 is older than the window: no longer recognised (and out of order).
        assert!(state.check(&header(1, 0, 1, 1, -1)).is_err());
    }

    #[test]
    fn sequences_wrap() {
        let mut state = ProducerState::default();
        state.record(&header(1, 0, i32::MAX - 1, 2, 0), 1);
        assert_eq!(state.check(&header(1, 0, 0, 1, -1)), Ok(Verdict::Append));
    }

    #[test]
    fn compacted_batches_keep_their_last_sequence() {
        // Batches of 3 records (offsets 0..=2, 3..=5); compaction left 1 record of the first
        // and none of the second: the next batch still continues after sequence 5.
        let mut state = ProducerState::default();
        let mut partly = header(1, 0, 0, 1, 0);
        partly.last_offset_delta = 2;
        let mut empty = header(1, 0, 3, 0, 3);
        empty.last_offset_delta = 2;
        state.record(&partly, 1);
        state.record(&empty, 1);
        assert_eq!(state.producers(), vec![(1, 0, 5, 1)]);
        assert_eq!(state.check(&header(1, 0, 6, 1, -1)), Ok(Verdict::Append));
        assert!(matches!(
            state.check(&header(1, 0, 4, 1, -1)),
            Err(SequenceError::OutOfOrder { expected: 6, .. })
        ));
        // A retry of the original second batch is recognised by its sequence range.
        assert_eq!(
            state.check(&header(1, 0, 3, 3, -1)),
            Ok(Verdict::Duplicate {
                first_offset: 3,
                last_offset: 5
            })
        );
        // Wraps like any sequence.
        let mut wrapped = ProducerState::default();
        let mut last = header(2, 0, i32::MAX - 1, 0, 0);
        last.last_offset_delta = 2;
        wrapped.record(&last, 1);
        assert_eq!(wrapped.producers()[0].2, 0);
        assert_eq!(wrapped.check(&header(2, 0, 1, 1, -1)), Ok(Verdict::Append));
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = ProducerState::snapshot_path(dir.path(), 0);
        let mut state = ProducerState::default();
        state.record(&header(1, 0, 0, 3, 0), 1);
        state.save(&path).unwrap();
        let loaded = ProducerState::load(&path);
        assert_eq!(loaded.producers(), state.producers());
        assert_eq!(loaded.end_offset, 3);
    }
}
