//! Bridges between exchanges and Kafka topics, so one message reaches every protocol's readers:
//! MQTT telemetry (published through `amq.topic`) lands in a Kafka topic for analytics, and a
//! Kafka topic feeds an exchange that AMQP, MQTT and STOMP subscribers are bound to.
//!
//! - [`BridgeSpec::ExchangeToTopic`]: a durable queue (`porter-bridge.<exchange>.<topic>`) bound
//!   to the exchange with the binding key collects the messages on the log engine; a task
//!   appends them to the topic in batches (partition by routing key hash, so one key keeps its
//!   order) and acknowledges them once the topic has committed them. At least once: a crash
//!   between the commit and the acknowledgement appends a batch again.
//! - [`BridgeSpec::TopicToExchange`]: one task per partition reads the topic from the offset it
//!   last committed (kept in a [`KeyedStore`]) and publishes each record through the exchange
//!   (routing key: the configured one, else the record key), saving the offset after the
//!   publishes commit. At least once likewise.
//!
//! A record carries the message's properties twice: each AMQP header as a Kafka header (what a
//! Kafka consumer reads), and all of them in [`crate::message::META_HEADER`] (so the message
//! comes back whole). A record a Kafka producer wrote has no meta header: its key is the routing
//! key and its headers become AMQP headers. A message that went exchange → topic is not sent
//! back to the same exchange by a reverse bridge (the [`BRIDGED_HEADER`] says where it came
//! from), so a pair of bridges cannot loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The name prefix of the queues bridges make and own (`porter-bridge.<exchange>.<topic>`):
/// the configuration recreates them, so definitions exports leave them out.
pub const BRIDGE_QUEUE_PREFIX: &str = "porter-bridge.";

use bytes::Bytes;
use porter_storage::records::{decode_batches, encode_batch, LogRecord};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{CoreError, Result};
use crate::keyed_store::{KeyedLimits, KeyedStore};
use crate::message::Message;
use crate::queue::api::{ConsumeRequest, ConsumerEvent};
use crate::queue::QueueDefinition;
use crate::routing::{Binding, Destination, HeaderValue};
use crate::vhost::{next_owner_id, VirtualHost};
use crate::Broker;

/// The record header naming the exchange a bridged message came from.
pub const BRIDGED_HEADER: &str = "porter.bridged-from";
/// Where topic → exchange bridges keep their offsets.
pub const OFFSETS_TOPIC: &str = "__porter_bridge_offsets";
/// Messages appended to a topic (or published to an exchange) per batch.
pub const BRIDGE_BATCH_MAX: usize = 256;
/// Bytes read from a partition per call.
const READ_BYTES: u32 = 1 << 20;
/// Wait before retrying after an error (a full disk, a deleted topic).
const RETRY: Duration = Duration::from_secs(1);

/// One bridge, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BridgeSpec {
    ExchangeToTopic {
        vhost: String,
        exchange: String,
        /// Which messages: a binding key for the exchange's kind (`sensors.#` on a topic
        /// exchange).
        binding_key: String,
        topic: String,
    },
    TopicToExchange {
        topic: String,
        vhost: String,
        exchange: String,
        /// Routing key for every message; `None`: each record's key.
        routing_key: Option<String>,
    },
}

/// Topic → exchange bridges' offsets kept at most (one per bridge and partition).
pub const OFFSETS_MAX: usize = 100_000;
/// Bytes of those offsets at most (keys and values).
pub const OFFSETS_BYTES_MAX: u64 = 64 << 20;

/// Starts every bridge's tasks; they run until `shutdown`. Each creates its topic (default
/// partitions) and bridge queue if missing; the exchanges must exist. The offsets store is
/// opened once, if a bridge reads a topic.
pub async fn start_all(
    broker: &Arc<Broker>,
    specs: &[BridgeSpec],
    shutdown: CancellationToken,
) -> Result<()> {
    let mut offsets = None;
    for spec in specs {
        if matches!(spec, BridgeSpec::TopicToExchange { .. }) && offsets.is_none() {
            let limits = KeyedLimits {
                entries_max: OFFSETS_MAX,
                bytes_max: OFFSETS_BYTES_MAX,
            };
            offsets = Some(KeyedStore::open(broker, OFFSETS_TOPIC, limits).await?);
        }
        start(broker, spec.clone(), offsets.clone(), shutdown.clone()).await?;
    }
    Ok(())
}

