//! `/kafka/<topic>`: Porter's extension reading and writing Kafka topics from STOMP.
//!
//! SUBSCRIBE starts one reader task per partition, from the position in `x-stream-offset`
//! (`first`, `last`, `next` — the default —, `offset=<n>` or a bare number, or
//! `timestamp=<ms>`), as RabbitMQ streams are read over STOMP. Readers send records into the
//! connection's bounded Kafka feed; with an acknowledging subscription and a `prefetch-count`,
//! each record takes a credit that its ACK or NACK gives back, so unacknowledged records are
//! bounded as for queues. Kafka has no per-record acknowledgement: NACK does not redeliver.
//!
//! SEND produces one record: the body is the value, `x-key` the key (partitioned by Kafka's
//! murmur2 of the key, as Kafka clients do, else round robin) and the other non-STOMP headers
//! are record headers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use porter_core::partition::now_ms;
use porter_core::{Broker, CoreError, Offset, Partition};
use porter_storage::records::{decode_batches, encode_batch, LogRecord};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::convert::record_headers;
use crate::error::{Result, StompError};
use crate::frame::Frame;
use crate::limits::KAFKA_READ_BYTES;

/// One record for a subscription.
#[derive(Debug)]
pub struct KafkaRecord {
    /// The subscription's id.
    pub subscription: Arc<str>,
    pub partition: i32,
    pub record: LogRecord,
}

/// Where a reader starts, from `x-stream-offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    First,
    Last,
    Next,
    Offset(i64),
    Timestamp(i64),
}

impl StartAt {
    pub fn parse(text: Option<&str>) -> Result<StartAt> {
        let Some(text) = text.map(str::trim) else {
            return Ok(StartAt::Next);
        };
        let bad = || {
            StompError::protocol(
                "invalid x-stream-offset",
                format!(
                    "'{text}': use first, last, next, offset=<n>, <n> or timestamp=<ms since the epoch>"
                ),
            )
        };
        Ok(match text {
            "first" => StartAt::First,
            "last" => StartAt::Last,
            "next" => StartAt::Next,
            _ => {
                if let Some(n) = text.strip_prefix("offset=") {
                    StartAt::Offset(n.parse().map_err(|_| bad())?)
                } else if let Some(ms) = text.strip_prefix("timestamp=") {
                    StartAt::Timestamp(ms.parse().map_err(|_| bad())?)
                } else {
                    StartAt::Offset(text.parse().map_err(|_| bad())?)
                }
            }
        })
    }

    async fn resolve(self, partition: &Partition) -> Result<Offset> {
        let (start, end) = (partition.log_start_offset(), partition.high_watermark());
        Ok(match self {
            StartAt::First => start,
            StartAt::Last => (end - 1).max(start),
            StartAt::Next => end,
            StartAt::Offset(n) => n.max(start).min(end.max(start)),
            StartAt::Timestamp(ms) => partition
                .offset_for_timestamp(ms)
                .await?
                .map_or(end, |(o, _)| o),
        })
    }
}

/// Starts a reader for every partition of `topic`. The topic must exist.
pub async fn subscribe(
    broker: &Arc<Broker>,
    topic: &str,
    start: StartAt,
    subscription: Arc<str>,
    feed: mpsc::Sender<KafkaRecord>,
    stop: CancellationToken,
    credit: Option<Arc<Semaphore>>,
) -> Result<()> {
    let handle = broker
        .topic(topic)
        .ok_or_else(|| StompError::Core(CoreError::UnknownTopic(topic.to_string())))?;
    for partition in &handle.partitions {
        let offset = start.resolve(partition).await?;
        tokio::spawn(read_partition(
            partition.clone(),
            offset,
            subscription.clone(),
            feed.clone(),
            stop.clone(),
            credit.clone(),
        ));
    }
    Ok(())
}

