//! Dead-lettering: the message a queue republishes to its `x-dead-letter-exchange`, with the
//! `x-death` history RabbitMQ writes, so that retry-with-delay topologies and tools that read
//! `x-death` (counting attempts, showing the first failure) work unchanged.

use crate::message::Message;
use crate::routing::{FieldTable, HeaderValue};

/// Why a message left its queue this way (RabbitMQ's `reason` strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadReason {
    /// `basic.reject` / `basic.nack` with `requeue = false`.
    Rejected,
    /// Its TTL (queue `x-message-ttl` or per-message `expiration`) ran out.
    Expired,
    /// Pushed out (or refused) by `x-max-length` / `x-max-length-bytes`.
    MaxLen,
    /// Came back unacknowledged more than `x-delivery-limit` times.
    DeliveryLimit,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Rejected => "rejected",
            DeadReason::Expired => "expired",
            DeadReason::MaxLen => "maxlen",
            DeadReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// The copy of `message` to publish to the dead-letter exchange, and the routing key to use.
///
/// As RabbitMQ: `x-death` is an array of tables, newest first, one per (queue, reason) with a
/// `count` that grows when the same pair recurs; `x-first-death-*` are set once; the
/// `expiration` property is removed (kept as `original-expiration`) so the copy does not expire
/// again in the next queue; the routing key is `x-dead-letter-routing-key` if set, else the
/// original.
pub fn dead_letter(
    message: &Message,
    queue: &str,
    reason: DeadReason,
    routing_key: Option<&str>,
    now_s: u64,
) -> Message {
    let mut copy = message.clone();
    let original_expiration = copy.properties.expiration.take();
    let headers = copy.properties.headers.get_or_insert_with(FieldTable::new);
    let mut deaths: Vec<HeaderValue> = match headers.remove("x-death") {
        Some(HeaderValue::Array(entries)) => entries,
        _ => Vec::new(),
    };
    let matches = |entry: &HeaderValue| match entry {
        HeaderValue::Table(t) => {
            t.get("queue").and_then(HeaderValue::as_str) == Some(queue)
                && t.get("reason").and_then(HeaderValue::as_str) == Some(reason.as_str())
        }
        _ => false,
    };
    let previous = deaths.iter().position(matches).map(|i| deaths.remove(i));
    let entry = match previous {
        Some(HeaderValue::Table(mut t)) => {
            let count = match t.get("count") {
                Some(HeaderValue::I64(n)) => *n,
                _ => 0,
            };
            t.insert("count".into(), HeaderValue::I64(count + 1));
            t.insert("time".into(), HeaderValue::Timestamp(now_s));
            t
        }
        _ => {
            let mut t = FieldTable::new();
            t.insert("count".into(), HeaderValue::I64(1));
            t.insert("reason".into(), HeaderValue::String(reason.as_str().into()));
            t.insert("queue".into(), HeaderValue::String(queue.into()));
            t.insert("time".into(), HeaderValue::Timestamp(now_s));
            t.insert(
                "exchange".into(),
                HeaderValue::String(message.exchange.clone()),
            );
            t.insert(
                "routing-keys".into(),
                HeaderValue::Array(vec![HeaderValue::String(message.routing_key.clone())]),
            );
            if let Some(expiration) = &original_expiration {
                t.insert(
                    "original-expiration".into(),
                    HeaderValue::String(expiration.clone()),
                );
            }
            t
        }
    };
    deaths.insert(0, HeaderValue::Table(entry));
    headers.insert("x-death".into(), HeaderValue::Array(deaths));
    for (key, value) in [
        ("x-first-death-reason", reason.as_str()),
        ("x-first-death-queue", queue),
        ("x-first-death-exchange", message.exchange.as_str()),
    ] {
        headers
            .entry(key.to_string())
            .or_insert_with(|| HeaderValue::String(value.to_string()));
    }
    for (key, value) in [
        ("x-last-death-reason", reason.as_str()),
        ("x-last-death-queue", queue),
        ("x-last-death-exchange", message.exchange.as_str()),
    ] {
        headers.insert(key.to_string(), HeaderValue::String(value.to_string()));
    }
    if let Some(key) = routing_key {
        copy.routing_key = key.to_string();
    }
    copy
}

/// Whether dead-lettering into `queue` would close a cycle with no rejection in it (a message
/// expiring round and round forever). RabbitMQ drops such a message for that queue.
pub fn is_automatic_cycle(message: &Message, queue: &str) -> bool {
    let Some(HeaderValue::Array(deaths)) = message.properties.header("x-death") else {
        return false;
    };
    let tables = deaths.iter().filter_map(|d| match d {
        HeaderValue::Table(t) => Some(t),
        _ => None,
    });
    let mut seen_queue = false;
    for t in tables {
        if t.get("reason").and_then(HeaderValue::as_str) == Some("rejected") {
            return false;
        }
        if t.get("queue").and_then(HeaderValue::as_str) == Some(queue) {
            seen_queue = true;
        }
    }
    seen_queue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deaths(message: &Message) -> Vec<FieldTable> {
        match message.properties.header("x-death") {
            Some(HeaderValue::Array(a)) => a
                .iter()
                .map(|v| match v {
                    HeaderValue::Table(t) => t.clone(),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_and_counts_x_death_like_rabbitmq() {
        let mut message = Message {
            exchange: "work".into(),
            routing_key: "job".into(),
            ..Message::default()
        };
        message.properties.expiration = Some("5000".into());
        let once = dead_letter(&message, "jobs", DeadReason::Expired, Some("retry"), 100);
        assert_eq!(once.routing_key, "retry");
        assert_eq!(once.properties.expiration, None);
        let d = deaths(&once);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0]["count"], HeaderValue::I64(1));
        assert_eq!(d[0]["reason"], HeaderValue::String("expired".into()));
        assert_eq!(
            d[0]["original-expiration"],
            HeaderValue::String("5000".into())
        );
        let twice = dead_letter(&once, "jobs", DeadReason::Expired, None, 200);
        let d = deaths(&twice);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0]["count"], HeaderValue::I64(2));
        let other = dead_letter(&twice, "retry", DeadReason::Rejected, None, 300);
        let d = deaths(&other);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0]["queue"], HeaderValue::String("retry".into()));
        assert_eq!(
            other.properties.header("x-first-death-queue"),
            Some(&HeaderValue::String("jobs".into()))
        );
    }

    #[test]
    fn expiry_only_cycles_are_detected() {
        let message = Message::default();
        let a = dead_letter(&message, "a", DeadReason::Expired, None, 1);
        assert!(is_automatic_cycle(&a, "a"));
        assert!(!is_automatic_cycle(&a, "b"));
        let b = dead_letter(&a, "b", DeadReason::Rejected, None, 2);
        assert!(!is_automatic_cycle(&b, "a"));
    }
}
