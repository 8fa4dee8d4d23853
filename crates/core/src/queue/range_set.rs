//! [`RangeSet`]: a set of log offsets kept as disjoint, non-adjacent half-open ranges, so a run of
//! settled messages costs one entry however long it is.

use std::collections::BTreeMap;
use std::ops::Range;

use porter_storage::Offset;

/// Disjoint, non-adjacent `[start, end)` ranges keyed by start. Inserting merges with neighbours,
/// so the entry count is the number of gaps between settled runs plus one, never the number of
/// offsets. Each entry is two `i64` in a `BTreeMap` node: about 32 bytes with node overhead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: BTreeMap<Offset, Offset>,
}

impl RangeSet {
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// Number of disjoint ranges (the memory cost), not of offsets.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Range<Offset>> + '_ {
        self.ranges.iter().map(|(&start, &end)| start..end)
    }

    pub fn contains(&self, offset: Offset) -> bool {
        self.ranges
            .range(..=offset)
            .next_back()
            .is_some_and(|(_, &end)| offset < end)
    }

    /// The range holding `offset`, if any.
    pub fn range_containing(&self, offset: Offset) -> Option<Range<Offset>> {
        self.ranges
            .range(..=offset)
            .next_back()
            .filter(|(_, &end)| offset < end)
            .map(|(&start, &end)| start..end)
    }

    /// The highest offset in the set plus one, or `None` if empty.
    pub fn end(&self) -> Option<Offset> {
        self.ranges.values().next_back().copied()
    }

    /// Adds `range`, merging with any range it overlaps or touches. Empty ranges are ignored.
    pub fn insert(&mut self, range: Range<Offset>) {
        if range.start >= range.end {
            return;
        }
        let (mut start, mut end) = (range.start, range.end);
        // A range starting at or before `start` that reaches it absorbs us from the left.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
            }
        }
        // Every range starting inside [start, end] is swallowed.
        let swallowed: Vec<Offset> = self.ranges.range(start..=end).map(|(&s, _)| s).collect();
        for s in swallowed {
            let e = self.ranges.remove(&s).expect("key just listed");
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Drops every offset below `offset` (those reclaimed from the log).
    pub fn remove_below(&mut self, offset: Offset) {
        let below: Vec<(Offset, Offset)> =
            self.ranges.range(..offset).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in below {
            self.ranges.remove(&s);
            if e > offset {
                self.ranges.insert(offset, e);
            }
        }
    }

    /// Builds runs from sorted, distinct offsets: `[3, 4, 5, 9]` → `[3..6, 9..10]`.
    pub fn runs(sorted: &[Offset]) -> Vec<Range<Offset>> {
        debug_assert!(sorted.windows(2).all(|w| w[0] < w[1]));
        let mut runs: Vec<Range<Offset>> = Vec::new();
        for &offset in sorted {
            match runs.last_mut() {
                Some(run) if run.end == offset => run.end += 1,
                _ => runs.push(offset..offset + 1),
            }
        }
        runs
    }

    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        let mut previous_end = None;
        for (&s, &e) in &self.ranges {
            assert!(s < e, "empty range {s}..{e}");
            if let Some(p) = previous_end {
                assert!(p < s, "ranges touch or overlap at {s}");
            }
            previous_end = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn insert_merges_neighbours_and_overlaps() {
        let mut set = RangeSet::new();
        set.insert(5..7);
        set.insert(1..2);
        set.insert(9..10);
        assert_eq!(set.range_count(), 3);
        set.insert(2..5); // touches 1..2 and 5..7
        assert_eq!(set.iter().collect::<Vec<_>>(), [1..7, 9..10]);
        set.insert(0..12);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![(0..12)]);
        set.remove_below(4);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![(4..12)]);
        assert!(set.contains(11) && !set.contains(12) && !set.contains(3));
    }

    #[test]
    fn runs_group_consecutive_offsets() {
        assert_eq!(RangeSet::runs(&[3, 4, 5, 9]), [3..6, 9..10]);
        assert!(RangeSet::runs(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn matches_a_plain_set(ops in prop::collection::vec((0i64..64, 0i64..8, any::<bool>()), 0..40)) {
            let mut set = RangeSet::new();
            let mut model = std::collections::BTreeSet::new();
            for (start, len, truncate) in ops {
                if truncate {
                    set.remove_below(start);
                    model.retain(|&o| o >= start);
                } else {
                    set.insert(start..start + len);
                    model.extend(start..start + len);
                }
                set.assert_consistent();
                for o in 0..80 {
                    prop_assert_eq!(set.contains(o), model.contains(&o));
                }
            }
        }
    }
}
