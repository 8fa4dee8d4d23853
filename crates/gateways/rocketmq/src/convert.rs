//! RocketMQ's protobuf messages and names ↔ the core's [`TopicMessage`] and topic names.

use std::collections::HashMap;

use porter_core::pop::{dead_letter_topic, Received};
use porter_core::topic_message::{TopicMessage, RESERVED_HEADERS};
use prost_types::{Duration as ProtoDuration, Timestamp};

use crate::error::Refusal;
use crate::proto::{
    self, Code, Digest, DigestType, Encoding, MessageType, Resource, SystemProperties,
};

/// RocketMQ's prefix of a group's dead-letter topic.
const DLQ_PREFIX: &str = "%DLQ%";

/// The Porter topic a RocketMQ topic name means: `%DLQ%g` is group g's dead-letter topic
/// (`DLQ.g`), anything else itself (RocketMQ's `[%|a-zA-Z0-9_-]` names are Kafka names once
/// `%` and `|` are excluded).
pub fn topic_name(resource: Option<&Resource>) -> Result<String, Refusal> {
    let name = resource.map(|r| r.name.as_str()).unwrap_or_default();
    if name.is_empty() {
        return Err(Refusal::new(Code::IllegalTopic, "the topic name is empty"));
    }
    if let Some(group) = name.strip_prefix(DLQ_PREFIX) {
        return Ok(dead_letter_topic(group));
    }
    if !valid_name(name, 127) {
        return Err(Refusal::new(
            Code::IllegalTopic,
            format!("illegal topic {name:?}: use 1-127 of [a-zA-Z0-9_-]"),
        ));
    }
    Ok(name.to_string())
}

/// RocketMQ's name characters without `%` and `|` (which Kafka names lack), plus `.`.
fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// The name a RocketMQ client knows a Porter topic by.
pub fn rocketmq_topic_name(topic: &str) -> String {
    match topic.strip_prefix("DLQ.") {
        Some(group) => format!("{DLQ_PREFIX}{group}"),
        None => topic.to_string(),
    }
}

pub fn group_name(resource: Option<&Resource>) -> Result<String, Refusal> {
    let name = resource.map(|r| r.name.as_str()).unwrap_or_default();
    if !valid_name(name, 255) {
        return Err(Refusal::new(
            Code::IllegalConsumerGroup,
            format!("illegal consumer group {name:?}: use 1-255 of [a-zA-Z0-9_-]"),
        ));
    }
    Ok(name.to_string())
}

/// What a producer's message asks for besides being stored.
pub struct Incoming {
    pub message: TopicMessage,
    pub kind: MessageType,
    /// The queue the producer picked (Java clients name one; Python's do not).
    pub queue_id: Option<i32>,
    /// For a transactional message: how long before the broker may check back, if the
    /// producer said (`orphaned_transaction_recovery_duration`).
    pub check_after_ms: Option<i64>,
}

