//! Table tests, one per rule.

use super::*;
use crate::queue::limits::DELIVERED_WATERMARK_STEP;

#[test]
fn fair_dispatch_with_prefetch_one_alternates_and_waits_for_acks() {
    let mut queue = queue_with(4);
    queue.add_consumer("a", 1, false).unwrap();
    queue.add_consumer("b", 1, false).unwrap();
    let first = drain(&mut queue);
    let got: Vec<_> = first.iter().map(|d| (d.offset, tag_of(d))).collect();
    assert_eq!(got, [(0, "a"), (1, "b")]);
    assert_eq!(
        (queue.ready(), queue.unacked(), queue.consumers()),
        (2, 2, 2)
    );

    // b acks first: only b has room, so b gets the next one even though it is a's turn.
    queue.ack(first[1].delivery_tag, false).unwrap();
    let next = drain(&mut queue);
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].offset, tag_of(&next[0])), (2, "b"));
    queue.ack(first[0].delivery_tag, false).unwrap();
    let next = drain(&mut queue);
    assert_eq!((next[0].offset, tag_of(&next[0])), (3, "a"));
    assert!(first.iter().chain(&next).all(|d| !d.redelivered));
}

#[test]
fn delivery_tags_increase_from_one_across_consumers_and_get() {
    let mut queue = queue_with(3);
    queue.add_consumer("a", 0, false).unwrap();
    let d1 = queue.next_delivery(0).unwrap();
    let g = queue.get(0).unwrap();
    let d2 = queue.next_delivery(0).unwrap();
    assert_eq!(
        [d1.delivery_tag, g.delivery_tag, d2.delivery_tag],
        [1, 2, 3]
    );
}

#[test]
fn multiple_ack_settles_that_consumers_tags_up_to_the_given_one() {
    let mut queue = queue_with(6);
    queue.add_consumer("a", 0, false).unwrap();
    queue.add_consumer("b", 0, false).unwrap();
    let d = drain(&mut queue);
    // a holds 0, 2, 4 (tags 1, 3, 5); b holds 1, 3, 5.
    let outcome = queue.ack(d[2].delivery_tag, true).unwrap();
    assert_eq!(outcome.acked, [0, 2]);
    assert_eq!(queue.unacked(), 4);
    assert_eq!(queue.settled_prefix(), 1);
    let outcome = queue.ack(d[5].delivery_tag, true).unwrap();
    assert_eq!(outcome.acked, [1, 3, 5]);
    assert_eq!(queue.settled_prefix(), 4);
    // An acked tag is unknown from then on (406 PRECONDITION_FAILED).
    assert_eq!(
        queue.ack(d[0].delivery_tag, false),
        Err(QueueError::UnknownDeliveryTag(d[0].delivery_tag))
    );
    assert_eq!(
        queue.ack(999, true),
        Err(QueueError::UnknownDeliveryTag(999))
    );
}

#[test]
fn nack_requeue_redelivers_first_with_the_flag_and_a_new_tag() {
    let mut queue = queue_with(4);
    queue.add_consumer("a", 2, false).unwrap();
    let d = drain(&mut queue);
    assert_eq!(d.iter().map(|d| d.offset).collect::<Vec<_>>(), [0, 1]);
    let outcome = queue.nack(d[1].delivery_tag, true, true).unwrap();
    assert_eq!(outcome.requeued, [0, 1]);
    assert_eq!((queue.ready(), queue.unacked()), (4, 0));
    let again = drain(&mut queue);
    let got: Vec<_> = again.iter().map(|d| (d.offset, d.redelivered)).collect();
    assert_eq!(got, [(0, true), (1, true)]);
    assert!(again.iter().all(|r| r.delivery_tag > d[1].delivery_tag));
    queue.ack(again[0].delivery_tag, false).unwrap();
    // Requeued offsets are gone; fresh ones follow without the flag.
    assert_eq!(drain(&mut queue)[0].offset, 2);
    assert!(!queue.next_delivery(0).is_some_and(|d| d.redelivered));
}

