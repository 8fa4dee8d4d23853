//! [`RetainedStore`]: the last retained message per topic (MQTT's retained messages), durable on
//! the log engine. Every change is one record on a single-partition, compacted internal topic,
//! [`RETAINED_TOPIC`]: the record key is the topic's routing key (`amq.topic` form, so the store
//! is not tied to MQTT's `/` separators), the value the message as a queue stores it
//! ([`Message::encode`]), and an empty payload's clear a tombstone (no value). Compaction keeps
//! one record per key, so the log stays as large as what is retained.
//!
//! The whole store is held in memory (a subscription must match it at once), bounded by
//! [`RetainedLimits`]: past either bound a new topic is refused, an existing one may still be
//! replaced or cleared. At start the topic is read once from its log start.
//!
//! A change is answered only after its record is committed ([`Partition::wait_durable`]), so a
//! retained message acknowledged to a publisher survives kill -9.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use porter_storage::records::{decode_batches, encode_batch, LogRecord};

use crate::error::{CoreError, Result};
use crate::message::Message;
use crate::partition::{now_ms, Partition};
use crate::topic::TopicConfig;
use crate::Broker;

/// The internal topic holding retained messages. Kafka clients can read it (it is an ordinary
/// compacted topic), which is how an operator inspects what is retained.
pub const RETAINED_TOPIC: &str = "__porter_retained";

/// Bytes read per call while loading the store at start.
const LOAD_READ_BYTES: u32 = 1 << 20;

/// How much may be retained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetainedLimits {
    /// Topics with a retained message.
    pub messages_max: usize,
    /// Bytes of retained bodies and routing keys together.
    pub bytes_max: u64,
}

impl Default for RetainedLimits {
    fn default() -> Self {
        RetainedLimits {
            messages_max: crate::limits::RETAINED_MESSAGES_MAX,
            bytes_max: crate::limits::RETAINED_BYTES_MAX,
        }
    }
}

/// One retained message and when it was stored (message expiry counts from here).
#[derive(Clone, Debug)]
pub struct Retained {
    pub message: Arc<Message>,
    pub stored_ms: i64,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, Retained>,
    bytes: u64,
}

impl Entries {
    fn cost(key: &str, message: &Message) -> u64 {
        (key.len() + message.body.len()) as u64
    }

    fn put(&mut self, key: String, retained: Retained) {
        self.bytes += Self::cost(&key, &retained.message);
        if let Some(old) = self.by_key.insert(key.clone(), retained) {
            self.bytes -= Self::cost(&key, &old.message);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.by_key.remove(key) {
            self.bytes -= Self::cost(key, &old.message);
        }
    }
}

/// The retained messages of a broker (one per broker; gateways share it).
pub struct RetainedStore {
    partition: Arc<Partition>,
    limits: RetainedLimits,
    entries: RwLock<Entries>,
    /// Serialises changes so the log's order is the memory's order.
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RetainedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainedStore")
            .field("limits", &self.limits)
            .field("messages", &self.len())
            .finish()
    }
}

impl RetainedStore {
    /// Opens the store: creates [`RETAINED_TOPIC`] (compacted, one partition) on first use,
    /// otherwise reads it back.
    pub async fn open(broker: &Arc<Broker>, limits: RetainedLimits) -> Result<Arc<Self>> {
        if broker.topic(RETAINED_TOPIC).is_none() {
            let config = TopicConfig::from_pairs([("cleanup.policy", "compact")])?;
            match broker.create_topic(RETAINED_TOPIC, 1, config).await {
                Ok(_) | Err(CoreError::TopicExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let partition = broker.partition(RETAINED_TOPIC, 0)?;
        let mut entries = Entries::default();
        let mut offset = partition.log_start_offset();
        while offset < partition.high_watermark() {
            let batches = partition.read(offset, LOAD_READ_BYTES).await?;
            let records = decode_batches(batches.bytes)?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            for record in records {
                let key = match &record.key {
                    Some(key) => String::from_utf8_lossy(key).into_owned(),
                    None => continue,
                };
                if record.value.is_none() {
                    entries.remove(&key);
                    continue;
                }
                match Message::decode(&record) {
                    Ok(stored) => entries.put(
                        key,
                        Retained {
                            message: stored.message,
                            stored_ms: stored.enqueued_ms,
                        },
                    ),
                    Err(e) => {
                        tracing::warn!(offset = record.offset, error = %e, "skipping an unreadable retained message")
                    }
                }
            }
        }
        tracing::info!(
            messages = entries.by_key.len(),
            bytes = entries.bytes,
            "retained messages loaded"
        );
        Ok(Arc::new(RetainedStore {
            partition,
            limits,
            entries: RwLock::new(entries),
            writing: tokio::sync::Mutex::new(()),
        }))
    }

    /// Retains `message` for its routing key (replacing what was there), durably. Refused
    /// ([`CoreError::Precondition`]) past the store's limits.
    pub async fn retain(&self, message: Arc<Message>) -> Result<()> {
        let _writing = self.writing.lock().await;
        let key = message.routing_key.clone();
        {
            let entries = self.entries.read();
            let replacing = entries.by_key.get(&key);
            let freed = replacing.map_or(0, |r| Entries::cost(&key, &r.message));
            let after = entries.bytes - freed + Entries::cost(&key, &message);
            if (replacing.is_none() && entries.by_key.len() >= self.limits.messages_max)
                || after > self.limits.bytes_max
            {
                return Err(CoreError::Precondition(format!(
                    "retained message store full ({} messages, {} bytes; limits {} and {})",
                    entries.by_key.len(),
                    entries.bytes,
                    self.limits.messages_max,
                    self.limits.bytes_max
                )));
            }
        }
        let stored_ms = now_ms();
        self.append(message.encode(stored_ms, None)).await?;
        self.entries
            .write()
            .put(key, Retained { message, stored_ms });
        Ok(())
    }

    /// Clears the retained message of `routing_key` (an empty retained publish), durably.
    pub async fn clear(&self, routing_key: &str) -> Result<()> {
        let _writing = self.writing.lock().await;
        if !self.entries.read().by_key.contains_key(routing_key) {
            return Ok(());
        }
        let tombstone = LogRecord {
            offset: 0,
            timestamp: now_ms(),
            key: Some(Bytes::copy_from_slice(routing_key.as_bytes())),
            value: None,
            headers: Vec::new(),
        };
        self.append(encode_batch(&[tombstone])?).await?;
        self.entries.write().remove(routing_key);
        Ok(())
    }

    async fn append(&self, batch: Bytes) -> Result<()> {
        let appended = self.partition.append(batch).await?;
        self.partition.wait_durable(appended.last_offset + 1).await
    }

    /// The retained messages whose routing key `matches` accepts, at most `limit` of them.
    pub fn matching(&self, matches: impl Fn(&str) -> bool, limit: usize) -> Vec<Retained> {
        let entries = self.entries.read();
        entries
            .by_key
            .iter()
            .filter(|(key, _)| matches(key))
            .take(limit)
            .map(|(_, retained)| retained.clone())
            .collect()
    }

    /// Topics with a retained message.
    pub fn len(&self) -> usize {
        self.entries.read().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held (bodies and keys).
    pub fn bytes(&self) -> u64 {
        self.entries.read().bytes
    }
}
