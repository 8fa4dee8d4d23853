//! [`TopicMessage`]: a message on a topic with the facts business messaging needs — a tag,
//! lookup keys, a message id, a FIFO message group, a delivery time — stored as one plain Kafka
//! record, so a Kafka consumer reads the same topic unchanged.
//!
//! The record's value is the body and its timestamp the time the message was stored. The facts
//! travel as record headers named as Apache RocketMQ names these properties, so that RocketMQ
//! users recognise them and an SQL filter can name them (`TAGS = 'a'`); every other header is a
//! user property:
//!
//! | header | holds |
//! |---|---|
//! | `TAGS` | the tag |
//! | `KEYS` | the lookup keys, joined by a space |
//! | `UNIQ_KEY` | the message id |
//! | `__SHARDINGKEY` | the FIFO message group |
//! | `__STARTDELIVERTIME` | for a delayed message, when it was due (ms since the epoch) |
//! | `BORN_HOST` | the producer's address |
//! | `BORN_TIMESTAMP` | when the producer made it (ms since the epoch) |
//!
//! The record key is the message group, else the first key, so Kafka-side partitioning and
//! compaction see something meaningful. A record written by another protocol (a Kafka producer)
//! decodes too: its headers become user properties, its key the one lookup key, and its id is
//! made from where it is stored.

use bytes::Bytes;
use porter_storage::records::{encode_batch, LogRecord};
use porter_storage::Offset;

use crate::error::{CoreError, Result};

pub const TAG_HEADER: &str = "TAGS";
pub const KEYS_HEADER: &str = "KEYS";
pub const MESSAGE_ID_HEADER: &str = "UNIQ_KEY";
pub const MESSAGE_GROUP_HEADER: &str = "__SHARDINGKEY";
pub const DELIVER_AT_HEADER: &str = "__STARTDELIVERTIME";
pub const BORN_HOST_HEADER: &str = "BORN_HOST";
pub const BORN_MS_HEADER: &str = "BORN_TIMESTAMP";

/// Header names Porter reserves: a user property may not take one of them.
pub const RESERVED_HEADERS: [&str; 7] = [
    TAG_HEADER,
    KEYS_HEADER,
    MESSAGE_ID_HEADER,
    MESSAGE_GROUP_HEADER,
    DELIVER_AT_HEADER,
    BORN_HOST_HEADER,
    BORN_MS_HEADER,
];

/// A message as a producer sends it to a topic and a consumer receives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicMessage {
    /// Unique per message, chosen by the producer (RocketMQ clients make one) or by Porter.
    pub message_id: String,
    pub tag: Option<String>,
    /// What the message can be looked up by (an order number, a user id).
    pub keys: Vec<String>,
    /// Messages of one group are delivered to each consumer group one at a time, in order.
    pub message_group: Option<String>,
    /// For a delayed message: when it became due (ms since the epoch).
    pub deliver_at_ms: Option<i64>,
    pub born_host: Option<String>,
    /// When the producer made it (ms since the epoch); 0 if unknown.
    pub born_ms: i64,
    /// User properties, in the order given.
    pub properties: Vec<(String, String)>,
    pub body: Bytes,
}

/// A message read back from a partition, with where and when it was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTopicMessage {
    pub message: TopicMessage,
    pub partition: i32,
    pub offset: Offset,
    pub stored_ms: i64,
}

impl TopicMessage {
    /// The value of a user property, or of one of the reserved facts by its header name (what
    /// an SQL filter sees: `TAGS`, `KEYS`...).
    pub fn property(&self, name: &str) -> Option<&str> {
        match name {
            TAG_HEADER => self.tag.as_deref(),
            MESSAGE_GROUP_HEADER => self.message_group.as_deref(),
            MESSAGE_ID_HEADER => Some(&self.message_id),
            _ => self
                .properties
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        }
    }

    /// Refuses a user property that would shadow a reserved header.
    pub fn validate(&self) -> Result<()> {
        if let Some((name, _)) = self
            .properties
            .iter()
            .find(|(name, _)| RESERVED_HEADERS.contains(&name.as_str()))
        {
            return Err(CoreError::InvalidRequest(format!(
                "the user property {name:?} is reserved"
            )));
        }
        Ok(())
    }

