//! [`SourceBindings`]: one exchange's outgoing bindings with their compiled matchers and the
//! indexes a publish routes by.
//!
//! Why persistent (`imbl`) collections: publishes read a shared snapshot of the routing table
//! (`Arc<RoutingTable>`) while the metadata state keeps its own copy, and each routing change is
//! first tried on a copy (the check) before it is journaled and applied. With plain collections
//! each of those copies is O(bindings): the cause of 2,000 chat clients taking 20–30 s to bind.
//! With persistent maps a copy is O(1) and a change copies only the O(log n) nodes on its path,
//! so a bind costs the same with 100 or 100,000 bindings, and a snapshot held by a publish is
//! never disturbed. Per-exchange copy-on-write (an `Arc<Vec>` per exchange) would still copy a
//! whole exchange per bind: up to [`BINDINGS_PER_EXCHANGE_MAX`] entries for a chat exchange.
//! The indexes' many tiny sets (the bindings under one key, at one trie node, to one queue) are
//! [`SmallMap`]s, which stay a shared vector until they grow: a full `imbl` node each made a
//! binding cost over 1 KiB.
//!
//! Routing indexes by exchange kind: direct bindings by routing key (a hash lookup), topic
//! bindings in a [`TopicTrie`]; fanout and headers bindings are scanned, as they must be (every
//! fanout binding matches; headers patterns are arbitrary).
//!
//! [`BINDINGS_PER_EXCHANGE_MAX`]: super::limits::BINDINGS_PER_EXCHANGE_MAX

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::binding::{Binding, Destination, Matcher};
use super::small_map::SmallMap;
use super::topic::split_words;
use super::topic_trie::TopicTrie;
use super::value::Headers;

/// A binding with its matcher, shared by the entry list and the indexes.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) binding: Binding,
    pub(crate) matcher: Matcher,
}

/// One exchange's outgoing bindings, in the order they were made (deterministic, so snapshots
/// and replays produce identical tables). Each binding gets an insertion number (`id`), unique
/// in this exchange, which orders the list and names the binding in the indexes and in the
/// table's incoming-bindings map. Every operation is O(log n); a clone is O(1).
#[derive(Clone, Debug, Default)]
pub(crate) struct SourceBindings {
    entries: imbl::OrdMap<u64, Arc<Entry>>,
    /// (fingerprint of the binding, id): finds a binding's id without comparing it against
    /// every other binding; equal fingerprints are then compared in full.
    ids: imbl::OrdSet<(u64, u64)>,
    next_id: u64,
    /// Direct bindings by routing key.
    direct: imbl::OrdMap<String, SmallMap<u64, Arc<Entry>>>,
    topic: TopicTrie<Arc<Entry>>,
    /// Fanout and headers bindings: `entries` is scanned only when there are some.
    scanned: usize,
}

/// Equality is that of the bindings in order; ids and indexes derive from them.
impl PartialEq for SourceBindings {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
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

    /// The id of `binding`, if it is here.
    fn id_of(&self, binding: &Binding) -> Option<u64> {
        let print = fingerprint(binding);
        self.ids
            .range((print, 0)..=(print, u64::MAX))
            .map(|&(_, id)| id)
            .find(|id| self.entries.get(id).is_some_and(|e| e.binding == *binding))
    }

    pub(crate) fn contains(&self, binding: &Binding) -> bool {
        self.id_of(binding).is_some()
    }

    /// The binding with this id.
    pub(crate) fn get(&self, id: u64) -> Option<&Binding> {
        self.entries.get(&id).map(|entry| &entry.binding)
    }

    /// Adds a binding known to be absent; returns its id.
    pub(crate) fn insert(&mut self, binding: Binding, matcher: Matcher) -> u64 {
        debug_assert!(!self.contains(&binding));
        debug_assert!(self
            .entries
            .values()
            .next()
            .is_none_or(|first| first.binding.source == binding.source));
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert((fingerprint(&binding), id));
        let entry = Arc::new(Entry { binding, matcher });
        match &entry.matcher {
            Matcher::Direct => {
                self.direct
                    .entry(entry.binding.routing_key.clone())
                    .or_default()
                    .insert(id, entry.clone());
            }
            Matcher::Topic(pattern) => self.topic.insert(pattern, id, entry.clone()),
            Matcher::Fanout | Matcher::Headers(_) => self.scanned += 1,
        }
        self.entries.insert(id, entry);
        id
    }

    /// Removes `binding`; its id if it was there.
    pub(crate) fn remove(&mut self, binding: &Binding) -> Option<u64> {
        let id = self.id_of(binding)?;
        self.remove_id(id);
        Some(id)
    }

    /// Removes the binding with this id; whether it was there.
    pub(crate) fn remove_id(&mut self, id: u64) -> bool {
        let Some(entry) = self.entries.remove(&id) else {
            return false;
        };
        self.ids.remove(&(fingerprint(&entry.binding), id));
        match &entry.matcher {
            Matcher::Direct => {
                let key = entry.binding.routing_key.as_str();
                let bound = self
                    .direct
                    .get_mut(key)
                    .expect("direct index follows entries");
                bound.remove(&id);
                if bound.is_empty() {
                    self.direct.remove(key);
                }
            }
            Matcher::Topic(pattern) => {
                let removed = self.topic.remove(pattern, id);
                debug_assert!(removed, "topic index follows entries");
            }
            Matcher::Fanout | Matcher::Headers(_) => self.scanned -= 1,
        }
        true
    }

