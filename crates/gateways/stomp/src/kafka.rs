//! `/kafka/<topic>`: Porter's extension reading and writing Kafka topics from STOMP.
//!
//! SUBSCRIBE starts one reader task per partition, from the position in `x-stream-offset`
//! (`first`, `last`, `next` — the default —, `offset=<n>` or a bare number, or
//! `-<n>` for n from the end, or `timestamp=<ms>`), as RabbitMQ streams are read over STOMP. Readers send records into the
//! connection's bounded Kafka feed; with an acknowledging subscription and a `prefetch-count`,
//! each record takes a credit that its ACK or NACK gives back, so unacknowledged records are
//! bounded as for queues. Kafka has no per-record acknowledgement: NACK does not redeliver.
//!
//! SEND produces one record: the body is the value, `x-key` the key (partitioned by Kafka's
//! murmur2 of the key, as Kafka clients do, else round robin) and the other non-STOMP headers
//! are record headers.

use std::sync::Arc;

use bytes::Bytes;
pub use porter_core::topic_records::Produced;
use porter_core::topic_records::{self, NewRecord, StartAt};
use porter_core::{Broker, CoreError, Offset, Partition};
use porter_storage::records::{decode_batches, LogRecord};
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

/// Where a reader starts, from `x-stream-offset` (absent: `next`).
pub fn start_at(text: Option<&str>) -> Result<StartAt> {
    let Some(text) = text else {
        return Ok(StartAt::Next);
    };
    StartAt::parse(text).ok_or_else(|| {
        StompError::protocol(
            "invalid x-stream-offset",
            format!(
                "'{text}': use first, last, next, offset=<n>, <n>, -<n> (n from the end) or timestamp=<ms since the epoch>"
            ),
        )
    })
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

/// SEND to `/kafka/<topic>`: the topic is auto-created if the broker allows it.
pub async fn produce(broker: &Arc<Broker>, topic: &str, frame: &Frame) -> Result<Produced> {
    let handle = broker.topic_or_auto_create(topic).await?;
    let record = NewRecord {
        key: frame
            .header("x-key")
            .map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(frame.body.clone()),
        headers: record_headers(frame),
        partition: None,
    };
    Ok(topic_records::produce(&handle, record).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_offsets() {
        assert_eq!(start_at(None).unwrap(), StartAt::Next);
        assert_eq!(start_at(Some("first")).unwrap(), StartAt::First);
        assert_eq!(start_at(Some("7")).unwrap(), StartAt::Offset(7));
        assert!(start_at(Some("soon")).is_err());
    }
}