#[test]
fn reject_without_requeue_reports_the_dead_and_settles_them() {
    let mut queue = queue_with(3);
    queue.add_consumer("a", 0, false).unwrap();
    let d = drain(&mut queue);
    let outcome = queue.reject(d[1].delivery_tag, false).unwrap();
    assert_eq!(outcome.dead, [1]);
    assert!(outcome.acked.is_empty() && outcome.requeued.is_empty());
    let outcome = queue.nack(d[2].delivery_tag, true, false).unwrap();
    assert_eq!(outcome.dead, [0, 2]);
    assert_eq!((queue.ready(), queue.unacked()), (0, 0));
    assert_eq!(queue.settled_prefix(), 3);
    let settled: Vec<_> = queue
        .take_ack_changes()
        .into_iter()
        .filter(|c| matches!(c, AckChange::Settled(_)))
        .collect();
    assert_eq!(
        settled,
        [
            AckChange::Settled(1..2),
            AckChange::Settled(0..1),
            AckChange::Settled(2..3)
        ]
    );
}

#[test]
fn removing_a_consumer_requeues_its_unacked_for_the_others() {
    let mut queue = queue_with(5);
    queue.add_consumer("a", 2, false).unwrap();
    queue.add_consumer("b", 1, false).unwrap();
    let d = drain(&mut queue);
    let got: Vec<_> = d.iter().map(|d| (d.offset, tag_of(d))).collect();
    assert_eq!(got, [(0, "a"), (1, "b"), (2, "a")]);
    assert_eq!(queue.remove_consumer("a").unwrap(), [0, 2]);
    assert_eq!(
        queue.remove_consumer("a"),
        Err(QueueError::UnknownConsumer("a".into()))
    );
    queue.ack(d[1].delivery_tag, false).unwrap();
    let next = queue.next_delivery(0).unwrap();
    assert_eq!(
        (next.offset, tag_of(&next), next.redelivered),
        (0, "b", true)
    );
    // a's old tags are gone.
    assert!(queue.ack(d[0].delivery_tag, false).is_err());
}

#[test]
fn consumer_tags_are_unique_and_no_ack_consumers_settle_on_delivery() {
    let mut queue = queue_with(3);
    queue.add_consumer("a", 1, true).unwrap();
    assert_eq!(
        queue.add_consumer("a", 1, false),
        Err(QueueError::ConsumerTagInUse("a".into()))
    );
    // no_ack ignores prefetch.
    let d = drain(&mut queue);
    assert_eq!(d.len(), 3);
    assert_eq!((queue.unacked(), queue.settled_prefix()), (0, 3));
    assert!(queue.ack(d[0].delivery_tag, false).is_err());
}

#[test]
fn basic_get_delivers_outside_consumers_and_needs_an_ack() {
    let mut queue = queue_with(2);
    let g = queue.get(7).unwrap();
    assert_eq!(
        (g.offset, g.consumer_tag.clone(), g.redelivered),
        (0, None, false)
    );
    assert_eq!(queue.oldest_unacked_ms(), Some(7));
    // A get delivery requeued by recover comes back flagged, to the next get.
    assert_eq!(queue.recover(None, true).unwrap().requeued, [0]);
    assert_eq!(
        queue.recover(None, false),
        Err(QueueError::RecoverWithoutRequeue)
    );
    let g = queue.get(8).unwrap();
    assert_eq!((g.offset, g.redelivered), (0, true));
    queue.ack(g.delivery_tag, false).unwrap();
    assert_eq!(queue.get(9).unwrap().offset, 1);
    assert_eq!(queue.get(9), None); // basic.get-empty
}

#[test]
fn settled_prefix_moves_only_over_a_contiguous_settled_run() {
    let mut queue = queue_with(4);
    queue.add_consumer("a", 0, false).unwrap();
    let d = drain(&mut queue);
    assert_eq!(queue.settled_prefix(), 0);
    queue.ack(d[1].delivery_tag, false).unwrap();
    queue.ack(d[3].delivery_tag, false).unwrap();
    assert_eq!(queue.settled_prefix(), 0);
    queue.ack(d[0].delivery_tag, false).unwrap();
    assert_eq!(queue.settled_prefix(), 2);
    queue.reject(d[2].delivery_tag, false).unwrap();
    assert_eq!(queue.settled_prefix(), 4);
    // Reclaiming the log's front keeps the range set small and the prefix where it was.
    queue.on_log_start(4);
    assert_eq!(queue.settled_prefix(), 4);
}

