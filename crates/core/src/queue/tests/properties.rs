//! Random operation sequences against a simple model: every appended offset is in exactly one of
//! settled / ready / unacked, an acked offset is never delivered again, tags are unique, and a
//! message delivered before comes back flagged redelivered, also across a crash.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const CONSUMER_TAGS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Op {
    Append(i64),
    AddConsumer {
        consumer: usize,
        prefetch: u16,
        no_ack: bool,
    },
    RemoveConsumer(usize),
    Deliver,
    Get,
    Ack {
        pick: usize,
        multiple: bool,
    },
    Nack {
        pick: usize,
        multiple: bool,
        requeue: bool,
    },
    Reject {
        pick: usize,
        requeue: bool,
    },
    Recover(Option<usize>),
    UnknownTag,
    CrashAndRestore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..4).prop_map(Op::Append),
        2 => (0..3usize, 0u16..3, prop::bool::weighted(0.2)).prop_map(|(consumer, prefetch, no_ack)| {
            Op::AddConsumer { consumer, prefetch, no_ack }
        }),
        1 => (0..3usize).prop_map(Op::RemoveConsumer),
        4 => Just(Op::Deliver),
        1 => Just(Op::Get),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, multiple)| Op::Ack { pick, multiple }),
        2 => (any::<usize>(), any::<bool>(), any::<bool>())
            .prop_map(|(pick, multiple, requeue)| Op::Nack { pick, multiple, requeue }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, requeue)| Op::Reject { pick, requeue }),
        1 => prop::option::of(0..3usize).prop_map(Op::Recover),
        1 => Just(Op::UnknownTag),
        1 => Just(Op::CrashAndRestore),
    ]
}

/// What the model knows: offsets appended, settled, outstanding by tag (with owner), and every
/// offset ever handed out.
#[derive(Default)]
struct Model {
    log_end: i64,
    settled: BTreeSet<i64>,
    outstanding: BTreeMap<u64, (i64, Option<String>)>,
    consumers: BTreeSet<String>,
    delivered_ever: BTreeSet<i64>,
    tags_seen: BTreeSet<u64>,
    persisted: PersistedAcks,
}

impl Model {
    fn pick(&self, pick: usize) -> Option<u64> {
        let tags: Vec<u64> = self.outstanding.keys().copied().collect();
        (!tags.is_empty()).then(|| tags[pick % tags.len()])
    }

    /// The offsets `tag` with `multiple` designates, ascending, removed from `outstanding`.
    fn take(&mut self, tag: u64, multiple: bool) -> Vec<i64> {
        let owner = self.outstanding[&tag].1.clone();
        let tags: Vec<u64> = if multiple {
            self.outstanding
                .range(..=tag)
                .filter(|(_, (_, o))| *o == owner)
                .map(|(&t, _)| t)
                .collect()
        } else {
            vec![tag]
        };
        let mut offsets: Vec<i64> = tags
            .iter()
            .map(|t| self.outstanding.remove(t).unwrap().0)
            .collect();
        offsets.sort_unstable();
        offsets
    }

    fn on_delivery(&mut self, d: &Delivery, no_ack: bool) -> Result<(), TestCaseError> {
        prop_assert!(d.offset < self.log_end, "offset {} not appended", d.offset);
        prop_assert!(
            !self.settled.contains(&d.offset),
            "settled {} delivered",
            d.offset
        );
        prop_assert!(
            self.outstanding.values().all(|(o, _)| *o != d.offset),
            "{} delivered while unacked",
            d.offset
        );
        prop_assert!(self.tags_seen.insert(d.delivery_tag), "tag reused");
        if self.delivered_ever.contains(&d.offset) {
            prop_assert!(d.redelivered, "{} redelivered without the flag", d.offset);
        }
        self.delivered_ever.insert(d.offset);
        if no_ack {
            self.settled.insert(d.offset);
        } else {
            let owner = d.consumer_tag.as_deref().map(str::to_string);
            self.outstanding.insert(d.delivery_tag, (d.offset, owner));
        }
        Ok(())
    }

    fn check(&mut self, queue: &mut QueueState) -> Result<(), TestCaseError> {
        queue.check_invariants();
        for change in queue.take_ack_changes() {
            self.persisted.apply(&change);
        }
        prop_assert_eq!(queue.unacked(), self.outstanding.len() as u64);
        prop_assert_eq!(
            queue.ready() + queue.unacked() + self.settled.len() as u64,
            self.log_end as u64
        );
        let prefix = (0..).find(|o| !self.settled.contains(o)).unwrap();
        prop_assert_eq!(queue.settled_prefix(), prefix);
        Ok(())
    }
}

