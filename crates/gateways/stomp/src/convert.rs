//! STOMP headers ↔ the core's message [`Properties`], as RabbitMQ's STOMP plugin maps them
//! (docs/stomp.md has the table). Headers that are STOMP's own (`destination`, `receipt`,
//! `transaction`, `content-length`, ...) are not copied; every other header travels in the
//! AMQP headers table as a string, and comes back as a header on MESSAGE.

use porter_core::message::Properties;
use porter_core::routing::{FieldTable, HeaderValue};

use crate::frame::Frame;

/// Headers of SEND (and MESSAGE) frames that are STOMP's, not the message's.
const STOMP_HEADERS: [&str; 13] = [
    "destination",
    "receipt",
    "transaction",
    "content-length",
    "subscription",
    "message-id",
    "ack",
    "id",
    "redelivered",
    "prefetch-count",
    "x-key",
    "x-stream-offset",
    "x-partition",
];

/// The message properties a SEND frame's headers set.
pub fn properties(frame: &Frame) -> Properties {
    let mut p = Properties::default();
    let mut headers = FieldTable::new();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in &frame.headers {
        // The spec: a repeated header's first value wins.
        if !seen.insert(name.as_str()) {
            continue;
        }
        let value = value.clone();
        match name.as_str() {
            "content-type" => p.content_type = Some(value),
            "content-encoding" => p.content_encoding = Some(value),
            "correlation-id" => p.correlation_id = Some(value),
            "reply-to" => p.reply_to = Some(value),
            "expiration" => p.expiration = Some(value),
            "priority" => p.priority = value.trim().parse().ok(),
            "persistent" => {
                if value.eq_ignore_ascii_case("true") {
                    p.delivery_mode = Some(2)
                }
            }
            "amqp-message-id" => p.message_id = Some(value),
            "type" => p.kind = Some(value),
            "user-id" => p.user_id = Some(value),
            "app-id" => p.app_id = Some(value),
            "timestamp" => p.timestamp = value.trim().parse().ok(),
            n if STOMP_HEADERS.contains(&n) => {}
            _ => {
                headers.insert(name.clone(), HeaderValue::String(value));
            }
        }
    }
    if !headers.is_empty() {
        p.headers = Some(headers);
    }
    p
}

/// Adds the headers `properties` stand for to a MESSAGE frame.
pub fn add_headers(frame: &mut Frame, p: &Properties) {
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            frame.push(name, v);
        }
    };
    put("content-type", p.content_type.clone());
    put("content-encoding", p.content_encoding.clone());
    put("correlation-id", p.correlation_id.clone());
    put("reply-to", p.reply_to.clone());
    put("expiration", p.expiration.clone());
    put("priority", p.priority.map(|v| v.to_string()));
    put("persistent", p.is_persistent().then(|| "true".to_string()));
    put("amqp-message-id", p.message_id.clone());
    put("type", p.kind.clone());
    put("user-id", p.user_id.clone());
    put("app-id", p.app_id.clone());
    put("timestamp", p.timestamp.map(|v| v.to_string()));
    if let Some(headers) = &p.headers {
        for (name, value) in headers {
            if STOMP_HEADERS.contains(&name.as_str()) {
                continue;
            }
            frame.push(name.clone(), header_text(value));
        }
    }
}

/// A header value as STOMP text.
pub fn header_text(value: &HeaderValue) -> String {
    match value {
        HeaderValue::Void => String::new(),
        HeaderValue::Bool(v) => v.to_string(),
        HeaderValue::I8(v) => v.to_string(),
        HeaderValue::U8(v) => v.to_string(),
        HeaderValue::I16(v) => v.to_string(),
        HeaderValue::U16(v) => v.to_string(),
        HeaderValue::I32(v) => v.to_string(),
        HeaderValue::U32(v) => v.to_string(),
        HeaderValue::I64(v) => v.to_string(),
        HeaderValue::U64(v) | HeaderValue::Timestamp(v) => v.to_string(),
        HeaderValue::F32(v) => v.to_string(),
        HeaderValue::F64(v) => v.to_string(),
        HeaderValue::Decimal { scale, value } => {
            (*value as f64 / 10f64.powi(i32::from(*scale))).to_string()
        }
        HeaderValue::String(s) => s.clone(),
        HeaderValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        HeaderValue::Array(a) => a.iter().map(header_text).collect::<Vec<_>>().join(","),
        HeaderValue::Table(_) => String::new(),
    }
}

/// The user headers of a SEND to a Kafka topic, as record headers.
pub fn record_headers(frame: &Frame) -> Vec<(String, Option<bytes::Bytes>)> {
    let mut seen = std::collections::HashSet::new();
    frame
        .headers
        .iter()
        .filter(|(n, _)| seen.insert(n.as_str()) && !STOMP_HEADERS.contains(&n.as_str()))
        .map(|(n, v)| (n.clone(), Some(bytes::Bytes::copy_from_slice(v.as_bytes()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Command;

    #[test]
    fn rabbitmq_mapping_round_trips() {
        let send = Frame::new(Command::Send)
            .with("destination", "/queue/a")
            .with("content-type", "text/plain")
            .with("persistent", "true")
            .with("priority", "5")
            .with("correlation-id", "c1")
            .with("amqp-message-id", "m1")
            .with("timestamp", "1700000000")
            .with("x-custom", "v")
            .with("x-custom", "ignored");
        let p = properties(&send);
        assert_eq!(p.delivery_mode, Some(2));
        assert_eq!(p.priority, Some(5));
        assert_eq!(p.message_id.as_deref(), Some("m1"));
        assert_eq!(p.header("x-custom"), Some(&HeaderValue::String("v".into())));
        assert!(p.header("destination").is_none());
        let mut message = Frame::new(Command::Message);
        add_headers(&mut message, &p);
        for (k, v) in [
            ("content-type", "text/plain"),
            ("persistent", "true"),
            ("priority", "5"),
            ("correlation-id", "c1"),
            ("amqp-message-id", "m1"),
            ("timestamp", "1700000000"),
            ("x-custom", "v"),
        ] {
            assert_eq!(message.header(k), Some(v), "{k}");
        }
    }
}