/// Checks a sent message as RocketMQ's proxy does and turns it into the core's.
pub fn incoming(message: &proto::Message, body_bytes_max: usize) -> Result<Incoming, Refusal> {
    let sys = message
        .system_properties
        .as_ref()
        .ok_or_else(|| Refusal::new(Code::BadRequest, "a message without system properties"))?;
    if message.body.is_empty() {
        return Err(Refusal::new(
            Code::MessageBodyEmpty,
            "the message body is empty",
        ));
    }
    if message.body.len() > body_bytes_max {
        return Err(Refusal::new(
            Code::MessageBodyTooLarge,
            format!(
                "the message body is {} bytes, more than the {body_bytes_max} allowed",
                message.body.len()
            ),
        ));
    }
    if sys.body_encoding == Encoding::Gzip as i32 {
        return Err(Refusal::new(
            Code::Unsupported,
            "gzip-encoded bodies are not supported",
        ));
    }
    if let Some(tag) = &sys.tag {
        if tag.trim().is_empty() || tag.contains('|') {
            return Err(Refusal::new(
                Code::IllegalMessageTag,
                format!("illegal tag {tag:?}"),
            ));
        }
    }
    for key in &sys.keys {
        if key.trim().is_empty() || key.contains(' ') {
            return Err(Refusal::new(
                Code::IllegalMessageKey,
                format!("illegal key {key:?}"),
            ));
        }
    }
    if let Some(group) = &sys.message_group {
        if group.trim().is_empty() || group.len() > 128 {
            return Err(Refusal::new(
                Code::IllegalMessageGroup,
                format!("illegal message group {group:?}"),
            ));
        }
    }
    if sys.message_id.is_empty() || sys.message_id.len() > 128 {
        return Err(Refusal::new(
            Code::IllegalMessageId,
            "a message needs an id of 1-128 characters",
        ));
    }
    let mut properties: Vec<(String, String)> = message
        .user_properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    properties.sort();
    if let Some((name, _)) = properties
        .iter()
        .find(|(name, _)| name.is_empty() || RESERVED_HEADERS.contains(&name.as_str()))
    {
        return Err(Refusal::new(
            Code::IllegalMessagePropertyKey,
            format!("the property name {name:?} is empty or reserved"),
        ));
    }
    let kind = MessageType::try_from(sys.message_type).unwrap_or(MessageType::Normal);
    let deliver_at_ms = sys.delivery_timestamp.as_ref().map(millis);
    match kind {
        MessageType::Fifo if sys.message_group.is_none() => {
            return Err(Refusal::new(
                Code::MessagePropertyConflictWithType,
                "a FIFO message needs a message group",
            ))
        }
        MessageType::Delay if deliver_at_ms.is_none() => {
            return Err(Refusal::new(
                Code::MessagePropertyConflictWithType,
                "a delay message needs a delivery timestamp",
            ))
        }
        MessageType::Transaction if sys.message_group.is_some() || deliver_at_ms.is_some() => {
            return Err(Refusal::new(
                Code::MessagePropertyConflictWithType,
                "a transactional message takes no message group and no delivery timestamp",
            ))
        }
        _ => {}
    }
    Ok(Incoming {
        message: TopicMessage {
            message_id: sys.message_id.clone(),
            tag: sys.tag.clone(),
            keys: sys.keys.clone(),
            message_group: sys.message_group.clone(),
            deliver_at_ms,
            born_host: (!sys.born_host.is_empty()).then(|| sys.born_host.clone()),
            born_ms: sys.born_timestamp.as_ref().map_or(0, millis),
            properties,
            body: message.body.clone(),
        },
        kind,
        queue_id: None,
        check_after_ms: sys
            .orphaned_transaction_recovery_duration
            .as_ref()
            .and_then(to_ms)
            .map(|ms| ms.min(i64::MAX as u64) as i64),
    })
}

/// A delivery as a RocketMQ message: system properties filled as the proxy fills them.
pub fn outgoing(received: &Received, topic: &str, invisible_ms: u64) -> proto::Message {
    let m = &received.message.message;
    let kind = if m.message_group.is_some() {
        MessageType::Fifo
    } else if m.deliver_at_ms.is_some() {
        MessageType::Delay
    } else {
        MessageType::Normal
    };
    let user_properties: HashMap<String, String> = m.properties.iter().cloned().collect();
    proto::Message {
        topic: Some(Resource {
            resource_namespace: String::new(),
            name: rocketmq_topic_name(topic),
        }),
        user_properties,
        system_properties: Some(SystemProperties {
            tag: m.tag.clone(),
            keys: m.keys.clone(),
            message_id: m.message_id.clone(),
            body_digest: Some(body_digest(&m.body)),
            body_encoding: Encoding::Identity as i32,
            message_type: kind as i32,
            born_timestamp: Some(timestamp(m.born_ms)),
            born_host: m.born_host.clone().unwrap_or_default(),
            store_timestamp: Some(timestamp(received.message.stored_ms)),
            store_host: "porter".into(),
            delivery_timestamp: m.deliver_at_ms.map(timestamp),
            receipt_handle: Some(received.receipt.to_string()),
            queue_id: received.message.partition,
            queue_offset: Some(received.message.offset),
            invisible_duration: Some(duration_ms(invisible_ms)),
            delivery_attempt: Some(received.attempt as i32),
            message_group: m.message_group.clone(),
            ..Default::default()
        }),
        body: m.body.clone(),
    }
}

pub fn millis(t: &Timestamp) -> i64 {
    t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000)
}

pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn duration_ms(ms: u64) -> ProtoDuration {
    ProtoDuration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// A protobuf duration in milliseconds; negative is `None`.
pub fn to_ms(d: &ProtoDuration) -> Option<u64> {
    let ms = d
        .seconds
        .checked_mul(1000)?
        .checked_add(i64::from(d.nanos / 1_000_000))?;
    u64::try_from(ms).ok()
}

/// The body's digest, which clients verify. MD5 as uppercase hex: the one form the official
/// clients agree on (their CRC32 checks differ: zero-padded uppercase hex in Python, decimal in
/// Node.js, so a CRC32 digest reads as corrupted in one of them).
fn body_digest(body: &[u8]) -> Digest {
    use md5::Digest as _;
    let sum = md5::Md5::digest(body);
    let mut checksum = String::with_capacity(32);
    for byte in sum {
        checksum.push_str(&format!("{byte:02X}"));
    }
    Digest {
        r#type: DigestType::Md5 as i32,
        checksum,
    }
}
