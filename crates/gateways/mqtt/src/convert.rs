//! An MQTT PUBLISH as the core's protocol-neutral [`Message`] and back: the mapping AMQP, STOMP
//! and Kafka readers see (docs/mqtt.md has the table).
//!
//! | MQTT 5 | core message (AMQP basic properties) |
//! |---|---|
//! | topic `a/b` | exchange `amq.topic`, routing key `a.b` |
//! | QoS ≥ 1 | `delivery_mode` 2 (persistent), header `x-mqtt-publish-qos` |
//! | Content Type | `content_type` |
//! | Correlation Data | `correlation_id` (UTF-8), else header `x-correlation-data` (bytes) |
//! | Response Topic `r/x` | `reply_to` `r.x` (a routing key on `amq.topic`) |
//! | Message Expiry Interval (s) | `expiration` (ms) |
//! | User Properties | headers (string values) |
//! | Payload Format Indicator | header `x-mqtt-payload-format` |
//! | RETAIN | header `x-mqtt-retain` (for Retain As Published) |
//! | the publishing client | header `x-mqtt-client-id` (for No Local) |

use bytes::Bytes;
use porter_core::message::{Message, Properties};
use porter_core::routing::{FieldTable, HeaderValue};
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};

use crate::topic::{from_routing_key, to_routing_key};

pub const PUBLISH_QOS_HEADER: &str = "x-mqtt-publish-qos";
pub const RETAIN_HEADER: &str = "x-mqtt-retain";
pub const CLIENT_ID_HEADER: &str = "x-mqtt-client-id";
pub const PAYLOAD_FORMAT_HEADER: &str = "x-mqtt-payload-format";
pub const CORRELATION_DATA_HEADER: &str = "x-correlation-data";

/// Headers that carry MQTT facts rather than user properties: not sent back as user properties.
fn is_internal(name: &str) -> bool {
    matches!(
        name,
        PUBLISH_QOS_HEADER
            | RETAIN_HEADER
            | CLIENT_ID_HEADER
            | PAYLOAD_FORMAT_HEADER
            | CORRELATION_DATA_HEADER
    )
}

/// The message an MQTT PUBLISH (already resolved to its topic `name`) becomes.
pub fn to_message(
    exchange: &str,
    name: &str,
    publish: &Publish,
    client_id: &str,
    retain: bool,
) -> Message {
    let qos = publish.qos as u8;
    let mut headers = FieldTable::new();
    headers.insert(PUBLISH_QOS_HEADER.into(), HeaderValue::U8(qos));
    headers.insert(CLIENT_ID_HEADER.into(), HeaderValue::from(client_id));
    if retain {
        headers.insert(RETAIN_HEADER.into(), HeaderValue::Bool(true));
    }
    let mut properties = Properties {
        delivery_mode: Some(if qos > 0 { 2 } else { 1 }),
        ..Properties::default()
    };
    if let Some(p) = &publish.properties {
        properties.content_type = p.content_type.clone();
        properties.reply_to = p.response_topic.as_deref().map(to_routing_key);
        properties.expiration = p
            .message_expiry_interval
            .map(|s| (u64::from(s) * 1000).to_string());
        if let Some(data) = &p.correlation_data {
            match std::str::from_utf8(data) {
                Ok(text) => properties.correlation_id = Some(text.to_string()),
                Err(_) => {
                    headers.insert(
                        CORRELATION_DATA_HEADER.into(),
                        HeaderValue::Bytes(data.to_vec()),
                    );
                }
            }
        }
        if let Some(format) = p.payload_format_indicator {
            headers.insert(PAYLOAD_FORMAT_HEADER.into(), HeaderValue::U8(format));
        }
        for (key, value) in &p.user_properties {
            if !is_internal(key) {
                headers.insert(key.clone(), HeaderValue::from(value.as_str()));
            }
        }
    }
    properties.headers = Some(headers);
    Message {
        exchange: exchange.to_string(),
        routing_key: to_routing_key(name),
        properties,
        body: publish.payload.clone(),
    }
}

/// The QoS the message was published with: its MQTT header, else 1 for a persistent message
/// from another protocol and 0 for a transient one.
pub fn published_qos(message: &Message) -> u8 {
    match message.properties.header(PUBLISH_QOS_HEADER) {
        Some(HeaderValue::U8(q)) => (*q).min(2),
        Some(other) => other.as_i64().map_or(1, |q| q.clamp(0, 2) as u8),
        None => u8::from(message.properties.is_persistent()),
    }
}

