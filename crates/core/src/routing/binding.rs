//! Bindings: the edges of the routing graph, from a source exchange to a queue or to another
//! exchange. A binding is identified by all four of its fields, as in RabbitMQ: binding the same
//! queue twice with different keys or arguments makes two bindings, binding it twice with the same
//! ones makes one.
//!
//! A [`Matcher`] is a binding compiled for its exchange's kind (topic patterns, headers
//! patterns), so a publish never re-parses a binding key; [`super::source`] keeps one exchange's
//! bindings with their matchers and routing indexes.

use serde::{Deserialize, Serialize};

use super::error::RoutingError;
use super::exchange::ExchangeKind;
use super::headers::HeadersPattern;
use super::topic::TopicPattern;
use super::value::{FieldTable, Headers};

/// Where a binding delivers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Destination {
    Queue(String),
    /// Exchange-to-exchange binding (a RabbitMQ extension to AMQP 0-9-1, `exchange.bind`).
    Exchange(String),
}

impl Destination {
    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(name) | Destination::Exchange(name) => name,
        }
    }
}

/// One binding, as `queue.bind` / `exchange.bind` state it. Serialisable so a bind can become a
/// metadata command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    /// The exchange messages come from.
    pub source: String,
    pub destination: Destination,
    /// Compared with the routing key by direct (equality) and topic (pattern) exchanges, ignored
    /// by fanout and headers exchanges, but part of the binding's identity for all.
    pub routing_key: String,
    /// Matched against message headers by headers exchanges (with `x-match`); otherwise only part
    /// of the binding's identity.
    pub arguments: FieldTable,
}

impl Binding {
    pub fn new(
        source: impl Into<String>,
        destination: Destination,
        routing_key: impl Into<String>,
    ) -> Self {
        Binding {
            source: source.into(),
            destination,
            routing_key: routing_key.into(),
            arguments: FieldTable::new(),
        }
    }

    pub fn with_arguments(mut self, arguments: FieldTable) -> Self {
        self.arguments = arguments;
        self
    }
}

/// A binding compiled for its source exchange's kind. The kind of an exchange never changes (a
/// re-declare with another type fails), so compiling once at bind time is safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// Routing key equals the binding key (kept in the `Binding`).
    Direct,
    Fanout,
    Topic(TopicPattern),
    Headers(HeadersPattern),
}

impl Matcher {
    /// Compiles `binding` for a source of `kind`; headers bindings with a bad `x-match` fail (406).
    pub(crate) fn compile(kind: ExchangeKind, binding: &Binding) -> Result<Self, RoutingError> {
        Ok(match kind {
            ExchangeKind::Direct => Matcher::Direct,
            ExchangeKind::Fanout => Matcher::Fanout,
            ExchangeKind::Topic => Matcher::Topic(TopicPattern::compile(&binding.routing_key)),
            ExchangeKind::Headers => Matcher::Headers(HeadersPattern::compile(
                &binding.arguments,
                &binding.source,
            )?),
        })
    }

    pub(crate) fn matches(&self, binding: &Binding, routing_key: &str, headers: &Headers) -> bool {
        match self {
            Matcher::Direct => binding.routing_key == routing_key,
            Matcher::Fanout => true,
            Matcher::Topic(pattern) => pattern.matches(routing_key),
            Matcher::Headers(pattern) => pattern.matches(headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::value::HeaderValue;

    fn queue_binding(key: &str) -> Binding {
        Binding::new("x", Destination::Queue("q".into()), key)
    }

    #[test]
    fn identity_is_all_four_fields() {
        let a = queue_binding("k");
        assert_eq!(a, queue_binding("k"));
        assert_ne!(a, queue_binding("j"));
        assert_ne!(a, Binding::new("x", Destination::Exchange("q".into()), "k"));
        let mut args = FieldTable::new();
        args.insert("a".into(), HeaderValue::I32(1));
        assert_ne!(a, queue_binding("k").with_arguments(args));
    }

    #[test]
    fn matchers_follow_the_source_kind() {
        let binding = queue_binding("a.*");
        let topic = Matcher::compile(ExchangeKind::Topic, &binding).unwrap();
        let direct = Matcher::compile(ExchangeKind::Direct, &binding).unwrap();
        let fanout = Matcher::compile(ExchangeKind::Fanout, &binding).unwrap();
        let no_headers = Headers::new();
        assert!(topic.matches(&binding, "a.b", &no_headers));
        assert!(!direct.matches(&binding, "a.b", &no_headers));
        assert!(direct.matches(&binding, "a.*", &no_headers));
        assert!(fanout.matches(&binding, "anything", &no_headers));

        let mut args = FieldTable::new();
        args.insert("x-match".into(), HeaderValue::from("nope"));
        assert!(Matcher::compile(
            ExchangeKind::Headers,
            &binding.clone().with_arguments(args.clone())
        )
        .is_err());
        assert!(Matcher::compile(ExchangeKind::Topic, &binding.with_arguments(args)).is_ok());
    }

    #[test]
    fn serde_round_trip() {
        let binding = Binding::new("x", Destination::Exchange("y".into()), "k.#");
        let json = serde_json::to_string(&binding).unwrap();
        assert_eq!(serde_json::from_str::<Binding>(&json).unwrap(), binding);
    }
}
