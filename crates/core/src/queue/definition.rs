//! [`QueueDefinition`]: a queue as declared (the metadata journal records it), and
//! [`QueueArguments`]: the `x-*` arguments RabbitMQ gives meaning to, parsed and checked once at
//! declare time so a bad argument is a 406 then, never a surprise later.

use serde::{Deserialize, Serialize};

use crate::routing::equivalence::{
    check_argument, check_property, type_name, DeclaredKind, Inequivalent,
};
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
    /// Whether a re-declare with `requested`'s properties is equivalent, by RabbitMQ's rule
    /// (`rabbit_amqqueue:assert_equivalence/5`): durable, then auto-delete, then the arguments
    /// RabbitMQ's queue type lists ([`compared_arguments`]) by
    /// [`equivalence`](crate::routing::equivalence)'s rule, so `5000` sent as a `short` by one
    /// client equals `5000` sent as a `long` by another. Exclusivity is checked before this, by
    /// the caller, because its refusal is 405 rather than 406.
    pub fn check_equivalent(&self, requested: &QueueDefinition) -> Result<(), Inequivalent> {
        let (kind, name) = (DeclaredKind::Queue, self.name.as_str());
        check_property(kind, name, "durable", self.durable, requested.durable)?;
        check_property(
            kind,
            name,
            "auto_delete",
            self.auto_delete,
            requested.auto_delete,
        )?;
        // RabbitMQ adds `x-queue-type` to every declare that lacks it (the default type,
        // classic), so a declare without it equals one that says `classic`.
        let classic = HeaderValue::from(CLASSIC);
        let current_type = self.arguments.get(QUEUE_TYPE).unwrap_or(&classic);
        let requested_type = requested.arguments.get(QUEUE_TYPE).unwrap_or(&classic);
        for key in compared_arguments(current_type.as_str()) {
            let (current, received) = if *key == QUEUE_TYPE {
                (Some(current_type), Some(requested_type))
            } else {
                (self.arguments.get(*key), requested.arguments.get(*key))
            };
            check_argument(kind, name, key, current, received)?;
        }
        Ok(())
    }
}

/// The argument naming the queue type, and the type a declare without it gets.
const QUEUE_TYPE: &str = "x-queue-type";
const CLASSIC: &str = "classic";

