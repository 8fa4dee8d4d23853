//! Bindings: the edges of the routing graph, from a source exchange to a queue or to another
//! exchange. A binding is identified by all four of its fields, as in RabbitMQ: binding the same
//! queue twice with different keys or arguments makes two bindings, binding it twice with the same
//! ones makes one.
//!
//! `SourceBindings` keeps one exchange's outgoing bindings together with their compiled matchers
//! (topic patterns, headers patterns), so a publish never re-parses a binding key.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

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

    fn matches(&self, binding: &Binding, routing_key: &str, headers: &Headers) -> bool {
        match self {
            Matcher::Direct => binding.routing_key == routing_key,
            Matcher::Fanout => true,
            Matcher::Topic(pattern) => pattern.matches(routing_key),
            Matcher::Headers(pattern) => pattern.matches(headers),
        }
    }
}

/// One exchange's outgoing bindings, in the order they were made (deterministic, so snapshots
/// and replays produce identical tables). A publish scans them linearly (bounded by
/// [`BINDINGS_PER_EXCHANGE_MAX`](super::limits::BINDINGS_PER_EXCHANGE_MAX)); a bind checks for a
/// duplicate through a fingerprint count first, so adding a new binding is O(1) rather than a
/// full comparison against every existing one, and building an exchange's bindings is not
/// quadratic.
#[derive(Clone, Debug, Default)]
pub(crate) struct SourceBindings {
    entries: Vec<(Binding, Matcher)>,
    /// How many entries have each [`fingerprint`]. Derived from `entries`, never serialised.
    fingerprints: HashMap<u64, u32>,
}

/// Equality is that of the entries; `fingerprints` is derived from them.
impl PartialEq for SourceBindings {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for SourceBindings {}

/// A hash of the whole binding, for the duplicate check. `DefaultHasher::new()` is fixed-keyed:
/// the same binding always has the same fingerprint within a process, which is all that is needed.
fn fingerprint(binding: &Binding) -> u64 {
    let mut hasher = DefaultHasher::new();
    binding.hash(&mut hasher);
    hasher.finish()
}

impl SourceBindings {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn contains(&self, binding: &Binding) -> bool {
        self.fingerprints.contains_key(&fingerprint(binding))
            && self.entries.iter().any(|(existing, _)| existing == binding)
    }

    fn forget(&mut self, binding: &Binding) {
        let key = fingerprint(binding);
        let count = self
            .fingerprints
            .get_mut(&key)
            .expect("every entry's fingerprint is counted");
        *count -= 1;
        if *count == 0 {
            self.fingerprints.remove(&key);
        }
    }

    /// Adds a binding known to be absent.
    pub(crate) fn insert(&mut self, binding: Binding, matcher: Matcher) {
        debug_assert!(!self.contains(&binding));
        debug_assert!(self
            .entries
            .first()
            .is_none_or(|(first, _)| first.source == binding.source));
        *self.fingerprints.entry(fingerprint(&binding)).or_insert(0) += 1;
        self.entries.push((binding, matcher));
    }

    /// Removes `binding`; whether it was there.
    pub(crate) fn remove(&mut self, binding: &Binding) -> bool {
        if !self.contains(binding) {
            return false;
        }
        let before = self.entries.len();
        self.entries.retain(|(existing, _)| existing != binding);
        debug_assert_eq!(before - self.entries.len(), 1, "bindings are unique");
        self.forget(binding);
        true
    }

    /// Removes every binding to `destination`; how many there were.
    pub(crate) fn remove_destination(&mut self, destination: &Destination) -> usize {
        let (removed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|(binding, _)| binding.destination == *destination);
        self.entries = kept;
        for (binding, _) in &removed {
            self.forget(binding);
        }
        removed.len()
    }

    /// Test support: the fingerprint counts are exactly those of the entries.
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        let mut expected: HashMap<u64, u32> = HashMap::new();
        for (binding, _) in &self.entries {
            *expected.entry(fingerprint(binding)).or_insert(0) += 1;
        }
        assert_eq!(self.fingerprints, expected);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.entries.iter().map(|(binding, _)| binding)
    }

    /// The destinations of the bindings a message with this key and these headers matches. May
    /// repeat a destination (bound twice with different keys); the caller deduplicates.
    pub(crate) fn matching<'a>(
        &'a self,
        routing_key: &'a str,
        headers: &'a Headers,
    ) -> impl Iterator<Item = &'a Destination> + 'a {
        self.entries
            .iter()
            .filter(move |(binding, matcher)| matcher.matches(binding, routing_key, headers))
            .map(|(binding, _)| &binding.destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::value::HeaderValue;

    fn queue_binding(key: &str) -> Binding {
        Binding::new("x", Destination::Queue("q".into()), key)
    }

    fn destinations(set: &SourceBindings, key: &str, headers: &Headers) -> Vec<String> {
        set.matching(key, headers)
            .map(|d| d.name().to_string())
            .collect()
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
    fn insert_remove_and_remove_destination() {
        let mut set = SourceBindings::default();
        for key in ["a", "b"] {
            let binding = queue_binding(key);
            let matcher = Matcher::compile(ExchangeKind::Direct, &binding).unwrap();
            set.insert(binding, matcher);
        }
        let to_exchange = Binding::new("x", Destination::Exchange("e".into()), "a");
        set.insert(to_exchange.clone(), Matcher::Direct);
        assert_eq!(set.len(), 3);
        assert_eq!(destinations(&set, "a", &Headers::new()), ["q", "e"]);
        assert!(set.remove(&to_exchange));
        assert!(!set.remove(&to_exchange));
        assert_eq!(set.remove_destination(&Destination::Queue("q".into())), 2);
        assert!(set.is_empty());
        assert!(set.fingerprints.is_empty(), "counts follow the entries");
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