    /// The bindings in the order made.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.entries.values().map(|entry| &entry.binding)
    }

    /// The bindings with their ids, in the order made.
    pub(crate) fn iter_ids(&self) -> impl Iterator<Item = (u64, &Binding)> {
        self.entries.iter().map(|(id, entry)| (*id, &entry.binding))
    }

    /// Calls `emit` with the destination of every binding a message with this key and these
    /// headers matches, each binding once. May repeat a destination (bound twice with
    /// different keys); the caller deduplicates. The order is not the bindings' order.
    pub(crate) fn for_each_match<'a>(
        &'a self,
        routing_key: &str,
        headers: &Headers,
        emit: &mut dyn FnMut(&'a Destination),
    ) {
        if let Some(bound) = self.direct.get(routing_key) {
            for entry in bound.values() {
                emit(&entry.binding.destination);
            }
        }
        if !self.topic.is_empty() {
            // At most NAME_BYTES_MAX bytes, so at most 128 words.
            let words: Vec<&str> = split_words(routing_key).collect();
            self.topic
                .for_each_match(&words, &mut |entry| emit(&entry.binding.destination));
        }
        if self.scanned > 0 {
            for entry in self.entries.values() {
                if matches!(entry.matcher, Matcher::Fanout | Matcher::Headers(_))
                    && entry.matcher.matches(&entry.binding, routing_key, headers)
                {
                    emit(&entry.binding.destination);
                }
            }
        }
    }

    /// Test support: the linear scan the indexes replace, every binding's matcher tried in turn
    /// (the model the indexed [`Self::for_each_match`] is checked against).
    #[cfg(test)]
    pub(crate) fn matching_linear<'a>(
        &'a self,
        routing_key: &'a str,
        headers: &'a Headers,
    ) -> impl Iterator<Item = &'a Destination> + 'a {
        self.entries
            .values()
            .filter(move |entry| entry.matcher.matches(&entry.binding, routing_key, headers))
            .map(|entry| &entry.binding.destination)
    }

    /// Test support: the id set and the indexes hold exactly the entries.
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        let ids: imbl::OrdSet<(u64, u64)> = self
            .entries
            .iter()
            .map(|(id, entry)| (fingerprint(&entry.binding), *id))
            .collect();
        assert_eq!(self.ids, ids);
        assert!(self.entries.keys().all(|id| *id < self.next_id));
        let direct: usize = self.direct.values().map(SmallMap::len).sum();
        let mut direct_expected = 0;
        let mut topic_expected = 0;
        let mut scanned_expected = 0;
        for (id, entry) in &self.entries {
            match &entry.matcher {
                Matcher::Direct => {
                    direct_expected += 1;
                    assert!(self
                        .direct
                        .get(entry.binding.routing_key.as_str())
                        .is_some_and(|bound| bound.get(id).is_some()));
                }
                Matcher::Topic(_) => topic_expected += 1,
                Matcher::Fanout | Matcher::Headers(_) => scanned_expected += 1,
            }
        }
        assert_eq!(direct, direct_expected);
        assert!(self.direct.values().all(|bound| !bound.is_empty()));
        assert_eq!(self.topic.len(), topic_expected);
        assert_eq!(self.scanned, scanned_expected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::exchange::ExchangeKind;

    fn queue_binding(key: &str) -> Binding {
        Binding::new("x", Destination::Queue("q".into()), key)
    }

    fn destinations(set: &SourceBindings, key: &str, headers: &Headers) -> Vec<String> {
        let mut out = Vec::new();
        set.for_each_match(key, headers, &mut |d| out.push(d.name().to_string()));
        out.sort();
        out
    }

    #[test]
    fn insert_remove_and_order() {
        let mut set = SourceBindings::default();
        for key in ["a", "b"] {
            let binding = queue_binding(key);
            let matcher = Matcher::compile(ExchangeKind::Direct, &binding).unwrap();
            set.insert(binding, matcher);
        }
        let to_exchange = Binding::new("x", Destination::Exchange("e".into()), "a");
        let id = set.insert(to_exchange.clone(), Matcher::Direct);
        assert_eq!(set.len(), 3);
        assert_eq!(destinations(&set, "a", &Headers::new()), ["e", "q"]);
        let keys: Vec<&str> = set.iter().map(|b| b.routing_key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "a"], "the order made");
        assert_eq!(set.get(id), Some(&to_exchange));
        set.assert_consistent();
        assert_eq!(set.remove(&to_exchange), Some(id));
        assert_eq!(set.remove(&to_exchange), None);
        assert_eq!(destinations(&set, "a", &Headers::new()), ["q"]);
        set.assert_consistent();
        assert!(set.remove(&queue_binding("a")).is_some());
        assert!(set.remove(&queue_binding("b")).is_some());
        assert!(set.is_empty());
        assert!(
            set.ids.is_empty() && set.direct.is_empty(),
            "indexes follow the entries"
        );
    }
}
