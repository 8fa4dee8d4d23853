//! The one place amq-protocol's types become porter-core's neutral ones and back: field tables
//! (message headers, arguments) and basic properties. Every AMQP field type has a `HeaderValue`
//! of its own, so a round trip keeps the type a client sent.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable as AmqpTable, LongString,
    ShortString,
};
use porter_core::message::Properties;
use porter_core::routing::{Binding, Destination, FieldTable, HeaderValue};

pub fn value_from_amqp(value: &AMQPValue) -> HeaderValue {
    match value {
        AMQPValue::Boolean(v) => HeaderValue::Bool(*v),
        AMQPValue::ShortShortInt(v) => HeaderValue::I8(*v),
        AMQPValue::ShortShortUInt(v) => HeaderValue::U8(*v),
        AMQPValue::ShortInt(v) => HeaderValue::I16(*v),
        AMQPValue::ShortUInt(v) => HeaderValue::U16(*v),
        AMQPValue::LongInt(v) => HeaderValue::I32(*v),
        AMQPValue::LongUInt(v) => HeaderValue::U32(*v),
        AMQPValue::LongLongInt(v) => HeaderValue::I64(*v),
        AMQPValue::Float(v) => HeaderValue::F32(*v),
        AMQPValue::Double(v) => HeaderValue::F64(*v),
        AMQPValue::DecimalValue(d) => HeaderValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => HeaderValue::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => HeaderValue::String(text.to_string()),
            Err(_) => HeaderValue::Bytes(s.as_bytes().to_vec()),
        },
        AMQPValue::FieldArray(a) => {
            HeaderValue::Array(a.as_slice().iter().map(value_from_amqp).collect())
        }
        AMQPValue::Timestamp(t) => HeaderValue::Timestamp(*t),
        AMQPValue::FieldTable(t) => HeaderValue::Table(table_from_amqp(t)),
        AMQPValue::ByteArray(b) => HeaderValue::Bytes(b.as_slice().to_vec()),
        AMQPValue::Void => HeaderValue::Void,
    }
}

pub fn value_to_amqp(value: &HeaderValue) -> AMQPValue {
    match value {
        HeaderValue::Void => AMQPValue::Void,
        HeaderValue::Bool(v) => AMQPValue::Boolean(*v),
        HeaderValue::I8(v) => AMQPValue::ShortShortInt(*v),
        HeaderValue::U8(v) => AMQPValue::ShortShortUInt(*v),
        HeaderValue::I16(v) => AMQPValue::ShortInt(*v),
        HeaderValue::U16(v) => AMQPValue::ShortUInt(*v),
        HeaderValue::I32(v) => AMQPValue::LongInt(*v),
        HeaderValue::U32(v) => AMQPValue::LongUInt(*v),
        HeaderValue::I64(v) => AMQPValue::LongLongInt(*v),
        // AMQP 0-9-1 as RabbitMQ speaks it has no unsigned 64-bit field: 'l' is signed.
        HeaderValue::U64(v) => AMQPValue::LongLongInt(i64::try_from(*v).unwrap_or(i64::MAX)),
        HeaderValue::F32(v) => AMQPValue::Float(*v),
        HeaderValue::F64(v) => AMQPValue::Double(*v),
        HeaderValue::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        HeaderValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        HeaderValue::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        HeaderValue::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.clone())),
        HeaderValue::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value_to_amqp).collect::<Vec<_>>(),
        )),
        HeaderValue::Table(t) => AMQPValue::FieldTable(table_to_amqp(t)),
    }
}

pub fn table_from_amqp(table: &AmqpTable) -> FieldTable {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), value_from_amqp(v)))
        .collect()
}

/// A binding as `queue.bind` / `exchange.bind` and their unbinds state it.
pub fn binding(
    source: &str,
    destination: Destination,
    routing_key: &str,
    arguments: &AmqpTable,
) -> Binding {
    Binding::new(source, destination, routing_key).with_arguments(table_from_amqp(arguments))
}

pub fn table_to_amqp(table: &FieldTable) -> AmqpTable {
    let mut out = AmqpTable::default();
    for (k, v) in table {
        out.insert(ShortString::from(k.as_str()), value_to_amqp(v));
    }
    out
}