async fn start(
    broker: &Arc<Broker>,
    spec: BridgeSpec,
    offsets: Option<Arc<KeyedStore>>,
    shutdown: CancellationToken,
) -> Result<()> {
    match spec {
        BridgeSpec::ExchangeToTopic {
            vhost,
            exchange,
            binding_key,
            topic,
        } => {
            let vhost = broker.vhost(&vhost)?;
            let handle = broker
                .topic_or_create(&topic, broker.config().default_partitions)
                .await?;
            let queue_name = format!("{BRIDGE_QUEUE_PREFIX}{exchange}.{topic}");
            let owner = next_owner_id();
            let definition = QueueDefinition {
                name: queue_name.clone(),
                id: Default::default(),
                durable: true,
                exclusive_owner: None,
                auto_delete: false,
                arguments: Default::default(),
            };
            vhost.declare_queue(definition, false, owner).await?;
            let binding = Binding::new(
                exchange.as_str(),
                Destination::Queue(queue_name.clone()),
                binding_key,
            );
            vhost.bind(binding, owner).await?;
            let queue = vhost.queue(&queue_name, owner)?;
            let (sink, events) = mpsc::channel(BRIDGE_BATCH_MAX * 2);
            queue.consume(ConsumeRequest {
                consumer_tag: "porter-bridge".into(),
                prefetch: (BRIDGE_BATCH_MAX * 2) as u16,
                no_ack: false,
                exclusive: true,
                owner,
                sink,
            })?;
            tracing::info!(%exchange, %topic, "bridge from exchange to topic started");
            tokio::spawn(exchange_to_topic(
                queue,
                handle.partitions.clone(),
                exchange,
                events,
                shutdown,
            ));
        }
        BridgeSpec::TopicToExchange {
            topic,
            vhost,
            exchange,
            routing_key,
        } => {
            let vhost = broker.vhost(&vhost)?;
            let handle = broker
                .topic_or_create(&topic, broker.config().default_partitions)
                .await?;
            let offsets = offsets.expect("start_all opens it for topic bridges");
            tracing::info!(%topic, %exchange, "bridge from topic to exchange started");
            for partition in handle.partitions.iter().cloned() {
                let key = format!("{topic}/{}/{}/{exchange}", partition.index(), vhost.name());
                tokio::spawn(topic_to_exchange(
                    partition,
                    vhost.clone(),
                    exchange.clone(),
                    routing_key.clone(),
                    offsets.clone(),
                    key,
                    shutdown.clone(),
                ));
            }
        }
    }
    Ok(())
}

/// The record a bridged message becomes in a topic.
pub fn to_topic_record(message: &Message, now_ms: i64, from_exchange: &str) -> LogRecord {
    let mut record = message.to_record(now_ms, None);
    if let Some(headers) = &message.properties.headers {
        for (name, value) in headers {
            if let Some(text) = header_text(value) {
                record.headers.push((name.clone(), Some(Bytes::from(text))));
            }
        }
    }
    record.headers.push((
        BRIDGED_HEADER.to_string(),
        Some(Bytes::copy_from_slice(from_exchange.as_bytes())),
    ));
    record
}

fn header_text(value: &HeaderValue) -> Option<String> {
    match value {
        HeaderValue::String(s) => Some(s.clone()),
        HeaderValue::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        HeaderValue::Bool(b) => Some(b.to_string()),
        other => other.as_i64().map(|n| n.to_string()),
    }
}

/// FNV-1a of the routing key: stable across restarts, so one key keeps one partition.
fn partition_of(key: &str, partitions: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % partitions.max(1) as u64) as usize
}

