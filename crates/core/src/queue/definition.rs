//! [`QueueDefinition`]: a queue as declared (the metadata journal records it), and
//! [`QueueArguments`]: the `x-*` arguments RabbitMQ gives meaning to, parsed and checked once at
//! declare time so a bad argument is a 406 then, never a surprise later.

use serde::{Deserialize, Serialize};

use crate::routing::{FieldTable, HeaderValue};

/// RabbitMQ caps `x-max-priority` at 255; Porter keeps one delivery lane per level, so it caps
/// lower, at what RabbitMQ's documentation recommends staying under.
pub const MAX_PRIORITY_MAX: u8 = 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDefinition {
    pub name: String,
    /// Which incarnation of the name: the queue's files live under `queues/<id>`. Set by the
    /// broker when the queue is created; ignored in a declare request.
    #[serde(default)]
    pub id: uuid::Uuid,
    /// Survives a broker restart. Non-durable queues are deleted when the broker starts.
    pub durable: bool,
    /// The connection that owns an exclusive queue; `None` for shared queues. Exclusive queues
    /// go with their connection, and at restart.
    pub exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes (after it has had one).
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

impl QueueDefinition {
    /// Whether a re-declare with `other`'s properties is equivalent (RabbitMQ's rule: durable,
    /// exclusive, auto-delete and the `x-*` arguments must match; otherwise 406).
    pub fn check_equivalent(&self, other: &QueueDefinition) -> Result<(), String> {
        if self.durable != other.durable {
            return Err(format!(
                "inequivalent arg 'durable' for queue '{}': received '{}' but current is '{}'",
                self.name, other.durable, self.durable
            ));
        }
        if self.auto_delete != other.auto_delete {
            return Err(format!(
                "inequivalent arg 'auto_delete' for queue '{}': received '{}' but current is '{}'",
                self.name, other.auto_delete, self.auto_delete
            ));
        }
        for key in ARGUMENT_KEYS {
            if self.arguments.get(*key) != other.arguments.get(*key) {
                return Err(format!(
                    "inequivalent arg '{key}' for queue '{}': received {:?} but current is {:?}",
                    self.name,
                    other.arguments.get(*key),
                    self.arguments.get(*key)
                ));
            }
        }
        Ok(())
    }
}

/// What to do when a queue at its length limit receives a message (`x-overflow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready message.
    #[default]
    DropHead,
    /// Refuse the new message: a publisher-confirm nack.
    RejectPublish,
    /// Refuse and dead-letter the new message.
    RejectPublishDlx,
}

/// The arguments with a meaning, parsed. Unknown `x-*` arguments are kept in the definition and
/// ignored, as RabbitMQ does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueArguments {
    pub message_ttl_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
}

const ARGUMENT_KEYS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-single-active-consumer",
    "x-queue-type",
];

impl QueueArguments {
    /// Parses and checks, with RabbitMQ's messages for what it refuses (406 PRECONDITION_FAILED).
    pub fn parse(arguments: &FieldTable) -> Result<Self, String> {
        let mut parsed = QueueArguments {
            message_ttl_ms: non_negative(arguments, "x-message-ttl", 0)?,
            expires_ms: non_negative(arguments, "x-expires", 1)?,
            max_length: non_negative(arguments, "x-max-length", 0)?,
            max_length_bytes: non_negative(arguments, "x-max-length-bytes", 0)?,
            ..QueueArguments::default()
        };
        if let Some(value) = arguments.get("x-overflow") {
            parsed.overflow = match value.as_str() {
                Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => return Err(format!("invalid arg 'x-overflow': {value:?}")),
            };
        }
        if let Some(value) = arguments.get("x-dead-letter-exchange") {
            let name = value
                .as_str()
                .ok_or_else(|| format!("invalid arg 'x-dead-letter-exchange': {value:?}"))?;
            parsed.dead_letter_exchange = Some(name.to_string());
        }
        if let Some(value) = arguments.get("x-dead-letter-routing-key") {
            let key = value
                .as_str()
                .ok_or_else(|| format!("invalid arg 'x-dead-letter-routing-key': {value:?}"))?;
            if parsed.dead_letter_exchange.is_none() {
                return Err(
                    "invalid arg 'x-dead-letter-routing-key': requires x-dead-letter-exchange"
                        .to_string(),
                );
            }
            parsed.dead_letter_routing_key = Some(key.to_string());
        }
        if let Some(priority) = non_negative(arguments, "x-max-priority", 0)? {
            if priority > 255 {
                return Err(format!("invalid arg 'x-max-priority': {priority} > 255"));
            }
            parsed.max_priority = Some((priority as u8).min(MAX_PRIORITY_MAX));
        }
        if let Some(value) = arguments.get("x-single-active-consumer") {
            parsed.single_active_consumer = match value {
                HeaderValue::Bool(b) => *b,
                _ => {
                    return Err(format!(
                        "invalid arg 'x-single-active-consumer': {value:?} is not a boolean"
                    ))
                }
            };
        }
        if let Some(value) = arguments.get("x-queue-type") {
            match value.as_str() {
                Some("classic") | Some("quorum") | Some("stream") => {}
                _ => return Err(format!("invalid arg 'x-queue-type': {value:?}")),
            }
        }
        Ok(parsed)
    }
}

