//! [`QueueMap`]: the broker's running queues by vhost and name, with an index of the exclusive
//! ones by owning connection.
//!
//! A connection that closes deletes its exclusive queues. Finding them by scanning the vhost's
//! queues made each close O(queues): 2,000 chat clients, each with an exclusive inbox, closing
//! together did 4 million comparisons under the map's read lock, which every declare, delete and
//! publish lookup also takes. With the index a close looks at its owner's queues only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::queue::api::OwnerId;
use crate::queue::Queue;

#[derive(Default)]
pub(crate) struct QueueMap {
    /// vhost → name → queue.
    by_name: HashMap<String, HashMap<String, Arc<Queue>>>,
    /// (vhost, owner) → names of that connection's exclusive queues there. An owner holds few
    /// (a chat client one), so a `Vec` searched linearly on removal.
    by_owner: HashMap<(String, OwnerId), Vec<String>>,
    /// Queues [`Self::owned_by`] has looked at, over the broker's life: what the index saves is
    /// a count, so tests can assert it rather than time it.
    examined: AtomicU64,
}

impl QueueMap {
    /// Adds (or replaces) `queue` under its name in `vhost`.
    pub(crate) fn insert(&mut self, vhost: &str, queue: Arc<Queue>) {
        let name = queue.name().to_string();
        if let Some(owner) = queue.definition().exclusive_owner {
            self.by_owner
                .entry((vhost.to_string(), owner))
                .or_default()
                .push(name.clone());
        }
        if let Some(old) = self
            .by_name
            .entry(vhost.to_string())
            .or_default()
            .insert(name, queue)
        {
            self.unindex(vhost, &old);
        }
    }

    /// Removes queue `name` from `vhost`; returns it if it was there.
    pub(crate) fn remove(&mut self, vhost: &str, name: &str) -> Option<Arc<Queue>> {
        let queue = self.by_name.get_mut(vhost)?.remove(name)?;
        self.unindex(vhost, &queue);
        Some(queue)
    }

    fn unindex(&mut self, vhost: &str, queue: &Queue) {
        let Some(owner) = queue.definition().exclusive_owner else {
            return;
        };
        let key = (vhost.to_string(), owner);
        if let Some(names) = self.by_owner.get_mut(&key) {
            if let Some(at) = names.iter().position(|n| n == queue.name()) {
                names.swap_remove(at);
            }
            if names.is_empty() {
                self.by_owner.remove(&key);
            }
        }
    }

    pub(crate) fn get(&self, vhost: &str, name: &str) -> Option<&Arc<Queue>> {
        self.by_name.get(vhost)?.get(name)
    }

    /// The exclusive queues `owner` holds in `vhost`: O(its own queues), whatever the others.
    pub(crate) fn owned_by(&self, vhost: &str, owner: OwnerId) -> Vec<Arc<Queue>> {
        let Some(names) = self.by_owner.get(&(vhost.to_string(), owner)) else {
            return Vec::new();
        };
        let queues = self.by_name.get(vhost);
        let owned: Vec<Arc<Queue>> = names
            .iter()
            .filter_map(|name| queues?.get(name).cloned())
            .collect();
        self.examined
            .fetch_add(names.len() as u64, Ordering::Relaxed);
        owned
    }

    /// Queues [`Self::owned_by`] has looked at so far.
    pub(crate) fn examined(&self) -> u64 {
        self.examined.load(Ordering::Relaxed)
    }

    /// Queues in all vhosts.
    pub(crate) fn len(&self) -> usize {
        self.by_name.values().map(HashMap::len).sum()
    }

    /// The queues of `vhost` (all vhosts with `None`) with their vhost's name: clones of the
    /// handles, so the caller reads them after this map's lock is released.
    pub(crate) fn with_vhosts(&self, vhost: Option<&str>) -> Vec<(String, Arc<Queue>)> {
        self.by_name
            .iter()
            .filter(|(name, _)| vhost.is_none_or(|wanted| wanted == name.as_str()))
            .flat_map(|(name, queues)| queues.values().map(move |q| (name.clone(), q.clone())))
            .collect()
    }

    /// Every queue, all vhosts.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Queue>> {
        self.by_name.values().flat_map(HashMap::values)
    }
}