async fn exchange_to_topic(
    queue: Arc<crate::queue::Queue>,
    partitions: Vec<Arc<crate::partition::Partition>>,
    exchange: String,
    mut events: mpsc::Receiver<ConsumerEvent>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BRIDGE_BATCH_MAX);
    loop {
        tokio::select! {
            n = events.recv_many(&mut batch, BRIDGE_BATCH_MAX) => if n == 0 { return },
            _ = shutdown.cancelled() => return,
        }
        let deliveries: Vec<_> = batch
            .drain(..)
            .filter_map(|e| match e {
                ConsumerEvent::Deliver(d) => Some(d),
                ConsumerEvent::Cancelled { .. } => None,
            })
            .collect();
        if deliveries.is_empty() {
            continue;
        }
        let now = crate::partition::now_ms();
        let mut by_partition: HashMap<usize, Vec<LogRecord>> = HashMap::new();
        for d in &deliveries {
            let p = partition_of(&d.message.routing_key, partitions.len());
            by_partition
                .entry(p)
                .or_default()
                .push(to_topic_record(&d.message, now, &exchange));
        }
        let mut failed = false;
        for (p, records) in by_partition {
            let appended = async {
                let batch = encode_batch(&records)?;
                let appended = partitions[p].append(batch).await?;
                partitions[p].wait_durable(appended.last_offset + 1).await
            };
            if let Err(e) = appended.await {
                tracing::warn!(error = %e, "bridge append failed; the messages go back to the bridge queue");
                failed = true;
            }
        }
        let tags: Vec<u64> = deliveries.iter().map(|d| d.queue_tag).collect();
        let settled = if failed {
            queue.nack(&tags, true)
        } else {
            queue.ack(&tags)
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "settling bridged messages failed");
        }
        if failed {
            tokio::time::sleep(RETRY).await;
        }
    }
}

async fn topic_to_exchange(
    partition: Arc<crate::partition::Partition>,
    vhost: VirtualHost,
    exchange: String,
    routing_key: Option<String>,
    offsets: Arc<KeyedStore>,
    key: String,
    shutdown: CancellationToken,
) {
    let mut offset = offsets
        .get(&key)
        .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<i64>().ok())
        .unwrap_or_else(|| partition.log_start_offset());
    let mut watch = partition.subscribe();
    loop {
        if offset >= partition.high_watermark() {
            tokio::select! {
                changed = watch.changed() => if changed.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        match forward(
            &partition,
            &vhost,
            &exchange,
            routing_key.as_deref(),
            offset,
        )
        .await
        {
            Ok(next) => {
                offset = next;
                if let Err(e) = offsets.put(&key, Bytes::from(offset.to_string())).await {
                    tracing::warn!(error = %e, "saving a bridge offset failed");
                }
            }
            Err(e) => {
                tracing::warn!(topic = %partition.topic(), error = %e, "bridge to exchange failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Publishes the records from `offset` (one read) through `exchange`; returns the next offset
/// once the publishes committed.
async fn forward(
    partition: &crate::partition::Partition,
    vhost: &VirtualHost,
    exchange: &str,
    routing_key: Option<&str>,
    offset: i64,
) -> Result<i64> {
    let batches = match partition.read(offset, READ_BYTES).await {
        Ok(b) => b,
        Err(CoreError::OffsetOutOfRange { .. }) => return Ok(partition.log_start_offset()),
        Err(e) => return Err(e),
    };
    let records = decode_batches(batches.bytes)?;
    let mut next = offset;
    let mut publishes = Vec::new();
    for record in records
        .into_iter()
        .filter(|r| r.offset >= offset)
        .take(BRIDGE_BATCH_MAX)
    {
        next = record.offset + 1;
        let from = record
            .headers
            .iter()
            .find(|(k, _)| k == BRIDGED_HEADER)
            .and_then(|(_, v)| v.clone());
        if from.as_deref() == Some(exchange.as_bytes()) {
            continue; // came from this exchange: sending it back would loop
        }
        let mut message = Message::decode(&record)
            .map_err(|e| CoreError::Corrupt(format!("bridged record: {e}")))?
            .message
            .as_ref()
            .clone();
        if let Some(key) = routing_key {
            message.routing_key = key.to_string();
        }
        message.exchange = exchange.to_string();
        publishes.push(crate::publish::Publish {
            exchange: exchange.to_string(),
            message,
        });
    }
    if !publishes.is_empty() {
        for outcome in vhost.publish_batch(publishes).await? {
            outcome?.durable.wait().await?;
        }
    }
    // No record at `offset` (compacted away): step over it.
    Ok(if next > offset { next } else { offset + 1 })
}
