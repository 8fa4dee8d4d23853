//! [`KeyedStore`]: the latest record per key, durable on the log engine and held in memory. Every
//! change is one record on a single-partition, compacted internal topic (a removal is a
//! tombstone: no value), so the log stays about as large as what is stored, and the whole store
//! is read back from the log start when the broker opens it.
//!
//! It holds state that must survive kill -9 but is small and keyed: MQTT's retained messages
//! ([`crate::retained`]) and MQTT sessions' delivery state. Bounded by [`KeyedLimits`]: past
//! either bound a new key is refused; an existing one may still be replaced or removed.
//!
//! A change resolves only after its record is committed ([`Partition::wait_durable`]), and
//! changes are written in the order they were made, so memory and log agree.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use porter_storage::records::{decode_batches, encode_batch, LogRecord};

use crate::error::{CoreError, Result};
use crate::partition::{now_ms, Partition};
use crate::topic::TopicConfig;
use crate::Broker;

/// Bytes read per call while loading a store at start.
const LOAD_READ_BYTES: u32 = 1 << 20;
/// Bookkeeping bytes counted per entry on top of its key, value and headers.
pub const ENTRY_OVERHEAD_BYTES: u64 = 100;

/// How much a store holds at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedLimits {
    pub entries_max: usize,
    /// Bytes of keys, values and headers, plus [`ENTRY_OVERHEAD_BYTES`] per entry.
    pub bytes_max: u64,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, LogRecord>,
    bytes: u64,
}

fn cost(key: &str, record: &LogRecord) -> u64 {
    let headers: usize = record
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
        .sum();
    (key.len() + record.value.as_ref().map_or(0, Bytes::len) + headers) as u64
        + ENTRY_OVERHEAD_BYTES
}

impl Entries {
    fn put(&mut self, key: String, record: LogRecord) {
        self.bytes += cost(&key, &record);
        if let Some(old) = self.by_key.insert(key.clone(), record) {
            self.bytes -= cost(&key, &old);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.by_key.remove(key) {
            self.bytes -= cost(key, &old);
        }
    }
}

/// One keyed store on its compacted topic.
pub struct KeyedStore {
    topic: String,
    partition: Arc<Partition>,
    limits: KeyedLimits,
    entries: RwLock<Entries>,
    /// Serialises changes so the log's order is the memory's order.
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedStore")
            .field("topic", &self.topic)
            .field("limits", &self.limits)
            .field("entries", &self.len())
            .finish()
    }
}

impl KeyedStore {
    /// Opens the store on `topic`: created (compacted, one partition) on first use, otherwise
    /// read back.
    pub async fn open(broker: &Arc<Broker>, topic: &str, limits: KeyedLimits) -> Result<Arc<Self>> {
        if broker.topic(topic).is_none() {
            let config = TopicConfig::from_pairs([("cleanup.policy", "compact")])?;
            match broker.create_topic(topic, 1, config).await {
                Ok(_) | Err(CoreError::TopicExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let partition = broker.partition(topic, 0)?;
        let mut entries = Entries::default();
        let mut offset = partition.log_start_offset();
        while offset < partition.high_watermark() {
            let batches = partition.read(offset, LOAD_READ_BYTES).await?;
            let records = decode_batches(batches.bytes)?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            for record in records {
                let Some(key) = record.key.as_ref() else {
                    continue;
                };
                let key = String::from_utf8_lossy(key).into_owned();
                if record.value.is_none() {
                    entries.remove(&key);
                } else {
                    entries.put(key, record);
                }
            }
        }
        tracing::info!(
            topic,
            entries = entries.by_key.len(),
            bytes = entries.bytes,
            "keyed store loaded"
        );
        Ok(Arc::new(KeyedStore {
            topic: topic.to_string(),
            partition,
            limits,
            entries: RwLock::new(entries),
            writing: tokio::sync::Mutex::new(()),
        }))
    }

    /// Stores `value` under `key` (replacing what was there), durably.
    pub async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        let record = LogRecord {
            offset: 0,
            timestamp: now_ms(),
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(value),
            headers: Vec::new(),
        };
        self.put_record(key, record).await
    }

    /// Stores a whole record (value, headers, timestamp) under `key`, durably. Refused
    /// ([`CoreError::Precondition`]) past the store's limits.
    pub(crate) async fn put_record(&self, key: &str, mut record: LogRecord) -> Result<()> {
        record.key = Some(Bytes::copy_from_slice(key.as_bytes()));
        let _writing = self.writing.lock().await;
        {
            let entries = self.entries.read();
            let replacing = entries.by_key.get(key);
            let freed = replacing.map_or(0, |r| cost(key, r));
            let after = entries.bytes - freed + cost(key, &record);
            if (replacing.is_none() && entries.by_key.len() >= self.limits.entries_max)
                || after > self.limits.bytes_max
            {
                return Err(CoreError::Precondition(format!(
                    "{} is full ({} entries, {} bytes; limits {} and {})",
                    self.topic,
                    entries.by_key.len(),
                    entries.bytes,
                    self.limits.entries_max,
                    self.limits.bytes_max
                )));
            }
        }
        self.append(encode_batch(std::slice::from_ref(&record))?)
            .await?;
        self.entries.write().put(key.to_string(), record);
        Ok(())
    }

    /// Removes `key`, durably (a tombstone); removing a missing key writes nothing.
    pub async fn remove(&self, key: &str) -> Result<()> {
        let _writing = self.writing.lock().await;
        if !self.entries.read().by_key.contains_key(key) {
            return Ok(());
        }
        let tombstone = LogRecord {
            offset: 0,
            timestamp: now_ms(),
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: None,
            headers: Vec::new(),
        };
        self.append(encode_batch(&[tombstone])?).await?;
        self.entries.write().remove(key);
        Ok(())
    }

    async fn append(&self, batch: Bytes) -> Result<()> {
        let appended = self.partition.append(batch).await?;
        self.partition.wait_durable(appended.last_offset + 1).await
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.entries
            .read()
            .by_key
            .get(key)
            .and_then(|r| r.value.clone())
    }

    /// Every key with its value (a snapshot).
    pub fn entries(&self) -> Vec<(String, Bytes)> {
        self.entries
            .read()
            .by_key
            .iter()
            .filter_map(|(k, r)| Some((k.clone(), r.value.clone()?)))
            .collect()
    }

    /// The records whose key `matches` accepts, at most `limit`.
    pub(crate) fn records_matching(
        &self,
        matches: impl Fn(&str) -> bool,
        limit: usize,
    ) -> Vec<LogRecord> {
        self.entries
            .read()
            .by_key
            .iter()
            .filter(|(key, _)| matches(key))
            .take(limit)
            .map(|(_, record)| record.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.read().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, as the limits count them.
    pub fn bytes(&self) -> u64 {
        self.entries.read().bytes
    }
}