async fn read_partition(
    partition: Arc<Partition>,
    mut offset: Offset,
    subscription: Arc<str>,
    feed: mpsc::Sender<KafkaRecord>,
    stop: CancellationToken,
    credit: Option<Arc<Semaphore>>,
) {
    let mut watch = partition.subscribe();
    loop {
        offset = offset.max(partition.log_start_offset());
        let end = partition.high_watermark();
        if offset >= end {
            tokio::select! {
                changed = watch.changed() => if changed.is_err() { return },
                _ = stop.cancelled() => return,
            }
            continue;
        }
        let batches = match partition.read(offset, KAFKA_READ_BYTES).await {
            Ok(b) => b,
            Err(CoreError::OffsetOutOfRange { .. }) => {
                offset = partition.log_start_offset();
                continue;
            }
            Err(e) => {
                tracing::warn!(topic = partition.topic(), partition = partition.index(), error = %e, "stomp kafka reader stops");
                return;
            }
        };
        let records = match decode_batches(batches.bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(topic = partition.topic(), partition = partition.index(), error = %e, "stomp kafka reader stops");
                return;
            }
        };
        let before = offset;
        let last = records.last().map(|r| r.offset);
        for record in records {
            if record.offset < offset || record.offset >= end {
                continue;
            }
            if let Some(credit) = &credit {
                tokio::select! {
                    permit = credit.acquire() => match permit { Ok(p) => p.forget(), Err(_) => return },
                    _ = stop.cancelled() => return,
                }
            }
            offset = record.offset + 1;
            let item = KafkaRecord {
                subscription: subscription.clone(),
                partition: partition.index(),
                record,
            };
            tokio::select! {
                sent = feed.send(item) => if sent.is_err() { return },
                _ = stop.cancelled() => return,
            }
        }
        if offset == before {
            // Only control records or a compacted gap: move past what was read.
            match last {
                Some(l) if l >= offset => offset = l + 1,
                _ => offset += 1,
            }
        }
    }
}

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

/// What a produce returned: where the record went, and what to wait on for a receipt.
pub struct Produced {
    pub partition: Arc<Partition>,
    pub offset: Offset,
}

impl Produced {
    pub async fn wait(self) -> Result<()> {
        Ok(self.partition.wait_durable(self.offset + 1).await?)
    }
}

/// SEND to `/kafka/<topic>`: the topic is auto-created if the broker allows it.
pub async fn produce(broker: &Arc<Broker>, topic: &str, frame: &Frame) -> Result<Produced> {
    let handle = broker.topic_or_auto_create(topic).await?;
    let n = handle.partitions.len();
    if n == 0 {
        return Err(CoreError::UnknownTopic(topic.to_string()).into());
    }
    let key = frame
        .header("x-key")
        .map(|k| Bytes::copy_from_slice(k.as_bytes()));
    let index = match &key {
        Some(k) => (murmur2(k) & 0x7fff_ffff) as usize % n,
        None => ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % n,
    };
    let record = LogRecord {
        offset: 0,
        timestamp: now_ms(),
        key,
        value: Some(frame.body.clone()),
        headers: record_headers(frame),
    };
    let batch = encode_batch(&[record]).map_err(CoreError::from)?;
    let partition = handle.partitions[index].clone();
    let appended = partition.append(batch).await?;
    Ok(Produced {
        partition,
        offset: appended.last_offset,
    })
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
    fn stream_offsets() {
        assert_eq!(StartAt::parse(None).unwrap(), StartAt::Next);
        assert_eq!(StartAt::parse(Some("first")).unwrap(), StartAt::First);
        assert_eq!(
            StartAt::parse(Some("offset=5")).unwrap(),
            StartAt::Offset(5)
        );
        assert_eq!(StartAt::parse(Some("7")).unwrap(), StartAt::Offset(7));
        assert_eq!(
            StartAt::parse(Some("timestamp=1700000000000")).unwrap(),
            StartAt::Timestamp(1_700_000_000_000)
        );
        assert!(StartAt::parse(Some("soon")).is_err());
    }
}