fn text(s: &Option<ShortString>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_string())
}

fn short(s: &Option<String>) -> Option<ShortString> {
    s.as_deref().map(ShortString::from)
}

pub fn properties_from_amqp(p: &AMQPProperties) -> Properties {
    Properties {
        content_type: text(p.content_type()),
        content_encoding: text(p.content_encoding()),
        headers: p.headers().as_ref().map(table_from_amqp),
        delivery_mode: *p.delivery_mode(),
        priority: *p.priority(),
        correlation_id: text(p.correlation_id()),
        reply_to: text(p.reply_to()),
        expiration: text(p.expiration()),
        message_id: text(p.message_id()),
        timestamp: *p.timestamp(),
        kind: text(p.kind()),
        user_id: text(p.user_id()),
        app_id: text(p.app_id()),
        cluster_id: text(p.cluster_id()),
    }
}

pub fn properties_to_amqp(p: &Properties) -> AMQPProperties {
    let mut out = AMQPProperties::default();
    if let Some(v) = short(&p.content_type) {
        out = out.with_content_type(v);
    }
    if let Some(v) = short(&p.content_encoding) {
        out = out.with_content_encoding(v);
    }
    if let Some(h) = &p.headers {
        out = out.with_headers(table_to_amqp(h));
    }
    if let Some(v) = p.delivery_mode {
        out = out.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        out = out.with_priority(v);
    }
    if let Some(v) = short(&p.correlation_id) {
        out = out.with_correlation_id(v);
    }
    if let Some(v) = short(&p.reply_to) {
        out = out.with_reply_to(v);
    }
    if let Some(v) = short(&p.expiration) {
        out = out.with_expiration(v);
    }
    if let Some(v) = short(&p.message_id) {
        out = out.with_message_id(v);
    }
    if let Some(v) = p.timestamp {
        out = out.with_timestamp(v);
    }
    if let Some(v) = short(&p.kind) {
        out = out.with_type(v);
    }
    if let Some(v) = short(&p.user_id) {
        out = out.with_user_id(v);
    }
    if let Some(v) = short(&p.app_id) {
        out = out.with_app_id(v);
    }
    if let Some(v) = short(&p.cluster_id) {
        out = out.with_cluster_id(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_type_round_trips() {
        let mut nested = AmqpTable::default();
        nested.insert("n".into(), AMQPValue::LongInt(-5));
        let values = vec![
            AMQPValue::Boolean(true),
            AMQPValue::ShortShortInt(-1),
            AMQPValue::ShortShortUInt(200),
            AMQPValue::ShortInt(-300),
            AMQPValue::ShortUInt(60_000),
            AMQPValue::LongInt(-70_000),
            AMQPValue::LongUInt(4_000_000_000),
            AMQPValue::LongLongInt(-5_000_000_000),
            AMQPValue::Float(1.5),
            AMQPValue::Double(-2.25),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
            AMQPValue::LongString("text".into()),
            AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), AMQPValue::Void].into()),
            AMQPValue::Timestamp(1_700_000_000),
            AMQPValue::FieldTable(nested),
            AMQPValue::ByteArray(vec![0, 159, 146, 150].into()),
            AMQPValue::Void,
        ];
        for value in values {
            assert_eq!(value_to_amqp(&value_from_amqp(&value)), value, "{value:?}");
        }
        // A long string that is not UTF-8 comes back as bytes.
        let raw = AMQPValue::LongString(LongString::from(vec![0xff, 0xfe]));
        assert_eq!(value_from_amqp(&raw), HeaderValue::Bytes(vec![0xff, 0xfe]));
    }

    #[test]
    fn properties_round_trip() {
        let mut headers = AmqpTable::default();
        headers.insert("k".into(), AMQPValue::LongString("v".into()));
        let amqp = AMQPProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("gzip".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(7)
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_expiration("60000".into())
            .with_message_id("m".into())
            .with_timestamp(1_700_000_000)
            .with_type("t".into())
            .with_user_id("guest".into())
            .with_app_id("a".into())
            .with_cluster_id("cl".into());
        assert_eq!(properties_to_amqp(&properties_from_amqp(&amqp)), amqp);
    }
}
