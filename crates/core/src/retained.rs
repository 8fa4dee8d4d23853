//! [`RetainedStore`]: the last retained message per topic (MQTT's retained messages), durable on
//! the log engine: a [`KeyedStore`] on the compacted internal topic [`RETAINED_TOPIC`], keyed by
//! the topic's routing key (`amq.topic` form, so the store is not tied to MQTT's `/`
//! separators), each record the message as a queue stores it ([`Message::to_record`]). An
//! empty payload's clear is a tombstone.
//!
//! The store is held in memory (a subscription must match it at once) within
//! [`RetainedLimits`]; a retain is answered only after its record is committed, so a retained
//! message acknowledged to a publisher survives kill -9.

use std::sync::Arc;

use crate::error::Result;
use crate::keyed_store::{KeyedLimits, KeyedStore};
use crate::message::Message;
use crate::partition::now_ms;
use crate::Broker;

/// The internal topic holding retained messages. Kafka clients can read it (it is an ordinary
/// compacted topic), which is how an operator inspects what is retained.
pub const RETAINED_TOPIC: &str = "__porter_retained";

/// How much may be retained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetainedLimits {
    /// Topics with a retained message.
    pub messages_max: usize,
    /// Bytes of retained bodies, properties and topic names together.
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

/// The retained messages of a broker (one per broker; gateways share it).
#[derive(Debug)]
pub struct RetainedStore {
    store: Arc<KeyedStore>,
}

impl RetainedStore {
    /// Opens the store, reading back what the retained topic holds.
    pub async fn open(broker: &Arc<Broker>, limits: RetainedLimits) -> Result<Arc<Self>> {
        let limits = KeyedLimits {
            entries_max: limits.messages_max,
            bytes_max: limits.bytes_max,
        };
        Ok(Arc::new(RetainedStore {
            store: KeyedStore::open(broker, RETAINED_TOPIC, limits).await?,
        }))
    }

    /// Retains `message` for its routing key (replacing what was there), durably. Refused
    /// ([`crate::CoreError::Precondition`]) past the store's limits.
    pub async fn retain(&self, message: Arc<Message>) -> Result<()> {
        let record = message.to_record(now_ms(), None);
        self.store.put_record(&message.routing_key, record).await
    }

    /// Clears the retained message of `routing_key` (an empty retained publish), durably.
    pub async fn clear(&self, routing_key: &str) -> Result<()> {
        self.store.remove(routing_key).await
    }

    /// The retained messages whose routing key `matches` accepts, at most `limit` of them.
    pub fn matching(&self, matches: impl Fn(&str) -> bool, limit: usize) -> Vec<Retained> {
        self.store
            .records_matching(matches, limit)
            .iter()
            .filter_map(|record| match Message::decode(record) {
                Ok(stored) => Some(Retained {
                    message: stored.message,
                    stored_ms: stored.enqueued_ms,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable retained message");
                    None
                }
            })
            .collect()
    }

    /// Topics with a retained message.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.store.bytes()
    }
}
