//! Plain Kafka records written to and read from a topic by what is not a Kafka client: STOMP's
//! `/kafka/<topic>` destinations, the management API's message browser and the `porter
//! produce`/`consume` commands. One place for the three decisions they share:
//!
//! - where a keyed record goes: Kafka's default partitioner (murmur2 of the key), so a key sent
//!   here lands in the partition a Kafka producer would choose, and keyed order holds across
//!   protocols; unkeyed records go round robin;
//! - where a reader starts ([`StartAt`]): first, last, next, an offset, N from the end, or a
//!   time, as RabbitMQ streams (`x-stream-offset`) and kcat (`-o`) name them;
//! - how much one read returns ([`browse`]): whole records, at most a count and a byte budget,
//!   with the offset to continue from.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use porter_storage::records::{decode_batches, encode_batch, LogRecord};
use porter_storage::Offset;

use crate::broker::TopicHandle;
use crate::error::{CoreError, Result};
use crate::partition::{now_ms, Partition};

/// Bytes one [`browse`] read asks the log for at a time.
const BROWSE_READ_BYTES: u32 = 1 << 20;

static ROUND_ROBIN: AtomicUsize = AtomicUsize::new(0);

/// Kafka's default partitioner hash (murmur2, seed 0x9747b28c), so a key lands where a Kafka
/// producer would put it.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition (of `n`) a record with `key` goes to, as Kafka's default partitioner picks it;
/// round robin without a key.
pub fn partition_for_key(key: Option<&[u8]>, n: usize) -> usize {
    debug_assert!(n > 0);
    match key {
        Some(k) => (murmur2(k) & 0x7fff_ffff) as usize % n,
        None => ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % n,
    }
}

/// A record as a producer hands it over: the broker stamps offset and time.
#[derive(Clone, Debug, Default)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// A partition the producer chose; `None` lets the key decide.
    pub partition: Option<i32>,
}

/// Where a produced record went; [`Produced::wait`] waits for the commit point.
pub struct Produced {
    pub partition: Arc<Partition>,
    pub offset: Offset,
}

impl Produced {
    pub async fn wait(&self) -> Result<()> {
        self.partition.wait_durable(self.offset + 1).await
    }
}

/// Appends one record to `topic` (not waiting for the commit point: see [`Produced::wait`]).
pub async fn produce(topic: &TopicHandle, record: NewRecord) -> Result<Produced> {
    let n = topic.partitions.len();
    if n == 0 {
        return Err(CoreError::UnknownTopic(topic.topic.name.clone()));
    }
    let index = match record.partition {
        Some(p) => usize::try_from(p).ok().filter(|&p| p < n).ok_or_else(|| {
            CoreError::UnknownPartition {
                topic: topic.topic.name.clone(),
                partition: p,
            }
        })?,
        None => partition_for_key(record.key.as_deref(), n),
    };
    let batch = encode_batch(&[LogRecord {
        offset: 0,
        timestamp: now_ms(),
        key: record.key,
        value: record.value,
        headers: record.headers,
    }])?;
    let partition = topic.partitions[index].clone();
    let appended = partition.append(batch).await?;
    Ok(Produced {
        partition,
        offset: appended.last_offset,
    })
}