fn apply(queue: &mut QueueState, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Append(count) => {
            model.log_end += count;
            queue.on_append(model.log_end - 1);
        }
        Op::AddConsumer {
            consumer,
            prefetch,
            no_ack,
        } => {
            let tag = CONSUMER_TAGS[consumer];
            let result = queue.add_consumer(tag, prefetch, no_ack);
            prop_assert_eq!(result.is_ok(), model.consumers.insert(tag.to_string()));
            if result.is_ok() {
                NO_ACK.with(|n| n.borrow_mut().insert(tag.to_string(), no_ack));
            }
        }
        Op::RemoveConsumer(consumer) => {
            let tag = CONSUMER_TAGS[consumer];
            let result = queue.remove_consumer(tag);
            prop_assert_eq!(result.is_ok(), model.consumers.remove(tag));
            if let Ok(requeued) = result {
                let mut expected: Vec<i64> = Vec::new();
                model.outstanding.retain(|_, (offset, owner)| {
                    let mine = owner.as_deref() == Some(tag);
                    if mine {
                        expected.push(*offset);
                    }
                    !mine
                });
                expected.sort_unstable();
                prop_assert_eq!(requeued, expected);
            }
        }
        Op::Deliver => {
            while let Some(d) = queue.next_delivery(0) {
                let tag = d.consumer_tag.as_deref().unwrap().to_string();
                let no_ack = NO_ACK.with(|n| n.borrow()[&tag]);
                model.on_delivery(&d, no_ack)?;
            }
        }
        Op::Get => {
            if let Some(d) = queue.get(0) {
                prop_assert!(d.consumer_tag.is_none());
                model.on_delivery(&d, false)?;
            }
        }
        Op::Ack { pick, multiple } => {
            if let Some(tag) = model.pick(pick) {
                let outcome = queue.ack(tag, multiple).unwrap();
                let expected = model.take(tag, multiple);
                model.settled.extend(&expected);
                prop_assert_eq!(outcome.acked, expected);
            }
        }
        Op::Nack {
            pick,
            multiple,
            requeue,
        } => {
            if let Some(tag) = model.pick(pick) {
                let outcome = queue.nack(tag, multiple, requeue).unwrap();
                let expected = model.take(tag, multiple);
                if requeue {
                    prop_assert_eq!(outcome.requeued, expected);
                } else {
                    model.settled.extend(&expected);
                    prop_assert_eq!(outcome.dead, expected);
                }
            }
        }
        Op::Reject { pick, requeue } => {
            if let Some(tag) = model.pick(pick) {
                let outcome = queue.reject(tag, requeue).unwrap();
                let expected = model.take(tag, false);
                if requeue {
                    prop_assert_eq!(outcome.requeued, expected);
                } else {
                    model.settled.extend(&expected);
                    prop_assert_eq!(outcome.dead, expected);
                }
            }
        }
        Op::Recover(consumer) => {
            let owner = consumer.map(|c| CONSUMER_TAGS[c]);
            let outcome = queue.recover(owner, true).unwrap();
            let mut expected: Vec<i64> = Vec::new();
            model.outstanding.retain(|_, (offset, o)| {
                let mine = o.as_deref() == owner;
                if mine {
                    expected.push(*offset);
                }
                !mine
            });
            expected.sort_unstable();
            prop_assert_eq!(outcome.requeued, expected);
        }
        Op::UnknownTag => {
            let tag = model.tags_seen.last().map_or(1, |t| t + 1) + 100;
            prop_assert_eq!(
                queue.ack(tag, true),
                Err(QueueError::UnknownDeliveryTag(tag))
            );
        }
        Op::CrashAndRestore => {
            // Only what was persisted survives; `check` folds the changes after every operation,
            // as a caller writing them before replying would.
            *queue = QueueState::restore(&model.persisted, 0, model.log_end).unwrap();
            model.outstanding.clear();
            model.consumers.clear();
            // Tags are unique per QueueState; the channels that held the old ones are gone.
            model.tags_seen.clear();
        }
    }
    model.check(queue)?;
    Ok(())
}

thread_local! {
    static NO_ACK: std::cell::RefCell<BTreeMap<String, bool>> = const { std::cell::RefCell::new(BTreeMap::new()) };
}

proptest! {
    #[test]
    fn random_operations_keep_every_offset_in_exactly_one_state(
        ops in prop::collection::vec(op(), 0..80)
    ) {
        NO_ACK.with(|n| n.borrow_mut().clear());
        let mut queue = QueueState::new();
        let mut model = Model::default();
        for op in &ops {
            apply(&mut queue, &mut model, op)?;
        }
        // Eventually: one ack-ing consumer drains the rest and everything ends settled.
        for consumer in 0..CONSUMER_TAGS.len() {
            apply(&mut queue, &mut model, &Op::RemoveConsumer(consumer))?;
        }
        let leftover: Vec<u64> = model.outstanding.keys().copied().collect();
        for tag in leftover {
            queue.ack(tag, false).unwrap();
            let offsets = model.take(tag, false);
            model.settled.extend(offsets);
        }
        queue.add_consumer("final", 0, false).unwrap();
        NO_ACK.with(|n| n.borrow_mut().insert("final".into(), false));
        while let Some(d) = queue.next_delivery(0) {
            model.on_delivery(&d, false)?;
            queue.ack(d.delivery_tag, false).unwrap();
            model.take(d.delivery_tag, false);
            model.settled.insert(d.offset);
        }
        model.check(&mut queue)?;
        prop_assert_eq!(queue.ready(), 0);
        prop_assert_eq!(queue.settled_prefix(), model.log_end);
    }
}