/// The arguments a re-declare must repeat, per queue type, in RabbitMQ's order: each queue
/// type's `capabilities()` `queue_arguments` (rabbit_classic_queue, rabbit_quorum_queue,
/// rabbit_stream_queue). Porter runs every type as its own queue, but compares as the declared
/// type would in RabbitMQ, so an application behaves the same on both.
pub fn compared_arguments(queue_type: Option<&str>) -> &'static [&'static str] {
    match queue_type {
        Some("quorum") => &[
            "x-dead-letter-exchange",
            "x-dead-letter-routing-key",
            "x-dead-letter-strategy",
            "x-expires",
            "x-max-length",
            "x-max-length-bytes",
            "x-max-in-memory-length",
            "x-max-in-memory-bytes",
            "x-overflow",
            "x-single-active-consumer",
            "x-queue-type",
            "x-quorum-initial-group-size",
            "x-member-placement-tag",
            "x-delivery-limit",
            "x-message-ttl",
            "x-queue-leader-locator",
            "x-consumer-disconnected-timeout",
            "x-consumer-timeout",
            "x-delayed-retry-type",
            "x-delayed-retry-min",
            "x-delayed-retry-max",
        ],
        Some("stream") => &[
            "x-max-length-bytes",
            "x-queue-type",
            "x-max-age",
            "x-stream-max-segment-size-bytes",
            "x-stream-filter-size-bytes",
            "x-initial-cluster-size",
            "x-queue-leader-locator",
        ],
        _ => &[
            "x-expires",
            "x-message-ttl",
            "x-dead-letter-exchange",
            "x-dead-letter-routing-key",
            "x-max-length",
            "x-max-length-bytes",
            "x-max-priority",
            "x-overflow",
            "x-queue-mode",
            "x-queue-version",
            "x-single-active-consumer",
            "x-delivery-limit",
            "x-queue-type",
            "x-queue-master-locator",
            "x-queue-leader-locator",
        ],
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
    /// `x-delivery-limit` (RabbitMQ's quorum queues, honoured on every queue here): a message
    /// that came back unacknowledged more than this many times is dead-lettered (reason
    /// `delivery_limit`) instead of delivered again.
    pub delivery_limit: Option<u32>,
}

/// An argument RabbitMQ would refuse when creating the queue, worded as RabbitMQ words it: the
/// reason is the Erlang term its validator returns (`{value_negative,-1}`,
/// `{unacceptable_type,longstr}`, `"expected integer, got longstr"`), printed as `~p` prints it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid arg '{key}': {reason}")]
pub struct InvalidArgument {
    pub key: &'static str,
    pub reason: String,
}

impl InvalidArgument {
    /// RabbitMQ's text (`rabbit_amqqueue:check_arguments_type_and_value/3`), without the
    /// `PRECONDITION_FAILED - ` prefix.
    pub fn for_queue(&self, queue: &str, vhost: &str) -> String {
        format!(
            "invalid arg '{}' for queue '{queue}' in vhost '{vhost}': {}",
            self.key, self.reason
        )
    }

    fn new(key: &'static str, reason: impl Into<String>) -> Self {
        InvalidArgument {
            key,
            reason: reason.into(),
        }
    }

    /// `{unacceptable_type,TYPE}`: the argument has a type its validator does not take.
    fn unacceptable_type(key: &'static str, value: &HeaderValue) -> Self {
        Self::new(key, format!("{{unacceptable_type,{}}}", type_name(value)))
    }
}

/// RabbitMQ's upper bound on `x-message-ttl` and `x-expires` (`rabbit_misc:check_expiry/1`): ten
/// years in milliseconds.
const EXPIRY_MS_MAX: i128 = 315_360_000_000;

/// RabbitMQ's `?MAX_SUPPORTED_PRIORITY`.
const PRIORITY_MAX: i128 = 255;

/// Arguments RabbitMQ gives a meaning Porter does not implement yet: a queue declared with one
/// works, but without that behaviour, so its creation is logged as a warning (an operator moving
/// from RabbitMQ learns it at once, not from a poison message redelivered forever). Placement and
/// memory hints (`x-queue-mode`, `x-queue-leader-locator`, `x-max-in-memory-length`, ...) are not
/// listed: on a single node with every queue on the log they change nothing a client sees.
const NOT_ACTED_ON: &[&str] = &[
    "x-dead-letter-strategy",
    "x-consumer-timeout",
    "x-consumer-disconnected-timeout",
    "x-delayed-retry-type",
    "x-delayed-retry-min",
    "x-delayed-retry-max",
    "x-max-age",
];

/// The queue types Porter serves as classic queues (see docs/amqp.md).
const SERVED_AS_CLASSIC: &[&str] = &["quorum", "stream"];

impl QueueArguments {
    /// What in `arguments` a RabbitMQ user would expect to change behaviour but Porter does not
    /// act on yet, said as a user reads it (`x-max-age`, `x-queue-type = stream`); empty
    /// for a queue Porter serves exactly as asked.
    pub fn not_acted_on(arguments: &FieldTable) -> Vec<String> {
        let mut found: Vec<String> = NOT_ACTED_ON
            .iter()
            .filter(|key| arguments.contains_key(**key))
            .map(|key| key.to_string())
            .collect();
        if let Some(queue_type) = arguments.get(QUEUE_TYPE).and_then(|v| v.as_str()) {
            if SERVED_AS_CLASSIC.contains(&queue_type) {
                found.insert(0, format!("{QUEUE_TYPE} = {queue_type}"));
            }
        }
        found
    }

    /// Parses and checks, in RabbitMQ's order and with its reasons for what it refuses (406
    /// PRECONDITION_FAILED when a queue is created).
    pub fn parse(arguments: &FieldTable) -> Result<Self, InvalidArgument> {
        if let Some(value) = arguments.get(QUEUE_TYPE) {
            match value.as_str() {
                Some("classic" | "quorum" | "stream") => {}
                Some(other) => {
                    return Err(InvalidArgument::new(
                        QUEUE_TYPE,
                        format!("\"unsupported queue type '{other}'\""),
                    ))
                }
                None => return Err(InvalidArgument::unacceptable_type(QUEUE_TYPE, value)),
            }
        }
        let expires_ms = integer(arguments, "x-expires")?;
        if expires_ms == Some(0) {
            return Err(InvalidArgument::new("x-expires", "{value_zero,0}"));
        }
        let mut parsed = QueueArguments {
            expires_ms: expiry(expires_ms, "x-expires")?,
            message_ttl_ms: expiry(integer(arguments, "x-message-ttl")?, "x-message-ttl")?,
            ..QueueArguments::default()
        };
        if let Some(value) = arguments.get("x-dead-letter-exchange") {
            let name = value.as_str().ok_or_else(|| {
                InvalidArgument::unacceptable_type("x-dead-letter-exchange", value)
            })?;
            parsed.dead_letter_exchange = Some(name.to_string());
        }
        if let Some(value) = arguments.get("x-dead-letter-routing-key") {
            let key = value.as_str().ok_or_else(|| {
                InvalidArgument::unacceptable_type("x-dead-letter-routing-key", value)
            })?;
            if parsed.dead_letter_exchange.is_none() {
                return Err(InvalidArgument::new(
                    "x-dead-letter-routing-key",
                    "routing_key_but_no_dlx_defined",
                ));
            }
            parsed.dead_letter_routing_key = Some(key.to_string());
        }
        parsed.max_length = non_negative(arguments, "x-max-length")?;
        parsed.delivery_limit =
            non_negative(arguments, "x-delivery-limit")?.map(|n| n.min(u64::from(u32::MAX)) as u32);
        parsed.max_length_bytes = non_negative(arguments, "x-max-length-bytes")?;
        if let Some(priority) = non_negative(arguments, "x-max-priority")? {
            if i128::from(priority) > PRIORITY_MAX {
                return Err(InvalidArgument::new(
                    "x-max-priority",
                    format!("{{max_value_exceeded,{priority}}}"),
                ));
            }
            parsed.max_priority = Some((priority as u8).min(MAX_PRIORITY_MAX));
        }
        if let Some(value) = arguments.get("x-overflow") {
            parsed.overflow = match value {
                HeaderValue::String(mode) => match mode.as_str() {
                    "drop-head" => Overflow::DropHead,
                    "reject-publish" => Overflow::RejectPublish,
                    "reject-publish-dlx" => Overflow::RejectPublishDlx,
                    _ => return Err(InvalidArgument::new("x-overflow", "invalid_overflow")),
                },
                _ => return Err(InvalidArgument::unacceptable_type("x-overflow", value)),
            };
        }
        if let Some(value) = arguments.get("x-single-active-consumer") {
            parsed.single_active_consumer = match value {
                HeaderValue::Bool(b) => *b,
                _ => {
                    return Err(InvalidArgument::unacceptable_type(
                        "x-single-active-consumer",
                        value,
                    ))
                }
            };
        }
        Ok(parsed)
    }
}

/// An integer argument of any integer width (clients differ in which they send), as RabbitMQ's
/// `check_int_arg/2` takes it.
fn integer(arguments: &FieldTable, key: &'static str) -> Result<Option<i128>, InvalidArgument> {
    let Some(value) = arguments.get(key) else {
        return Ok(None);
    };
    Ok(Some(match *value {
        HeaderValue::I8(v) => v.into(),
        HeaderValue::U8(v) => v.into(),
        HeaderValue::I16(v) => v.into(),
        HeaderValue::U16(v) => v.into(),
        HeaderValue::I32(v) => v.into(),
        HeaderValue::U32(v) => v.into(),
        HeaderValue::I64(v) => v.into(),
        HeaderValue::U64(v) => v.into(),
        _ => {
            return Err(InvalidArgument::new(
                key,
                format!("\"expected integer, got {}\"", type_name(value)),
            ))
        }
    }))
}

/// `check_expiry/1`: not negative, at most ten years.
fn expiry(n: Option<i128>, key: &'static str) -> Result<Option<u64>, InvalidArgument> {
    match n {
        None => Ok(None),
        Some(n) if n < 0 => Err(InvalidArgument::new(key, format!("{{value_negative,{n}}}"))),
        Some(n) if n > EXPIRY_MS_MAX => Err(InvalidArgument::new(
            key,
            format!("{{value_too_large,{n}}}"),
        )),
        Some(n) => Ok(Some(n as u64)),
    }
}

/// `check_non_neg_int_arg/2`.
fn non_negative(arguments: &FieldTable, key: &'static str) -> Result<Option<u64>, InvalidArgument> {
    match integer(arguments, key)? {
        None => Ok(None),
        Some(n) if n < 0 => Err(InvalidArgument::new(key, format!("{{value_negative,{n}}}"))),
        Some(n) => Ok(Some(u64::try_from(n).unwrap_or(u64::MAX))),
    }
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
        let reason = |pairs: &[(&str, HeaderValue)]| {
            QueueArguments::parse(&table(pairs))
                .unwrap_err()
                .for_queue("q", "/")
        };
        assert_eq!(
            reason(&[("x-message-ttl", HeaderValue::I32(-1))]),
            "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        assert_eq!(
            reason(&[("x-max-length", HeaderValue::String("10".into()))]),
            "invalid arg 'x-max-length' for queue 'q' in vhost '/': \"expected integer, got \
             longstr\""
        );
        assert_eq!(
            reason(&[("x-single-active-consumer", HeaderValue::I32(1))]),
            "invalid arg 'x-single-active-consumer' for queue 'q' in vhost '/': \
             {unacceptable_type,signedint}"
        );
        assert_eq!(
            reason(&[("x-overflow", HeaderValue::String("drop-tail".into()))]),
            "invalid arg 'x-overflow' for queue 'q' in vhost '/': invalid_overflow"
        );
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
        assert_eq!(
            a.check_equivalent(&b).unwrap_err().in_vhost("/"),
            "inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but \
             current is 'true'"
        );
        let mut c = a.clone();
        c.arguments
            .insert("x-max-length".into(), HeaderValue::I32(6));
        assert!(a.check_equivalent(&c).is_err());
        let mut d = a.clone();
        d.arguments.insert("x-custom".into(), HeaderValue::I32(6));
        assert!(a.check_equivalent(&d).is_ok());
        // The same value in another integer width, as another client library sends it.
        let mut e = a.clone();
        e.arguments
            .insert("x-max-length".into(), HeaderValue::I8(5));
        assert!(a.check_equivalent(&e).is_ok());
    }

    #[test]
    fn every_argument_rabbitmq_compares_for_a_classic_queue_is_compared() {
        let base = QueueDefinition {
            name: "q".into(),
            id: uuid::Uuid::nil(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::new(),
        };
        for key in compared_arguments(None)
            .iter()
            .filter(|k| **k != QUEUE_TYPE)
        {
            let mut other = base.clone();
            other.arguments.insert(key.to_string(), HeaderValue::I16(1));
            let refused = base.check_equivalent(&other).unwrap_err();
            assert_eq!(refused.key, *key);
            assert_eq!(refused.received, "the value '1' of type 'short'");
            assert_eq!(refused.current, "none");
        }
        // Consumer arguments and unknown ones are not the queue's.
        for key in ["x-priority", "x-stream-offset", "x-my-app-version"] {
            let mut other = base.clone();
            other.arguments.insert(key.to_string(), HeaderValue::I16(1));
            assert!(base.check_equivalent(&other).is_ok(), "{key}");
        }
    }

    #[test]
    fn a_declare_without_a_queue_type_is_classic() {
        let plain = QueueDefinition {
            name: "q".into(),
            id: uuid::Uuid::nil(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::new(),
        };
        let mut classic = plain.clone();
        classic
            .arguments
            .insert(QUEUE_TYPE.into(), HeaderValue::from("classic"));
        assert!(plain.check_equivalent(&classic).is_ok());
        assert!(classic.check_equivalent(&plain).is_ok());
        let mut quorum = plain.clone();
        quorum
            .arguments
            .insert(QUEUE_TYPE.into(), HeaderValue::from("quorum"));
        assert_eq!(
            plain.check_equivalent(&quorum).unwrap_err().in_vhost("/"),
            "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'quorum' but \
             current is 'classic'"
        );
        // A quorum queue compares its own list: x-delivery-limit, not x-max-priority.
        let mut limited = quorum.clone();
        limited
            .arguments
            .insert("x-delivery-limit".into(), HeaderValue::I32(3));
        assert!(quorum.check_equivalent(&limited).is_err());
        let mut prioritised = quorum.clone();
        prioritised
            .arguments
            .insert("x-max-priority".into(), HeaderValue::I32(3));
        assert!(quorum.check_equivalent(&prioritised).is_ok());
    }

    #[test]
    fn not_acted_on_names_quorum_and_stream_semantics_porter_lacks() {
        let quorum = table(&[
            ("x-queue-type", HeaderValue::from("quorum")),
            ("x-delivery-limit", HeaderValue::I32(5)),
            ("x-message-ttl", HeaderValue::I32(5000)),
            ("x-queue-leader-locator", HeaderValue::from("balanced")),
        ]);
        assert_eq!(
            QueueArguments::not_acted_on(&quorum),
            ["x-queue-type = quorum"]
        );
        let classic = table(&[
            ("x-queue-type", HeaderValue::from("classic")),
            ("x-max-length", HeaderValue::I32(10)),
            ("x-queue-mode", HeaderValue::from("lazy")),
        ]);
        assert!(QueueArguments::not_acted_on(&classic).is_empty());
        let stream = table(&[
            ("x-queue-type", HeaderValue::from("stream")),
            ("x-max-age", HeaderValue::from("7D")),
        ]);
        assert_eq!(
            QueueArguments::not_acted_on(&stream),
            ["x-queue-type = stream", "x-max-age"]
        );
    }
}