#[test]
fn restore_after_a_crash_redelivers_unacked_flagged_and_never_the_acked() {
    let mut persisted = PersistedAcks::default();
    let mut queue = queue_with(6);
    queue.add_consumer("a", 0, false).unwrap();
    let d: Vec<_> = (0..4).map(|_| queue.next_delivery(0).unwrap()).collect();
    queue.ack(d[0].delivery_tag, false).unwrap();
    queue.ack(d[2].delivery_tag, false).unwrap();
    persist(&mut queue, &mut persisted);
    drop(queue); // crash: offsets 1 and 3 were unacked, 4 and 5 never delivered

    let mut queue = QueueState::restore(&persisted, 0, 6).unwrap();
    assert_eq!(
        (queue.ready(), queue.unacked(), queue.consumers()),
        (4, 0, 0)
    );
    queue.add_consumer("b", 0, false).unwrap();
    let again: Vec<_> = drain(&mut queue)
        .iter()
        .map(|d| (d.offset, d.redelivered))
        .collect();
    // The watermark runs ahead by DELIVERED_WATERMARK_STEP: 4 and 5 may have been delivered.
    assert_eq!(again, [(1, true), (3, true), (4, true), (5, true)]);
    assert_eq!(queue.settled_prefix(), 1);
}

#[test]
fn restore_leaves_messages_past_the_watermark_unflagged() {
    let persisted = PersistedAcks {
        settled: {
            let mut s = RangeSet::new();
            s.insert(0..2);
            s
        },
        delivered_watermark: 3,
    };
    let mut queue = QueueState::restore(&persisted, 0, 5).unwrap();
    queue.add_consumer("a", 0, false).unwrap();
    let again: Vec<_> = drain(&mut queue)
        .iter()
        .map(|d| (d.offset, d.redelivered))
        .collect();
    assert_eq!(again, [(2, true), (3, false), (4, false)]);
}

#[test]
fn restore_refuses_state_no_run_could_write() {
    let mut settled = RangeSet::new();
    settled.insert(0..10);
    let persisted = PersistedAcks {
        settled,
        delivered_watermark: 10,
    };
    assert!(matches!(
        QueueState::restore(&persisted, 0, 5),
        Err(QueueError::CorruptAckState { .. })
    ));
    let persisted = PersistedAcks {
        settled: RangeSet::new(),
        delivered_watermark: i64::MAX,
    };
    assert!(matches!(
        QueueState::restore(&persisted, 0, 1 << 40),
        Err(QueueError::CorruptAckState { .. })
    ));
}

#[test]
fn unacked_limit_pauses_delivery() {
    let count = limits::UNACKED_PER_QUEUE_MAX as i64 + 1;
    let mut queue = queue_with(count);
    queue.add_consumer("a", 0, false).unwrap();
    let mut delivered = 0;
    while let Some(_d) = queue.next_delivery(0) {
        delivered += 1;
        if delivered > limits::UNACKED_PER_QUEUE_MAX {
            break;
        }
    }
    assert_eq!(delivered, limits::UNACKED_PER_QUEUE_MAX);
    assert_eq!(queue.get(0), None);
    queue.ack(1, false).unwrap();
    assert!(queue.next_delivery(0).is_some());
}

#[test]
fn a_reserved_watermark_spares_the_first_deliveries_their_fsync() {
    let mut queue = QueueState::new();
    assert_eq!(
        queue.reserve_watermark(),
        Some(AckChange::DeliveredWatermark(DELIVERED_WATERMARK_STEP))
    );
    assert_eq!(
        queue.reserve_watermark(),
        None,
        "room left: nothing to reserve"
    );
    queue.on_append(DELIVERED_WATERMARK_STEP);
    queue.add_consumer("a", 0, false).unwrap();
    let first: Vec<_> = (0..DELIVERED_WATERMARK_STEP)
        .map(|_| queue.next_delivery(0).unwrap())
        .collect();
    assert_eq!(first.len() as i64, DELIVERED_WATERMARK_STEP);
    assert!(
        queue.take_ack_changes().is_empty(),
        "deliveries within the reserved watermark need no new one"
    );
    // The next delivery passes it: a new watermark, fsynced before that delivery is sent.
    queue.next_delivery(0).unwrap();
    assert_eq!(
        queue.take_ack_changes(),
        [AckChange::DeliveredWatermark(2 * DELIVERED_WATERMARK_STEP)]
    );
}

#[test]
fn message_counts_add_up_what_came_in_went_out_and_was_acked() {
    let mut queue = queue_with(4);
    queue.add_consumer("a", 0, false).unwrap();
    let first = drain(&mut queue);
    assert_eq!(first.len(), 4);
    queue.ack(first[1].delivery_tag, true).unwrap();
    queue.nack(first[2].delivery_tag, false, true).unwrap();
    let again = drain(&mut queue);
    assert!(again[0].redelivered);
    let counts = queue.counts();
    assert_eq!(
        (
            counts.published,
            counts.delivered,
            counts.redelivered,
            counts.acked
        ),
        (4, 5, 1, 2)
    );
}
