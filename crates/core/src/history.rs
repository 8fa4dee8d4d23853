//! The newest records of one key in a topic: a chat room's last messages, a device's last
//! readings. What a log gives that a queue cannot: the past stays readable after it was
//! delivered.
//!
//! How: per partition, windows of offsets are read backward from the high watermark (each
//! window twice the last, read forward in [`READ_BYTES`] steps) and each record's key compared,
//! until `limit` matches, the log's start, or [`HISTORY_SCAN_BYTES_MAX`] read. So the cost is
//! the bytes written since the matches, not the topic's size; on a topic where the key is rare
//! the scan stops at its bound and says so ([`History::truncated`]).

use std::sync::Arc;

use porter_storage::records::{decode_batches, LogRecord};
use porter_storage::Offset;

use crate::broker::TopicHandle;
use crate::error::{CoreError, Result};
use crate::partition::Partition;

/// Bytes one history read scans per partition at most.
pub const HISTORY_SCAN_BYTES_MAX: u64 = 16 << 20;
/// Records one history read returns at most.
pub const HISTORY_RESULTS_MAX: usize = 500;
/// Offsets in the first (newest) window; each older window doubles it.
const FIRST_WINDOW: i64 = 256;
const READ_BYTES: u32 = 1 << 20;

/// A history read's answer.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Oldest first.
    pub records: Vec<LogRecord>,
    /// The partition each of `records` came from (`partitions[i]` for `records[i]`).
    pub partitions: Vec<i32>,
    /// A partition's scan stopped at [`HISTORY_SCAN_BYTES_MAX`] before its log's start, so
    /// older matches may exist.
    pub truncated: bool,
}

/// The newest `limit` (at most [`HISTORY_RESULTS_MAX`]) committed records of `topic` whose key
/// is `key`, oldest first (by timestamp across partitions).
pub async fn newest(topic: &Arc<TopicHandle>, key: &[u8], limit: usize) -> Result<History> {
    let limit = limit.clamp(1, HISTORY_RESULTS_MAX);
    let mut found: Vec<(i32, LogRecord)> = Vec::new();
    let mut truncated = false;
    for partition in &topic.partitions {
        let (records, cut) = newest_in(partition, key, limit).await?;
        found.extend(records.into_iter().map(|r| (partition.index(), r)));
        truncated |= cut;
    }
    // Stable: within a partition, offsets order records with equal timestamps.
    found.sort_by_key(|(_, r)| r.timestamp);
    let (partitions, records) = keep_newest(found, limit).into_iter().unzip();
    Ok(History {
        records,
        partitions,
        truncated,
    })
}

/// One partition's newest `limit` records with `key`, oldest first, and whether the scan stopped
/// at its byte bound.
async fn newest_in(
    partition: &Arc<Partition>,
    key: &[u8],
    limit: usize,
) -> Result<(Vec<LogRecord>, bool)> {
    let mut found: Vec<LogRecord> = Vec::new();
    let mut scanned = Scanned::default();
    let mut upper = partition.high_watermark();
    let mut window = FIRST_WINDOW;
    while found.len() < limit && upper > partition.log_start_offset() {
        let budget = HISTORY_SCAN_BYTES_MAX.saturating_sub(scanned.bytes);
        // No older window larger than what the bytes left are likely to hold.
        let window_now = window.min(scanned.offsets_within(budget));
        if window_now < 1 {
            return Ok((keep_newest(found, limit), true));
        }
        let lower = (upper - window_now).max(partition.log_start_offset());
        let mut older = Vec::new();
        let Some(bytes) = read_window(partition, key, lower, upper, budget, &mut older).await?
        else {
            // Over the bound inside the window: its matches would leave a gap before the newer
            // ones, so none of them counts.
            return Ok((keep_newest(found, limit), true));
        };
        scanned.bytes += bytes;
        scanned.offsets += upper - lower;
        older.append(&mut found);
        found = older;
        upper = lower;
        window = window.saturating_mul(2);
    }
    Ok((keep_newest(found, limit), false))
}

/// What a partition's scan has read so far.
#[derive(Default)]
struct Scanned {
    bytes: u64,
    offsets: i64,
}

impl Scanned {
    /// Offsets `budget` bytes likely hold, at the average size read so far (any number before
    /// the first read).
    fn offsets_within(&self, budget: u64) -> i64 {
        if self.offsets == 0 || self.bytes == 0 {
            return i64::MAX;
        }
        let per_offset = (self.bytes / self.offsets as u64).max(1);
        i64::try_from(budget / per_offset).unwrap_or(i64::MAX)
    }
}

/// Appends the records with `key` whose offsets are in `lower..upper` to `out`, oldest first,
/// and returns the bytes read; `None` once more than `budget` bytes would be read.
async fn read_window(
    partition: &Partition,
    key: &[u8],
    lower: Offset,
    upper: Offset,
    budget: u64,
    out: &mut Vec<LogRecord>,
) -> Result<Option<u64>> {
    let mut offset = lower;
    let mut read = 0u64;
    while offset < upper {
        if read >= budget {
            return Ok(None);
        }
        let batches = match partition.read(offset, READ_BYTES).await {
            Ok(batches) => batches,
            // Retention removed the window's start while we read: go on from the log's start.
            Err(CoreError::OffsetOutOfRange { .. }) => {
                let start = partition.log_start_offset();
                if start <= offset {
                    break;
                }
                offset = start;
                continue;
            }
            Err(e) => return Err(e),
        };
        if batches.bytes.is_empty() {
            break;
        }
        read += batches.bytes.len() as u64;
        let records = decode_batches(batches.bytes)?;
        let next = records.last().map_or(offset, |r| r.offset + 1);
        out.extend(
            records.into_iter().filter(|r| {
                r.offset >= offset && r.offset < upper && r.key.as_deref() == Some(key)
            }),
        );
        if next <= offset {
            break; // nothing past `offset` in what came back
        }
        offset = next;
    }
    Ok(Some(read))
}

fn keep_newest<T>(mut records: Vec<T>, limit: usize) -> Vec<T> {
    let excess = records.len().saturating_sub(limit);
    records.drain(..excess);
    records
}
