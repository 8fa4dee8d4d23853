//! [`Message`]: the protocol-neutral message a queue holds: routing facts (exchange, routing key),
//! properties (AMQP 0-9-1's basic properties, which MQTT 5 and STOMP headers map onto) and a body.
//!
//! On disk a message is one Kafka record (porter-storage's native format): the body is the
//! record's value, so a Kafka reader of the same bytes sees the payload unchanged; the routing
//! key is the record key; exchange and properties travel in one record header, [`META_HEADER`],
//! as compact JSON holding only the properties that are set. The record's timestamp is the enqueue
//! time, which TTL is measured from.

use bytes::Bytes;
use porter_storage::records::{encode_batch, LogRecord};
use serde::{Deserialize, Serialize};

use crate::routing::{FieldTable, HeaderValue};

/// The record header holding a message's exchange and properties.
pub const META_HEADER: &str = "porter.meta";

/// AMQP 0-9-1 basic properties, each optional as on the wire. `delivery_mode` 2 is persistent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Properties {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ct")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ce")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "h")]
    pub headers: Option<FieldTable>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "dm")]
    pub delivery_mode: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "p")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ci")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "rt")]
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds, as a decimal string (AMQP's quirk, kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ex")]
    pub expiration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "mi")]
    pub message_id: Option<String>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ts")]
    pub timestamp: Option<u64>,
    /// AMQP `type`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ty")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ui")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ai")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "cl")]
    pub cluster_id: Option<String>,
}

impl Properties {
    /// `delivery_mode = 2`: the message survives a restart on a durable queue.
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }

    /// The per-message TTL, if `expiration` holds a valid one. RabbitMQ refuses an invalid
    /// expiration with 406 at publish; [`Properties::validate`] does that check.
    pub fn expiration_ms(&self) -> Option<u64> {
        self.expiration.as_deref().and_then(|e| e.parse().ok())
    }

    /// Checks what RabbitMQ checks at publish: `expiration` is a non-negative integer.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(e) = &self.expiration {
            if e.parse::<u64>().is_err() {
                return Err(format!("invalid expiration {e:?}"));
            }
        }
        Ok(())
    }

    pub fn header(&self, key: &str) -> Option<&HeaderValue> {
        self.headers.as_ref().and_then(|h| h.get(key))
    }
}

/// A message as published and as delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The exchange it was published to (`""` for the default exchange).
    pub exchange: String,
    pub routing_key: String,
    pub properties: Properties,
    pub body: Bytes,
}

#[derive(Serialize, Deserialize)]
struct Meta<'a> {
    #[serde(default, skip_serializing_if = "str::is_empty", rename = "x", borrow)]
    exchange: std::borrow::Cow<'a, str>,
    #[serde(default, rename = "p")]
    properties: Properties,
    /// The broker incarnation that stored a transient message; see [`StoredMessage::epoch`].
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "e")]
    epoch: Option<u64>,
}

/// A message read back from a queue's log, with what the log knows about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Shared with every delivery of it: a delivery never copies the message.
    pub message: std::sync::Arc<Message>,
    /// When it was enqueued (ms since the epoch): TTL counts from here.
    pub enqueued_ms: i64,
    /// For transient (non-persistent) messages, the broker incarnation that stored them: a
    /// transient message from an earlier incarnation is dropped instead of delivered, so that
    /// transient messages do not survive a restart, as in RabbitMQ.
    pub epoch: Option<u64>,
}

impl Message {
    /// Body plus the properties' share of the record: what `x-max-length-bytes` counts is the body
    /// alone, as RabbitMQ does; this is for buffers.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// One record batch holding this message, ready for `Log::append`.
    pub fn encode(&self, enqueued_ms: i64, epoch: Option<u64>) -> Bytes {
        encode_batch(&[self.to_record(enqueued_ms, epoch)]).expect("one small record encodes")
    }

    /// The record this message is stored as: routing key as key, body as value, exchange and
    /// properties in [`META_HEADER`].
    pub fn to_record(&self, enqueued_ms: i64, epoch: Option<u64>) -> LogRecord {
        let meta = Meta {
            exchange: std::borrow::Cow::Borrowed(&self.exchange),
            properties: self.properties.clone(),
            epoch,
        };
        let meta = serde_json::to_vec(&meta).expect("properties serialise");
        LogRecord {
            offset: 0,
            timestamp: enqueued_ms,
            key: Some(Bytes::copy_from_slice(self.routing_key.as_bytes())),
            value: Some(self.body.clone()),
            headers: vec![(META_HEADER.to_string(), Some(Bytes::from(meta)))],
        }
    }

    /// The message a record holds. Records without [`META_HEADER`] (written by another
    /// protocol) come back with the record key as routing key and their UTF-8 headers as
    /// headers.
    pub fn decode(record: &LogRecord) -> Result<StoredMessage, String> {
        let routing_key = match &record.key {
            Some(key) => String::from_utf8_lossy(key).into_owned(),
            None => String::new(),
        };
        let meta = record
            .headers
            .iter()
            .find(|(name, _)| name == META_HEADER)
            .and_then(|(_, value)| value.as_ref());
        let (exchange, properties, epoch) = match meta {
            Some(bytes) => {
                let meta: Meta = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                (meta.exchange.into_owned(), meta.properties, meta.epoch)
            }
            // Written by another protocol (a Kafka producer): its headers are the message's.
            None => {
                let headers: FieldTable = record
                    .headers
                    .iter()
                    .filter_map(|(k, v)| {
                        let text = std::str::from_utf8(v.as_ref()?).ok()?;
                        Some((k.clone(), HeaderValue::from(text)))
                    })
                    .collect();
                let properties = Properties {
                    headers: (!headers.is_empty()).then_some(headers),
                    ..Properties::default()
                };
                (String::new(), properties, None)
            }
        };
        Ok(StoredMessage {
            message: std::sync::Arc::new(Message {
                exchange,
                routing_key,
                properties,
                body: record.value.clone().unwrap_or_default(),
            }),
            enqueued_ms: record.timestamp,
            epoch,
        })
    }
}