/// An integer argument ≥ `min`, of any integer width (clients differ in which they send).
fn non_negative(arguments: &FieldTable, key: &str, min: u64) -> Result<Option<u64>, String> {
    let Some(value) = arguments.get(key) else {
        return Ok(None);
    };
    let n: i128 = match *value {
        HeaderValue::I8(v) => v.into(),
        HeaderValue::U8(v) => v.into(),
        HeaderValue::I16(v) => v.into(),
        HeaderValue::U16(v) => v.into(),
        HeaderValue::I32(v) => v.into(),
        HeaderValue::U32(v) => v.into(),
        HeaderValue::I64(v) => v.into(),
        HeaderValue::U64(v) => v.into(),
        _ => return Err(format!("invalid arg '{key}': {value:?} is not an integer")),
    };
    if n < i128::from(min) {
        return Err(format!("invalid arg '{key}': {n} is below {min}"));
    }
    Ok(Some(u64::try_from(n).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, HeaderValue)]) -> FieldTable {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn parses_every_known_argument() {
        let args = QueueArguments::parse(&table(&[
            ("x-message-ttl", HeaderValue::I32(5000)),
            ("x-expires", HeaderValue::I64(60_000)),
            ("x-max-length", HeaderValue::I16(10)),
            ("x-max-length-bytes", HeaderValue::U32(1 << 20)),
            (
                "x-overflow",
                HeaderValue::String("reject-publish-dlx".into()),
            ),
            ("x-dead-letter-exchange", HeaderValue::String("dlx".into())),
            (
                "x-dead-letter-routing-key",
                HeaderValue::String("dead".into()),
            ),
            ("x-max-priority", HeaderValue::U8(200)),
            ("x-single-active-consumer", HeaderValue::Bool(true)),
        ]))
        .unwrap();
        assert_eq!(args.message_ttl_ms, Some(5000));
        assert_eq!(args.expires_ms, Some(60_000));
        assert_eq!(args.max_length, Some(10));
        assert_eq!(args.max_length_bytes, Some(1 << 20));
        assert_eq!(args.overflow, Overflow::RejectPublishDlx);
        assert_eq!(args.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(args.dead_letter_routing_key.as_deref(), Some("dead"));
        assert_eq!(args.max_priority, Some(MAX_PRIORITY_MAX));
        assert!(args.single_active_consumer);
    }

    #[test]
    fn refuses_what_rabbitmq_refuses() {
        for bad in [
            table(&[("x-message-ttl", HeaderValue::I32(-1))]),
            table(&[("x-expires", HeaderValue::I32(0))]),
            table(&[("x-max-length", HeaderValue::String("10".into()))]),
            table(&[("x-overflow", HeaderValue::String("drop-tail".into()))]),
            table(&[("x-dead-letter-routing-key", HeaderValue::String("k".into()))]),
            table(&[("x-max-priority", HeaderValue::I32(256))]),
            table(&[("x-single-active-consumer", HeaderValue::I32(1))]),
        ] {
            assert!(QueueArguments::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redeclare_must_match() {
        let a = QueueDefinition {
            name: "q".into(),
            id: uuid::Uuid::nil(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: table(&[("x-max-length", HeaderValue::I32(5))]),
        };
        assert!(a.check_equivalent(&a.clone()).is_ok());
        let mut b = a.clone();
        b.durable = false;
        assert!(a.check_equivalent(&b).is_err());
        let mut c = a.clone();
        c.arguments
            .insert("x-max-length".into(), HeaderValue::I32(6));
        assert!(a.check_equivalent(&c).is_err());
        let mut d = a.clone();
        d.arguments.insert("x-custom".into(), HeaderValue::I32(6));
        assert!(a.check_equivalent(&d).is_ok());
    }
}