    /// Bytes this message holds in memory (body, properties, facts): what a buffer counts.
    pub fn size(&self) -> usize {
        self.body.len()
            + self.message_id.len()
            + self.tag.as_ref().map_or(0, String::len)
            + self.keys.iter().map(String::len).sum::<usize>()
            + self.message_group.as_ref().map_or(0, String::len)
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    fn record(&self, stored_ms: i64) -> LogRecord {
        let mut headers = Vec::with_capacity(self.properties.len() + 6);
        let mut put = |name: &str, value: &str| {
            headers.push((
                name.to_string(),
                Some(Bytes::copy_from_slice(value.as_bytes())),
            ))
        };
        put(MESSAGE_ID_HEADER, &self.message_id);
        if let Some(tag) = &self.tag {
            put(TAG_HEADER, tag);
        }
        if !self.keys.is_empty() {
            put(KEYS_HEADER, &self.keys.join(" "));
        }
        if let Some(group) = &self.message_group {
            put(MESSAGE_GROUP_HEADER, group);
        }
        if let Some(at) = self.deliver_at_ms {
            put(DELIVER_AT_HEADER, &at.to_string());
        }
        if let Some(host) = &self.born_host {
            put(BORN_HOST_HEADER, host);
        }
        if self.born_ms > 0 {
            put(BORN_MS_HEADER, &self.born_ms.to_string());
        }
        for (k, v) in &self.properties {
            put(k, v);
        }
        let key = self
            .message_group
            .as_ref()
            .or(self.keys.first())
            .map(|k| Bytes::copy_from_slice(k.as_bytes()));
        LogRecord {
            offset: 0,
            timestamp: stored_ms,
            key,
            value: Some(self.body.clone()),
            headers,
        }
    }

    /// One record batch holding `messages`, in order, ready for a partition append.
    pub fn encode_batch(messages: &[&TopicMessage], stored_ms: i64) -> Result<Bytes> {
        let records: Vec<LogRecord> = messages.iter().map(|m| m.record(stored_ms)).collect();
        Ok(encode_batch(&records)?)
    }

    /// The first message of a batch [`Self::encode_batch`] made, read back: what a timer's or a
    /// half message's payload holds. `None` if the bytes are not such a batch.
    pub fn decode_payload(bytes: &Bytes) -> Option<TopicMessage> {
        porter_storage::records::decode_batches(bytes.clone())
            .ok()?
            .first()
            .map(|record| TopicMessage::decode(record, 0).message)
    }

    /// The message a record of partition `partition` holds.
    pub fn decode(record: &LogRecord, partition: i32) -> StoredTopicMessage {
        let mut message = TopicMessage::default();
        let mut has_keys = false;
        for (name, value) in &record.headers {
            let value = match value {
                Some(v) => String::from_utf8_lossy(v).into_owned(),
                None => String::new(),
            };
            match name.as_str() {
                TAG_HEADER => message.tag = Some(value),
                KEYS_HEADER => {
                    has_keys = true;
                    message.keys = value
                        .split(' ')
                        .filter(|k| !k.is_empty())
                        .map(String::from)
                        .collect();
                }
                MESSAGE_ID_HEADER => message.message_id = value,
                MESSAGE_GROUP_HEADER => message.message_group = Some(value),
                DELIVER_AT_HEADER => message.deliver_at_ms = value.parse().ok(),
                BORN_HOST_HEADER => message.born_host = Some(value),
                BORN_MS_HEADER => message.born_ms = value.parse().unwrap_or(0),
                _ => message.properties.push((name.clone(), value)),
            }
        }
        if !has_keys && message.message_group.is_none() {
            if let Some(key) = &record.key {
                if let Ok(key) = std::str::from_utf8(key) {
                    message.keys.push(key.to_string());
                }
            }
        }
        if message.message_id.is_empty() {
            message.message_id = stored_message_id(partition, record.offset);
        }
        if message.born_ms == 0 {
            message.born_ms = record.timestamp;
        }
        message.body = record.value.clone().unwrap_or_default();
        StoredTopicMessage {
            message,
            partition,
            offset: record.offset,
            stored_ms: record.timestamp,
        }
    }
}

/// The message at `offset` of `partition`, if the partition still has it.
pub async fn read_at(
    partition: &crate::partition::Partition,
    offset: Offset,
) -> Result<Option<StoredTopicMessage>> {
    let batches = match partition.read(offset, 1).await {
        Ok(batches) => batches,
        Err(CoreError::OffsetOutOfRange { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(porter_storage::records::decode_batches(batches.bytes)?
        .iter()
        .find(|r| r.offset == offset)
        .map(|r| TopicMessage::decode(r, partition.index())))
}

/// Broker-side filters (tag expressions, SQL92) read a message's tag and properties.
impl crate::filter::FilterSubject for TopicMessage {
    fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    fn property(&self, name: &str) -> Option<&str> {
        TopicMessage::property(self, name)
    }
}

/// The id of a message stored without one (a Kafka producer's record): unique within its topic.
pub fn stored_message_id(partition: i32, offset: Offset) -> String {
    format!("P{partition:08X}O{offset:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use porter_storage::records::decode_batches;

    #[test]
    fn a_message_survives_its_record() {
        let message = TopicMessage {
            message_id: "01AB".into(),
            tag: Some("paid".into()),
            keys: vec!["order-1".into(), "user-7".into()],
            message_group: Some("order-1".into()),
            deliver_at_ms: Some(1_700_000_000_123),
            born_host: Some("10.0.0.1".into()),
            born_ms: 1_700_000_000_000,
            properties: vec![("region".into(), "eu".into())],
            body: Bytes::from_static(b"hello"),
        };
        let batch = TopicMessage::encode_batch(&[&message], 1_700_000_000_999).unwrap();
        let records = decode_batches(batch).unwrap();
        let stored = TopicMessage::decode(&records[0], 3);
        assert_eq!(stored.message, message);
        assert_eq!(stored.stored_ms, 1_700_000_000_999);
        assert_eq!(stored.message.property("TAGS"), Some("paid"));
        assert_eq!(stored.message.property("region"), Some("eu"));
    }

    #[test]
    fn a_kafka_record_reads_as_a_message() {
        let record = LogRecord {
            offset: 42,
            timestamp: 5,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
        };
        let stored = TopicMessage::decode(&record, 2);
        assert_eq!(stored.message.keys, vec!["k1".to_string()]);
        assert_eq!(stored.message.properties, vec![("h".into(), "x".into())]);
        assert_eq!(stored.message.message_id, stored_message_id(2, 42));
        assert_eq!(stored.message.born_ms, 5);
    }

    #[test]
    fn reserved_names_are_refused_as_user_properties() {
        let message = TopicMessage {
            properties: vec![("TAGS".into(), "x".into())],
            ..Default::default()
        };
        assert!(message.validate().is_err());
    }
}