/// Where a reader starts in each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The log's start.
    First,
    /// The last record.
    Last,
    /// The next record to be written.
    Next,
    /// This offset (clamped into the log).
    Offset(Offset),
    /// This many records before the end (kcat's `-o -N`).
    FromEnd(u64),
    /// The first record stored at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl StartAt {
    /// `first`, `last`, `next`, `offset=<n>` or `<n>`, `-<n>` (n from the end), or
    /// `timestamp=<ms>`; `None` for anything else.
    pub fn parse(text: &str) -> Option<StartAt> {
        let text = text.trim();
        Some(match text {
            "first" | "beginning" | "earliest" => StartAt::First,
            "last" => StartAt::Last,
            "next" | "end" | "latest" => StartAt::Next,
            _ => {
                if let Some(n) = text.strip_prefix("offset=") {
                    StartAt::Offset(n.parse().ok().filter(|n: &i64| *n >= 0)?)
                } else if let Some(ms) = text.strip_prefix("timestamp=") {
                    StartAt::Timestamp(ms.parse().ok()?)
                } else if let Some(n) = text.strip_prefix('-') {
                    StartAt::FromEnd(n.parse().ok()?)
                } else {
                    StartAt::Offset(text.parse().ok()?)
                }
            }
        })
    }

    /// The offset this names in `partition`: always within [log start, high watermark].
    pub async fn resolve(self, partition: &Partition) -> Result<Offset> {
        let (start, end) = (partition.log_start_offset(), partition.high_watermark());
        let end = end.max(start);
        Ok(match self {
            StartAt::First => start,
            StartAt::Last => (end - 1).max(start),
            StartAt::Next => end,
            StartAt::Offset(n) => n.clamp(start, end),
            StartAt::FromEnd(n) => end.saturating_sub(n.min(i64::MAX as u64) as i64).max(start),
            StartAt::Timestamp(ms) => partition
                .offset_for_timestamp(ms)
                .await?
                .map_or(end, |(o, _)| o.clamp(start, end)),
        })
    }
}

/// What one [`browse`] of a partition read.
#[derive(Clone, Debug, Default)]
pub struct Browsed {
    /// Committed records from the start offset, in offset order.
    pub records: Vec<LogRecord>,
    /// Where the next browse continues.
    pub next_offset: Offset,
    pub high_watermark: Offset,
}

/// Up to `limit` committed records of `partition` from `offset`, stopping once `max_bytes` of
/// record values, keys and headers are held (the first record always counts, however large).
/// Compacted gaps and control records are stepped over.
pub async fn browse(
    partition: &Partition,
    offset: Offset,
    limit: usize,
    max_bytes: usize,
) -> Result<Browsed> {
    let mut offset = offset.max(partition.log_start_offset());
    let end = partition.high_watermark();
    let mut browsed = Browsed {
        high_watermark: end,
        ..Browsed::default()
    };
    let mut held = 0usize;
    'reads: while offset < end && browsed.records.len() < limit {
        let (from, batches) = partition.read_from(offset, BROWSE_READ_BYTES).await?;
        offset = from;
        let records = decode_batches(batches.bytes)?;
        let Some(last) = records.last().map(|r| r.offset) else {
            break;
        };
        for record in records {
            if record.offset < offset || record.offset >= end {
                continue;
            }
            let size = record_size(&record);
            if !browsed.records.is_empty() && held + size > max_bytes {
                break 'reads;
            }
            held += size;
            offset = record.offset + 1;
            browsed.records.push(record);
            if browsed.records.len() >= limit {
                break 'reads;
            }
        }
        // Past what this read held, even if it held no record of ours (a compacted gap).
        offset = offset.max(last + 1);
    }
    browsed.next_offset = offset.min(end).max(partition.log_start_offset());
    Ok(browsed)
}

/// The bytes a record holds in memory once decoded.
pub fn record_size(record: &LogRecord) -> usize {
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    len(&record.key)
        + len(&record.value)
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + len(v))
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(StartAt::parse("first"), Some(StartAt::First));
        assert_eq!(StartAt::parse("beginning"), Some(StartAt::First));
        assert_eq!(StartAt::parse("end"), Some(StartAt::Next));
        assert_eq!(StartAt::parse("offset=5"), Some(StartAt::Offset(5)));
        assert_eq!(StartAt::parse("7"), Some(StartAt::Offset(7)));
        assert_eq!(StartAt::parse("-10"), Some(StartAt::FromEnd(10)));
        assert_eq!(
            StartAt::parse("timestamp=1700000000000"),
            Some(StartAt::Timestamp(1_700_000_000_000))
        );
        assert_eq!(StartAt::parse("offset=-1"), None);
        assert_eq!(StartAt::parse("soon"), None);
    }
}
