//! [`SmallMap`]: a persistent ordered map that stays a small shared vector until it outgrows
//! [`INLINE_MAX`] entries. The routing indexes hold many tiny maps (the bindings under one
//! direct key, at one topic-trie node, to one queue); an `imbl::OrdMap` allocates a full
//! 64-slot node for even one entry, which made a binding cost over 1 KiB. The vector is
//! behind an `Arc`, so a clone stays O(1) and a change copies at most `INLINE_MAX` entries.

use std::sync::Arc;

/// Entries kept in the vector form; beyond this the map becomes an `imbl::OrdMap`.
pub(crate) const INLINE_MAX: usize = 8;

#[derive(Clone, Debug)]
pub(crate) enum SmallMap<K: Ord + Clone, V: Clone> {
    /// Sorted by key. `None` when empty: most trie nodes have no bindings or no literal
    /// children, and an empty map should cost no allocation.
    Inline(Option<Arc<Vec<(K, V)>>>),
    Tree(imbl::OrdMap<K, V>),
}

impl<K: Ord + Clone, V: Clone> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Inline(None)
    }
}

impl<K: Ord + Clone, V: Clone> SmallMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Inline(entries) => entries.as_ref().map_or(0, |e| e.len()),
            SmallMap::Tree(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            SmallMap::Inline(entries) => {
                let entries = entries.as_ref()?;
                let i = entries
                    .binary_search_by(|(k, _)| k.borrow().cmp(key))
                    .ok()?;
                Some(&entries[i].1)
            }
            SmallMap::Tree(map) => map.get(key),
        }
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            SmallMap::Inline(entries) => {
                let entries = entries.as_mut()?;
                let i = entries
                    .binary_search_by(|(k, _)| k.borrow().cmp(key))
                    .ok()?;
                Some(&mut Arc::make_mut(entries)[i].1)
            }
            SmallMap::Tree(map) => map.get_mut(key),
        }
    }

    /// Inserts or replaces; the previous value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            SmallMap::Inline(slot) => {
                let entries = slot.get_or_insert_with(|| Arc::new(Vec::with_capacity(1)));
                match entries.binary_search_by(|(k, _)| k.cmp(&key)) {
                    Ok(i) => Some(std::mem::replace(&mut Arc::make_mut(entries)[i].1, value)),
                    Err(_) if entries.len() >= INLINE_MAX => {
                        let mut map: imbl::OrdMap<K, V> = entries.iter().cloned().collect();
                        map.insert(key, value);
                        *self = SmallMap::Tree(map);
                        None
                    }
                    Err(i) => {
                        Arc::make_mut(entries).insert(i, (key, value));
                        None
                    }
                }
            }
            SmallMap::Tree(map) => map.insert(key, value),
        }
    }

    /// The value of `key`, inserted with `V::default()` if absent.
    pub(crate) fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if self.get(&key).is_none() {
            self.insert(key.clone(), V::default());
        }
        self.get_mut(&key).expect("just inserted")
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            SmallMap::Inline(slot) => {
                let entries = slot.as_mut()?;
                let i = entries
                    .binary_search_by(|(k, _)| k.borrow().cmp(key))
                    .ok()?;
                let removed = Arc::make_mut(entries).remove(i).1;
                if entries.is_empty() {
                    *slot = None;
                }
                Some(removed)
            }
            SmallMap::Tree(map) => {
                let removed = map.remove(key);
                if map.len() <= INLINE_MAX / 2 {
                    let entries: Vec<(K, V)> =
                        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    *self = SmallMap::Inline((!entries.is_empty()).then(|| Arc::new(entries)));
                }
                removed
            }
        }
    }

    /// In key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            SmallMap::Inline(entries) => {
                Iter::Inline(entries.as_deref().map_or(&[][..], Vec::as_slice).iter())
            }
            SmallMap::Tree(map) => Iter::Tree(map.iter()),
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

pub(crate) enum Iter<'a, K: Ord + Clone, V: Clone> {
    Inline(std::slice::Iter<'a, (K, V)>),
    Tree(imbl::ordmap::Iter<'a, K, V, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a, K: Ord + Clone, V: Clone> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Inline(entries) => entries.next().map(|(k, v)| (k, v)),
            Iter::Tree(map) => map.next(),
        }
    }
}

impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for SmallMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Behaves as a `BTreeMap` through growing into a tree and shrinking back.
        #[test]
        fn behaves_as_an_ordered_map(ops in prop::collection::vec((any::<bool>(), 0u8..24), 0..200)) {
            let mut model = std::collections::BTreeMap::new();
            let mut map: SmallMap<u8, u8> = SmallMap::default();
            for (insert, key) in ops {
                let snapshot = map.clone();
                let before: Vec<(u8, u8)> = snapshot.iter().map(|(k, v)| (*k, *v)).collect();
                if insert {
                    prop_assert_eq!(map.insert(key, key / 2), model.insert(key, key / 2));
                } else {
                    prop_assert_eq!(map.remove(&key), model.remove(&key));
                }
                let after: Vec<(u8, u8)> = snapshot.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(before, after, "a clone is not changed");
                prop_assert_eq!(map.len(), model.len());
                let entries: Vec<(u8, u8)> = map.iter().map(|(k, v)| (*k, *v)).collect();
                let expected: Vec<(u8, u8)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(entries, expected);
                prop_assert_eq!(map.get(&key), model.get(&key));
            }
        }
    }
}
