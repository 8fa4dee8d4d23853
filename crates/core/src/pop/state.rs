//! [`PopState`]: one consumer group's progress through one partition under *pop* consumption
//! (RocketMQ 5's SimpleConsumer; Porter's receive-with-invisible-duration for every protocol).
//!
//! ```text
//!  offer_fresh ──▶ (filter says no) ──────────────────────────────────────────▶ resolved
//!      │ (group busy)        ┌──────── deadline passes / nack: due again ◀──┐
//!      ▼                     ▼                                               │
//!    held ──(group frees)─▶ take ──▶ in flight (invisible until its deadline) ──ack / dead-letter──▶ resolved
//! ```
//!
//! Every offset in `[floor, next_fresh)` is either *resolved* (acked, filtered out, dead-lettered)
//! or has an [`Entry`]: in flight, or waiting (a redelivery not yet due, or held behind an
//! earlier message of its FIFO group). Offsets at or above `next_fresh` have not been looked at.
//!
//! **FIFO message groups.** A message with a group is taken only when it is the lowest
//! unresolved offset of its group in this partition and nothing of that group is in flight: the
//! next message of a group goes out only after the previous one is acked or dead-lettered, while
//! other groups (and messages without a group) go on in parallel.
//!
//! **Durability.** Only resolutions are persisted ([`PopState::take_resolved`], as settled
//! ranges in an ack file). After a restart the unresolved offsets above the floor are offered
//! again from the log: a message that was in flight is delivered again (at least once), its
//! attempt count restarts, and FIFO groups are rebuilt in offset order.
//!
//! **Memory.** `entries` holds at most [`POP_UNRESOLVED_MAX`] offsets; once full, no fresh
//! message is taken until some resolve (`wants_fresh` is false), so a consumer that never acks
//! costs a bounded amount, never a growing one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use porter_storage::Offset;

use crate::queue::RangeSet;

/// Unresolved (in flight or waiting) offsets one group keeps per partition. About 120 bytes
/// each with the indexes, so ~7.5 MiB per group and partition at the limit.
pub const POP_UNRESOLVED_MAX: usize = 65_536;

/// One message handed out by [`PopState::take`] or [`PopState::offer_fresh`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub offset: Offset,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// Names this delivery: an ack or a change of invisible duration must present it, so a
    /// stale handle (the message was redelivered since) is refused.
    pub receipt: u64,
}

