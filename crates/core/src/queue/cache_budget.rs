//! [`CacheBudget`]: the bytes of undelivered message bodies all queues together keep decoded in
//! memory. Each queue caches what it appends, so a consumer that keeps up never reads its log;
//! a backlog past the budget stays in the log (page cache, then disk) and is read back in
//! chunks when its turn comes. Per queue the cache is also bounded by
//! [`QUEUE_CACHE_BYTES_MAX`](super::runtime::QUEUE_CACHE_BYTES_MAX); this bounds the sum, so a
//! thousand busy queues cost at most the budget, not a thousand times 8 MiB.
//!
//! Taking is a compare-and-swap on one counter: no lock, and a refusal only means "read it back
//! from the log later", never an error.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Default of [`CacheBudget`]'s limit (`[storage] queue_cache_bytes`).
pub const QUEUE_CACHE_TOTAL_BYTES_DEFAULT: usize = 256 << 20;

#[derive(Debug)]
pub struct CacheBudget {
    used: AtomicUsize,
    max: usize,
}

impl CacheBudget {
    pub fn new(max: usize) -> CacheBudget {
        CacheBudget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `bytes` if they fit under the limit.
    pub fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    /// Gives back bytes taken before.
    pub fn give_back(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(before >= bytes, "gave back more than was taken");
    }

    /// Bytes cached across all queues now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the sequence of takes and returns, the total never passes the limit and
        /// returning everything taken brings it back to zero.
        #[test]
        fn never_over_the_limit(max in 0usize..10_000, sizes in proptest::collection::vec(0usize..3_000, 0..64)) {
            let budget = CacheBudget::new(max);
            let mut taken = Vec::new();
            for size in sizes {
                if budget.try_take(size) {
                    taken.push(size);
                }
                prop_assert!(budget.used() <= max);
                prop_assert_eq!(budget.used(), taken.iter().sum::<usize>());
            }
            for size in taken {
                budget.give_back(size);
            }
            prop_assert_eq!(budget.used(), 0);
        }
    }
}