/// Whether the message was published with RETAIN set.
pub fn was_retained(message: &Message) -> bool {
    matches!(
        message.properties.header(RETAIN_HEADER),
        Some(HeaderValue::Bool(true))
    )
}

/// The client that published the message, if it came over MQTT.
pub fn publisher(message: &Message) -> Option<&str> {
    message.properties.header(CLIENT_ID_HEADER)?.as_str()
}

/// MQTT 5 properties for delivering `message` (3.1.1 sessions drop them). `remaining_expiry`
/// is what is left of its expiry, in seconds.
pub fn publish_properties(
    message: &Message,
    remaining_expiry: Option<u32>,
    subscription_ids: Vec<usize>,
) -> PublishProperties {
    let p = &message.properties;
    let mut user_properties = Vec::new();
    let mut correlation_data = p
        .correlation_id
        .as_ref()
        .map(|c| Bytes::copy_from_slice(c.as_bytes()));
    let mut payload_format_indicator = None;
    if let Some(headers) = &p.headers {
        for (key, value) in headers {
            match key.as_str() {
                CORRELATION_DATA_HEADER => {
                    if let HeaderValue::Bytes(b) = value {
                        correlation_data = Some(Bytes::copy_from_slice(b));
                    }
                }
                PAYLOAD_FORMAT_HEADER => {
                    payload_format_indicator = value.as_i64().map(|v| v as u8);
                }
                k if is_internal(k) => {}
                k => user_properties.push((k.to_string(), header_text(value))),
            }
        }
    }
    PublishProperties {
        payload_format_indicator,
        message_expiry_interval: remaining_expiry,
        topic_alias: None,
        response_topic: p.reply_to.as_deref().map(from_routing_key),
        correlation_data,
        user_properties,
        subscription_identifiers: subscription_ids,
        content_type: p.content_type.clone(),
    }
}

/// A header value as MQTT's string user property.
fn header_text(value: &HeaderValue) -> String {
    match value {
        HeaderValue::String(s) => s.clone(),
        HeaderValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        HeaderValue::Bool(b) => b.to_string(),
        other => match other.as_i64() {
            Some(n) => n.to_string(),
            None => format!("{other:?}"),
        },
    }
}

/// Seconds of expiry left for a message enqueued at `enqueued_ms`, if it has an expiry.
pub fn remaining_expiry(message: &Message, enqueued_ms: i64, now_ms: i64) -> Option<u32> {
    let ttl = message.properties.expiration_ms()?;
    let left = (enqueued_ms + ttl as i64 - now_ms).max(0) as u64;
    Some(left.div_ceil(1000).min(u64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::QoS;

    #[test]
    fn properties_survive_the_round_trip() {
        let mut publish = Publish::new("a/b", QoS::AtLeastOnce, "hi", None);
        publish.properties = Some(PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: None,
            response_topic: Some("reply/to".into()),
            correlation_data: Some(Bytes::from_static(b"c-1")),
            user_properties: vec![("k".into(), "v".into())],
            subscription_identifiers: vec![],
            content_type: Some("text/plain".into()),
        });
        let message = to_message("amq.topic", "a/b", &publish, "c1", false);
        assert_eq!(message.routing_key, "a.b");
        assert_eq!(message.properties.reply_to.as_deref(), Some("reply.to"));
        assert_eq!(message.properties.expiration.as_deref(), Some("60000"));
        assert_eq!(published_qos(&message), 1);
        assert_eq!(publisher(&message), Some("c1"));
        let back = publish_properties(&message, Some(60), vec![7]);
        assert_eq!(back.response_topic.as_deref(), Some("reply/to"));
        assert_eq!(back.correlation_data.as_deref(), Some(&b"c-1"[..]));
        assert_eq!(back.user_properties, vec![("k".into(), "v".into())]);
        assert_eq!(back.payload_format_indicator, Some(1));
        assert_eq!(back.content_type.as_deref(), Some("text/plain"));
        assert_eq!(back.subscription_identifiers, vec![7]);
    }

    #[test]
    fn expiry_counts_down() {
        let mut m = Message::default();
        m.properties.expiration = Some("10000".into());
        assert_eq!(remaining_expiry(&m, 1_000, 4_500), Some(7));
        assert_eq!(remaining_expiry(&m, 1_000, 20_000), Some(0));
        assert_eq!(remaining_expiry(&Message::default(), 0, 0), None);
    }
}
