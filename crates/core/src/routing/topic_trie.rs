//! A topic exchange's binding patterns as a trie of their words, as RabbitMQ routes topics: a
//! publish walks the key's words down the trie instead of testing every pattern, so routing
//! costs about the number of patterns that share the key's prefixes, not the exchange's
//! binding count (100k `user.<id>.*` bindings route a key in a few lookups, not 100k matches).
//!
//! The trie is persistent: children are `Arc`'d nodes and each node's maps are persistent
//! ([`SmallMap`]), so cloning the trie is O(1) and a bind or unbind copies only the nodes on its
//! pattern's path (`Arc::make_mut`), leaving every snapshot that shares the rest unchanged.

use std::collections::HashSet;
use std::sync::Arc;

use super::small_map::SmallMap;
use super::topic::{TopicPattern, Word};

/// One node: the bindings whose pattern ends here, and the children by the pattern's next word.
#[derive(Clone, Debug)]
struct Node<T: Clone> {
    literal: SmallMap<String, Arc<Node<T>>>,
    /// `*`
    one: Option<Arc<Node<T>>>,
    /// `#`
    any: Option<Arc<Node<T>>>,
    /// By the binding's insertion number in its exchange, so a node lists its bindings in the
    /// order made and removes one in O(log n).
    ends: SmallMap<u64, T>,
}

impl<T: Clone> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: SmallMap::default(),
            one: None,
            any: None,
            ends: SmallMap::default(),
        }
    }
}

impl<T: Clone> Node<T> {
    fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.literal.is_empty() && self.one.is_none() && self.any.is_none()
    }

    fn child_mut(&mut self, word: &Word) -> Option<&mut Arc<Node<T>>> {
        match word {
            Word::Literal(word) => self.literal.get_mut(word.as_str()),
            Word::One => self.one.as_mut(),
            Word::Any => self.any.as_mut(),
        }
    }

    fn prune(&mut self, word: &Word) {
        match word {
            Word::Literal(word) => {
                self.literal.remove(word.as_str());
            }
            Word::One => self.one = None,
            Word::Any => self.any = None,
        }
    }
}

/// The patterns of one topic exchange, each with a value (its binding) under an id unique in
/// the exchange.
#[derive(Clone, Debug)]
pub(crate) struct TopicTrie<T: Clone> {
    root: Node<T>,
    len: usize,
}