/// Why an ack, nack or change of invisible duration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The handle names a delivery that is over: acked already, or delivered again since its
    /// invisible duration ran out.
    #[error("receipt handle expired or already used (offset {0})")]
    StaleReceipt(Offset),
    /// The handle is not one this broker gave out (malformed, or from before a restart).
    #[error("invalid receipt handle: {0}")]
    InvalidReceipt(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    InFlight {
        deadline_ms: u64,
        receipt: u64,
    },
    /// Not in flight; may be taken from `due_ms` on (held messages are due at once).
    Waiting {
        due_ms: u64,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    status: Status,
    /// Deliveries so far.
    attempts: u32,
    group: Option<Arc<str>>,
}

impl Entry {
    fn available_at(&self) -> u64 {
        match self.status {
            Status::InFlight { deadline_ms, .. } => deadline_ms,
            Status::Waiting { due_ms } => due_ms,
        }
    }
}

/// A consumer group's progress through one partition. Pure: the caller reads messages, keeps
/// the ack file and the clock.
#[derive(Clone, Debug, Default)]
pub struct PopState {
    floor: Offset,
    next_fresh: Offset,
    resolved: RangeSet,
    entries: BTreeMap<Offset, Entry>,
    /// (when available, offset) for every entry: the order redeliveries are looked at.
    by_time: BTreeSet<(u64, Offset)>,
    /// Unresolved offsets of each FIFO message group.
    groups: HashMap<Arc<str>, BTreeSet<Offset>>,
    /// Resolutions not yet handed to the ack file.
    newly_resolved: Vec<Range<Offset>>,
    next_receipt: u64,
}

impl PopState {
    /// The state of a group starting at `start` (the log start, or the end for a group that
    /// should only see new messages), with `resolved` ranges read back from its ack file.
    pub fn restore(start: Offset, resolved: impl IntoIterator<Item = Range<Offset>>) -> Self {
        let mut state = PopState {
            floor: start,
            next_fresh: start,
            next_receipt: 1,
            ..Default::default()
        };
        for range in resolved {
            if range.end > start {
                state.resolved.insert(range.start.max(start)..range.end);
            }
        }
        state.advance_floor();
        state.next_fresh = state.floor;
        state.newly_resolved.clear();
        state
    }

    /// Below this everything is resolved: the group's committed progress (its "offset").
    pub fn floor(&self) -> Offset {
        self.floor
    }

    /// The next offset never looked at.
    pub fn next_fresh(&self) -> Offset {
        self.next_fresh
    }

    /// In flight plus waiting.
    pub fn unresolved(&self) -> usize {
        self.entries.len()
    }

    pub fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.status, Status::InFlight { .. }))
            .count()
    }

    /// Whether taking fresh messages is allowed (the unresolved set has room).
    pub fn wants_fresh(&self) -> bool {
        self.entries.len() < POP_UNRESOLVED_MAX
    }

    /// When the next waiting or in-flight message may be taken, if any, as of `now_ms`. A FIFO
    /// message held behind its group's head is skipped: it becomes takeable only when the head is
    /// resolved (the caller hears of that) or the head's own deadline passes (which is listed), so
    /// a long poll never spins on it.
    pub fn next_due_ms(&self, now_ms: u64) -> Option<u64> {
        self.by_time
            .iter()
            .find(|&&(t, offset)| t > now_ms || self.may_take(offset))
            .map(|&(t, _)| t)
    }

    /// Up to `max` messages already known (redeliveries, held FIFO messages) that may go out
    /// at `now_ms`, made invisible until `now_ms + invisible_ms`.
    pub fn take(&mut self, now_ms: u64, invisible_ms: u64, max: usize) -> Vec<Taken> {
        let mut out = Vec::new();
        let candidates: Vec<Offset> = self
            .by_time
            .range(..=(now_ms, Offset::MAX))
            .map(|&(_, offset)| offset)
            .collect();
        for offset in candidates {
            if out.len() >= max {
                break;
            }
            if self.may_take(offset) {
                out.push(self.hand_out(offset, now_ms, invisible_ms));
            }
        }
        out
    }

    /// Looks at the message at `offset` (at or after `next_fresh`; a gap before it was
    /// compacted away or is a transaction marker and counts as resolved). `wanted` is false
    /// when the group's filter rejects it. Returns the delivery when it may go out now.
    pub fn offer_fresh(
        &mut self,
        offset: Offset,
        group: Option<&str>,
        wanted: bool,
        now_ms: u64,
        invisible_ms: u64,
    ) -> Option<Taken> {
        debug_assert!(
            offset >= self.next_fresh,
            "offered {offset} below {}",
            self.next_fresh
        );
        if offset < self.next_fresh {
            return None;
        }
        if offset > self.next_fresh {
            self.resolve_range(self.next_fresh..offset);
        }
        self.next_fresh = offset + 1;
        if self.resolved.contains(offset) {
            return None; // resolved before a restart: offered again only to rebuild
        }
        if !wanted {
            self.resolve(offset);
            return None;
        }
        let group: Option<Arc<str>> = group.map(Arc::from);
        if let Some(g) = &group {
            self.groups.entry(g.clone()).or_default().insert(offset);
        }
        self.insert(
            offset,
            Entry {
                status: Status::Waiting { due_ms: 0 },
                attempts: 0,
                group,
            },
        );
        self.may_take(offset)
            .then(|| self.hand_out(offset, now_ms, invisible_ms))
    }

    /// Moves `next_fresh` past offsets that no longer exist (the log start moved past them).
    pub fn skip_to(&mut self, offset: Offset) {
        if offset > self.next_fresh {
            self.resolve_range(self.next_fresh..offset);
            self.next_fresh = offset;
        }
    }

    /// The delivery at `offset` is done: never deliver it again.
    pub fn ack(&mut self, offset: Offset, receipt: u64) -> Result<(), PopError> {
        self.check_receipt(offset, receipt)?;
        self.resolve(offset);
        Ok(())
    }

    /// Resolves `offset` whatever its state (dead-lettered by the broker). False if it was not
    /// unresolved.
    pub fn settle(&mut self, offset: Offset) -> bool {
        if !self.entries.contains_key(&offset) {
            return false;
        }
        self.resolve(offset);
        true
    }

    /// Keeps the delivery invisible for `invisible_ms` from `now_ms` (0: visible again at once,
    /// a nack). Returns the new receipt, which replaces the old one.
    pub fn change_invisible(
        &mut self,
        offset: Offset,
        receipt: u64,
        now_ms: u64,
        invisible_ms: u64,
    ) -> Result<u64, PopError> {
        self.check_receipt(offset, receipt)?;
        Ok(self.make_invisible(offset, now_ms, invisible_ms))
    }

    /// Deliveries so far of an unresolved offset.
    pub fn attempts(&self, offset: Offset) -> Option<u32> {
        self.entries.get(&offset).map(|e| e.attempts)
    }

    /// Resolutions since the last call, as ranges for the ack file.
    pub fn take_resolved(&mut self) -> Vec<Range<Offset>> {
        let mut set = RangeSet::new();
        for range in self.newly_resolved.drain(..) {
            set.insert(range);
        }
        set.iter().collect()
    }

    fn check_receipt(&self, offset: Offset, receipt: u64) -> Result<(), PopError> {
        match self.entries.get(&offset).map(|e| &e.status) {
            Some(Status::InFlight { receipt: r, .. }) if *r == receipt => Ok(()),
            _ => Err(PopError::StaleReceipt(offset)),
        }
    }

    fn may_take(&self, offset: Offset) -> bool {
        let Some(entry) = self.entries.get(&offset) else {
            return false;
        };
        let Some(group) = &entry.group else {
            return true;
        };
        let offsets = &self.groups[group];
        // The group's lowest unresolved offset, and nothing else of the group in flight (a
        // redelivery of that lowest one is fine).
        offsets.first() == Some(&offset)
            && offsets
                .iter()
                .skip(1)
                .all(|o| !matches!(self.entries[o].status, Status::InFlight { .. }))
    }

    fn hand_out(&mut self, offset: Offset, now_ms: u64, invisible_ms: u64) -> Taken {
        let receipt = self.make_invisible(offset, now_ms, invisible_ms);
        let entry = self.entries.get_mut(&offset).expect("handed out an entry");
        entry.attempts += 1;
        Taken {
            offset,
            attempt: entry.attempts,
            receipt,
        }
    }

    /// Puts `offset` in flight until `now_ms + invisible_ms` under a new receipt, returned.
    fn make_invisible(&mut self, offset: Offset, now_ms: u64, invisible_ms: u64) -> u64 {
        let receipt = self.next_receipt;
        self.next_receipt += 1;
        let deadline_ms = now_ms.saturating_add(invisible_ms);
        self.set_status(
            offset,
            Status::InFlight {
                deadline_ms,
                receipt,
            },
        );
        receipt
    }

    fn insert(&mut self, offset: Offset, entry: Entry) {
        self.by_time.insert((entry.available_at(), offset));
        self.entries.insert(offset, entry);
    }

    fn set_status(&mut self, offset: Offset, status: Status) {
        let entry = self.entries.get_mut(&offset).expect("status of an entry");
        self.by_time.remove(&(entry.available_at(), offset));
        entry.status = status;
        self.by_time.insert((entry.available_at(), offset));
    }

    fn resolve(&mut self, offset: Offset) {
        if let Some(entry) = self.entries.remove(&offset) {
            self.by_time.remove(&(entry.available_at(), offset));
            if let Some(group) = entry.group {
                let offsets = self.groups.get_mut(&group).expect("group of an entry");
                offsets.remove(&offset);
                if offsets.is_empty() {
                    self.groups.remove(&group);
                }
            }
        }
        self.resolved.insert(offset..offset + 1);
        self.newly_resolved.push(offset..offset + 1);
        self.advance_floor();
    }

    fn resolve_range(&mut self, range: Range<Offset>) {
        if range.is_empty() {
            return;
        }
        debug_assert!(self.entries.range(range.clone()).next().is_none());
        self.resolved.insert(range.clone());
        self.newly_resolved.push(range);
        self.advance_floor();
    }

    fn advance_floor(&mut self) {
        if let Some(range) = self.resolved.range_containing(self.floor) {
            self.floor = range.end;
            self.resolved.remove_below(self.floor);
            // Offsets resolved before a restart need not be offered again.
            self.next_fresh = self.next_fresh.max(self.floor);
        }
    }

    /// Checks the invariants (tests and debug builds).
    pub fn check(&self) {
        assert!(self.floor <= self.next_fresh || self.entries.is_empty());
        assert_eq!(self.by_time.len(), self.entries.len());
        for (&offset, entry) in &self.entries {
            assert!(offset >= self.floor && offset < self.next_fresh);
            assert!(!self.resolved.contains(offset));
            assert!(self.by_time.contains(&(entry.available_at(), offset)));
            if let Some(g) = &entry.group {
                assert!(self.groups[g].contains(&offset));
            }
        }
        let grouped: usize = self.groups.values().map(BTreeSet::len).sum();
        assert_eq!(
            grouped,
            self.entries.values().filter(|e| e.group.is_some()).count()
        );
    }
}
