//! QueueState tests, checked against RabbitMQ's behaviour: `dispatch` (fair dispatch, acks,
//! requeues, basic.get, restore after a crash, the settled prefix), `properties` (random operation
//! sequences against a simple model).

mod dispatch;
mod properties;

use super::*;

/// A queue whose log holds offsets `0..count`.
pub(super) fn queue_with(count: i64) -> QueueState {
    let mut queue = QueueState::new();
    if count > 0 {
        queue.on_append(count - 1);
    }
    queue
}

/// Delivers until nothing more can go out; `(offset, consumer, redelivered)` each.
pub(super) fn drain(queue: &mut QueueState) -> Vec<Delivery> {
    std::iter::from_fn(|| queue.next_delivery(0)).collect()
}

pub(super) fn tag_of(delivery: &Delivery) -> &str {
    delivery.consumer_tag.as_deref().unwrap_or("<get>")
}

/// Folds every change taken so far into `persisted`, as the ack file would.
pub(super) fn persist(queue: &mut QueueState, persisted: &mut PersistedAcks) {
    for change in queue.take_ack_changes() {
        persisted.apply(&change);
    }
}