impl<T: Clone> Default for TopicTrie<T> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T: Clone> TopicTrie<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many values the trie holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `value` under `id` at the end of `pattern`'s path. O(words × log n).
    pub(crate) fn insert(&mut self, pattern: &TopicPattern, id: u64, value: T) {
        let mut node = &mut self.root;
        for word in pattern.words() {
            let child = match word {
                Word::Literal(word) => node.literal.get_or_default(word.clone()),
                Word::One => node.one.get_or_insert_with(Default::default),
                Word::Any => node.any.get_or_insert_with(Default::default),
            };
            node = Arc::make_mut(child);
        }
        if node.ends.insert(id, value).is_none() {
            self.len += 1;
        }
    }

    /// Removes `id` from the end of `pattern`'s path, and the nodes it leaves empty; whether it
    /// was there.
    pub(crate) fn remove(&mut self, pattern: &TopicPattern, id: u64) -> bool {
        let removed = remove_at(&mut self.root, pattern.words(), id);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `emit` with the value of every pattern `key` (a routing key's words) matches, each
    /// once.
    pub(crate) fn for_each_match<'a>(&'a self, key: &[&str], emit: &mut dyn FnMut(&'a T)) {
        let mut seen = HashSet::new();
        visit(&self.root, key, 0, &mut seen, emit);
    }
}

fn remove_at<T: Clone>(node: &mut Node<T>, words: &[Word], id: u64) -> bool {
    let Some((first, rest)) = words.split_first() else {
        return node.ends.remove(&id).is_some();
    };
    // Only descend (and copy the path) when the child exists.
    let Some(child) = node.child_mut(first) else {
        return false;
    };
    let child = Arc::make_mut(child);
    let removed = remove_at(child, rest, id);
    let empty = child.is_empty();
    if removed && empty {
        node.prune(first);
    }
    removed
}

/// Matches `key[i..]` below `node`. A `#` child may absorb any number of words, so it is tried
/// at every later position; `seen` records the (`#` node, position) pairs already tried, which
/// makes each node visited at most once per position (patterns such as `#.*.#` would otherwise
/// revisit, and emit, the same node exponentially often). Only `#` nodes can be reached twice at
/// one position: any other node has one parent and one way in.
fn visit<'a, T: Clone>(
    node: &'a Node<T>,
    key: &[&str],
    i: usize,
    seen: &mut HashSet<(*const Node<T>, usize)>,
    emit: &mut dyn FnMut(&'a T),
) {
    if i == key.len() {
        node.ends.values().for_each(&mut *emit);
    } else {
        if let Some(child) = node.literal.get(key[i]) {
            visit(child, key, i + 1, seen, emit);
        }
        if let Some(child) = &node.one {
            visit(child, key, i + 1, seen, emit);
        }
    }
    if let Some(child) = &node.any {
        for j in i..=key.len() {
            if seen.insert((Arc::as_ptr(child), j)) {
                visit(child, key, j, seen, emit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::topic::split_words;
    use super::*;

    fn matches(trie: &TopicTrie<u64>, key: &str) -> Vec<u64> {
        let words: Vec<&str> = split_words(key).collect();
        let mut out = Vec::new();
        trie.for_each_match(&words, &mut |id| out.push(*id));
        out.sort_unstable();
        out
    }

    #[test]
    fn insert_match_remove_prunes() {
        let mut trie = TopicTrie::default();
        let patterns = ["a.b", "a.*", "#", "a.#", "", "#.b", "*.*.#"];
        for (id, pattern) in patterns.iter().enumerate() {
            trie.insert(&TopicPattern::compile(pattern), id as u64, id as u64);
        }
        assert_eq!(matches(&trie, "a.b"), [0, 1, 2, 3, 5, 6]);
        assert_eq!(matches(&trie, ""), [2, 4]);
        assert_eq!(matches(&trie, "a"), [2, 3]);
        let snapshot = trie.clone();
        for (id, pattern) in patterns.iter().enumerate() {
            assert!(trie.remove(&TopicPattern::compile(pattern), id as u64));
            assert!(!trie.remove(&TopicPattern::compile(pattern), id as u64));
        }
        assert!(
            trie.is_empty() && trie.root.is_empty(),
            "empty nodes are pruned"
        );
        assert_eq!(
            matches(&snapshot, "a.b"),
            [0, 1, 2, 3, 5, 6],
            "clones share, not alias"
        );
    }

    #[test]
    fn many_hashes_stay_cheap_and_emit_once() {
        let mut trie = TopicTrie::default();
        trie.insert(&TopicPattern::compile("#.*.#.*.#.*.#"), 0, 0);
        let key = vec!["w"; 120].join(".");
        assert_eq!(matches(&trie, &key), [0]);
    }

    fn word() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "", "*", "#"])
    }

    proptest! {
        /// The trie finds exactly the patterns `TopicPattern::matches` accepts.
        #[test]
        fn agrees_with_the_pattern_matcher(
            patterns in prop::collection::vec(prop::collection::vec(word(), 0..5), 0..12),
            keys in prop::collection::vec(
                prop::collection::vec(prop::sample::select(vec!["a", "b", "c", ""]), 0..6),
                1..8,
            ),
        ) {
            let patterns: Vec<TopicPattern> = patterns
                .iter()
                .map(|words| TopicPattern::compile(&words.join(".")))
                .collect();
            let mut trie = TopicTrie::default();
            for (id, pattern) in patterns.iter().enumerate() {
                trie.insert(pattern, id as u64, id as u64);
            }
            for key in keys {
                let key = key.join(".");
                let expected: Vec<u64> = (0..patterns.len() as u64)
                    .filter(|&id| patterns[id as usize].matches(&key))
                    .collect();
                prop_assert_eq!(matches(&trie, &key), expected, "key {:?}", key);
            }
        }
    }
}
