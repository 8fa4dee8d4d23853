//! Model-based tests of [`PopState`]: random appends, receives, acks, nacks, clock moves and
//! restarts, checked against what a consumer group may observe.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::state::{PopState, Taken};
use crate::queue::RangeSet;

#[derive(Clone, Debug)]
enum Op {
    /// Messages with (FIFO group among 3 or none, wanted by the filter).
    Append(Vec<(Option<u8>, bool)>),
    Receive(usize),
    Ack(usize),
    Nack(usize),
    Extend(usize),
    Tick(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec((prop::option::of(0u8..3), prop::bool::weighted(0.85)), 1..6).prop_map(Op::Append),
        4 => (1usize..5).prop_map(Op::Receive),
        4 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Nack),
        1 => any::<usize>().prop_map(Op::Extend),
        2 => (0u64..3_000).prop_map(Op::Tick),
        1 => Just(Op::Restart),
    ]
}

const INVISIBLE_MS: u64 = 1_000;

struct Harness {
    state: PopState,
    /// The log: offset → (group, wanted).
    log: Vec<(Option<u8>, bool)>,
    /// What the ack file holds.
    persisted: RangeSet,
    now: u64,
    /// Deliveries the consumer holds: offset → receipt.
    holding: BTreeMap<u64, u64>,
    acked: BTreeSet<u64>,
}

impl Harness {
    fn persist(&mut self) {
        for range in self.state.take_resolved() {
            self.persisted.insert(range);
        }
    }

    /// Offers fresh messages the way the service does, until `max` are out.
    fn receive(&mut self, max: usize) -> Vec<Taken> {
        let mut out = self.state.take(self.now, INVISIBLE_MS, max);
        while out.len() < max && self.state.wants_fresh() {
            let next = self.state.next_fresh();
            let Some(&(group, wanted)) = self.log.get(next as usize) else {
                break;
            };
            let group = group.map(|g| format!("g{g}"));
            if let Some(t) =
                self.state
                    .offer_fresh(next, group.as_deref(), wanted, self.now, INVISIBLE_MS)
            {
                out.push(t);
            }
        }
        self.persist();
        for t in &out {
            let (group, wanted) = self.log[t.offset as usize];
            assert!(wanted, "a filtered-out message was delivered");
            assert!(
                !self.acked.contains(&(t.offset as u64)),
                "an acked message came back"
            );
            if let Some(g) = group {
                // FIFO: every earlier message of the group is acked.
                for (o, (g2, w2)) in self.log.iter().enumerate().take(t.offset as usize) {
                    if *g2 == Some(g) && *w2 {
                        assert!(
                            self.acked.contains(&(o as u64)),
                            "offset {} of group {g} went out before {o}",
                            t.offset
                        );
                    }
                }
            }
            self.holding.insert(t.offset as u64, t.receipt);
        }
        out
    }

    fn pick(&self, i: usize) -> Option<(u64, u64)> {
        if self.holding.is_empty() {
            return None;
        }
        self.holding
            .iter()
            .nth(i % self.holding.len())
            .map(|(&o, &r)| (o, r))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn a_group_sees_every_wanted_message_once_acked_and_fifo_in_order(ops in prop::collection::vec(op(), 1..80)) {
        let mut h = Harness {
            state: PopState::restore(0, []),
            log: Vec::new(),
            persisted: RangeSet::new(),
            now: 1_000_000,
            holding: BTreeMap::new(),
            acked: BTreeSet::new(),
        };
        for op in ops {
            match op {
                Op::Append(messages) => h.log.extend(messages),
                Op::Receive(max) => { h.receive(max); }
                Op::Ack(i) => if let Some((offset, receipt)) = h.pick(i) {
                    h.holding.remove(&offset);
                    if h.state.ack(offset as i64, receipt).is_ok() {
                        h.acked.insert(offset);
                    }
                    h.persist();
                },
                Op::Nack(i) => if let Some((offset, receipt)) = h.pick(i) {
                    h.holding.remove(&offset);
                    let _ = h.state.change_invisible(offset as i64, receipt, h.now, 0);
                },
                Op::Extend(i) => if let Some((offset, receipt)) = h.pick(i) {
                    if let Ok(new) = h.state.change_invisible(offset as i64, receipt, h.now, INVISIBLE_MS) {
                        h.holding.insert(offset, new);
                    }
                },
                Op::Tick(ms) => h.now += ms,
                Op::Restart => {
                    h.state = PopState::restore(0, h.persisted.iter());
                    h.holding.clear();
                }
            }
            h.state.check();
        }
        // Drain: a patient consumer acks everything it gets.
        h.holding.clear();
        h.now += 10 * INVISIBLE_MS;
        for _ in 0..(h.log.len() * 2 + 2) {
            let got = h.receive(8);
            for t in got {
                h.state.ack(t.offset, t.receipt).expect("a fresh handle acks");
                h.acked.insert(t.offset as u64);
                h.holding.remove(&(t.offset as u64));
            }
            h.persist();
        }
        let wanted: BTreeSet<u64> = h.log.iter().enumerate().filter(|(_, (_, w))| *w).map(|(o, _)| o as u64).collect();
        prop_assert_eq!(&h.acked, &wanted);
        prop_assert_eq!(h.state.floor(), h.log.len() as i64);
        prop_assert_eq!(h.state.unresolved(), 0);
    }
}

#[test]
fn a_stale_receipt_is_refused_after_redelivery() {
    let mut state = PopState::restore(0, []);
    let first = state.offer_fresh(0, None, true, 0, 100).unwrap();
    let again = state.take(200, 100, 10);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    assert!(state.ack(0, first.receipt).is_err());
    assert!(state.ack(0, again[0].receipt).is_ok());
    assert_eq!(state.floor(), 1);
}

#[test]
fn a_fifo_group_waits_for_its_previous_message() {
    let mut state = PopState::restore(0, []);
    let a0 = state.offer_fresh(0, Some("a"), true, 0, 100).unwrap();
    assert!(
        state.offer_fresh(1, Some("a"), true, 0, 100).is_none(),
        "held behind 0"
    );
    assert!(
        state.offer_fresh(2, Some("b"), true, 0, 100).is_some(),
        "another group goes on"
    );
    assert!(state.take(0, 100, 10).is_empty());
    // A long poll waits for the head's deadline, not for the held message it could never take.
    assert_eq!(state.next_due_ms(0), Some(100));
    state.ack(0, a0.receipt).unwrap();
    let next = state.take(0, 100, 10);
    assert_eq!(next.iter().map(|t| t.offset).collect::<Vec<_>>(), vec![1]);
}
