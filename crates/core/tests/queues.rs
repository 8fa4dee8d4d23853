//! Queues through the broker's gateway-facing API (what the AMQP gateway calls): publish, consume,
//! ack, requeue, restart, TTL and dead-lettering, overflow. Real files in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use porter_core::message::Message;
use porter_core::queue::api::{ConsumeRequest, ConsumerEvent, CONSUMER_BUFFER_MAX};
use porter_core::routing::{Binding, Destination, Exchange, ExchangeKind, HeaderValue};
use porter_core::VirtualHost;
use tokio::sync::mpsc;

mod queue_support;

use queue_support::*;

fn consume(
    vhost: &VirtualHost,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> mpsc::Receiver<ConsumerEvent> {
    let (sink, events) = mpsc::channel(CONSUMER_BUFFER_MAX);
    vhost
        .queue(queue, 1)
        .unwrap()
        .consume(ConsumeRequest {
            consumer_tag: tag.into(),
            prefetch,
            no_ack: false,
            exclusive: false,
            owner: 1,
            sink,
        })
        .unwrap();
    events
}

#[tokio::test]
async fn acked_messages_never_come_back_and_unacked_come_back_flagged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let vhost = broker.vhost("/").unwrap();
        vhost
            .declare_queue(durable("jobs", &[]), false, 1)
            .await
            .unwrap();
        for i in 0..10 {
            publish(&vhost, "", message("jobs", &format!("m{i}"), true)).await;
        }
        let mut events = consume(&vhost, "jobs", "c1", 0);
        let mut tags = Vec::new();
        for i in 0..10 {
            let d = next(&mut events).await;
            assert_eq!(body(&d), format!("m{i}"));
            assert!(!d.redelivered);
            tags.push(d.queue_tag);
        }
        // Ack the first six; nack one with requeue: it comes straight back, flagged.
        let queue = vhost.queue("jobs", 1).unwrap();
        queue.ack(&tags[..6]).unwrap();
        queue.nack(&tags[6..7], true).unwrap();
        let again = next(&mut events).await;
        assert_eq!(body(&again), "m6");
        assert!(again.redelivered);
        broker.shutdown().await.unwrap();
    }
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    let declared = vhost
        .declare_queue(durable("jobs", &[]), true, 1)
        .await
        .unwrap();
    assert_eq!(declared.message_count, 4, "m6..m9 unacked at the stop");
    let mut events = consume(&vhost, "jobs", "c2", 0);
    let mut got = Vec::new();
    for _ in 0..4 {
        let d = next(&mut events).await;
        assert!(d.redelivered, "{} may have been delivered", body(&d));
        got.push(body(&d));
    }
    assert_eq!(got, ["m6", "m7", "m8", "m9"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn transient_queues_and_messages_do_not_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let vhost = broker.vhost("/").unwrap();
        let mut transient = durable("scratch", &[]);
        transient.durable = false;
        vhost.declare_queue(transient, false, 1).await.unwrap();
        vhost
            .declare_queue(durable("keep", &[]), false, 1)
            .await
            .unwrap();
        publish(&vhost, "", message("keep", "persistent", true)).await;
        publish(&vhost, "", message("keep", "transient", false)).await;
        broker.shutdown().await.unwrap();
    }
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    assert!(vhost.queue("scratch", 1).is_err());
    let queue = vhost.queue("keep", 1).unwrap();
    let first = queue.get(true).await.unwrap().expect("the persistent one");
    assert_eq!(body(&first), "persistent");
    assert!(
        queue.get(true).await.unwrap().is_none(),
        "transient dropped"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn ttl_dead_letters_with_x_death() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_exchange(Exchange::new("dlx", ExchangeKind::Fanout), false)
        .await
        .unwrap();
    vhost
        .declare_queue(durable("retry-later", &[]), false, 1)
        .await
        .unwrap();
    vhost
        .bind(
            Binding::new("dlx", Destination::Queue("retry-later".into()), ""),
            1,
        )
        .await
        .unwrap();
    vhost
        .declare_queue(
            durable(
                "delay",
                &[
                    ("x-message-ttl", HeaderValue::I32(100)),
                    ("x-dead-letter-exchange", HeaderValue::String("dlx".into())),
                ],
            ),
            false,
            1,
        )
        .await
        .unwrap();
    publish(&vhost, "", message("delay", "later", true)).await;
    let mut events = consume(&vhost, "retry-later", "c", 0);
    let d = next(&mut events).await;
    assert_eq!(body(&d), "later");
    let Some(HeaderValue::Array(deaths)) = d.message.properties.header("x-death") else {
        panic!("no x-death: {:?}", d.message.properties);
    };
    let HeaderValue::Table(first) = &deaths[0] else {
        panic!()
    };
    assert_eq!(first["reason"], HeaderValue::String("expired".into()));
    assert_eq!(first["queue"], HeaderValue::String("delay".into()));
    assert_eq!(first["count"], HeaderValue::I64(1));
    assert_eq!(vhost.queue("delay", 1).unwrap().ready(), 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn max_length_overflow_modes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_queue(
            durable("head", &[("x-max-length", HeaderValue::I32(2))]),
            false,
            1,
        )
        .await
        .unwrap();
    vhost
        .declare_queue(
            durable(
                "reject",
                &[
                    ("x-max-length", HeaderValue::I32(2)),
                    ("x-overflow", HeaderValue::String("reject-publish".into())),
                ],
            ),
            false,
            1,
        )
        .await
        .unwrap();
    for i in 0..4 {
        publish(&vhost, "", message("head", &format!("h{i}"), true)).await;
        let outcome = vhost
            .publish("", message("reject", &format!("r{i}"), true))
            .await
            .unwrap();
        assert_eq!(outcome.rejected, i >= 2, "publish {i}");
    }
    let head = vhost.queue("head", 1).unwrap();
    assert_eq!(head.ready(), 2);
    assert_eq!(body(&head.get(true).await.unwrap().unwrap()), "h2");
    let reject = vhost.queue("reject", 1).unwrap();
    assert_eq!(body(&reject.get(true).await.unwrap().unwrap()), "r0");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn prefetch_one_dispatches_fairly_and_cancel_requeues() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_queue(durable("work", &[]), false, 1)
        .await
        .unwrap();
    let mut a = consume(&vhost, "work", "a", 1);
    let mut b = consume(&vhost, "work", "b", 1);
    for i in 0..4 {
        publish(&vhost, "", message("work", &format!("w{i}"), true)).await;
    }
    let da = next(&mut a).await;
    let db = next(&mut b).await;
    // Each holds one; nothing more until an ack.
    assert!(tokio::time::timeout(Duration::from_millis(200), a.recv())
        .await
        .is_err());
    let queue = vhost.queue("work", 1).unwrap();
    queue.ack(&[da.queue_tag]).unwrap();
    let second = next(&mut a).await;
    queue.ack(&[second.queue_tag]).unwrap();
    // b goes away holding db: it is redelivered to a after a's ack.
    queue.cancel("b", true);
    drop(b);
    let _ = db;
    let mut redelivered = false;
    for _ in 0..3 {
        let held = next(&mut a).await;
        redelivered |= held.redelivered;
        queue.ack(&[held.queue_tag]).unwrap();
        if queue.ready() == 0 && queue.unacked() == 0 {
            break;
        }
    }
    assert!(redelivered);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn acked_prefixes_are_reclaimed_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_queue(durable("big", &[]), false, 1)
        .await
        .unwrap();
    let chunk = "x".repeat(64 << 10);
    // 40 MiB: more than two of a queue's 16 MiB segments.
    for _ in 0..640 {
        publish(&vhost, "", message("big", &chunk, true)).await;
    }
    let queue_dir = std::fs::read_dir(dir.path().join("queues"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let segments = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("log"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    };
    assert!(segments(&queue_dir) >= 3);
    let queue = vhost.queue("big", 1).unwrap();
    while let Some(d) = queue.get(false).await.unwrap() {
        queue.ack(&[d.queue_tag]).unwrap();
    }
    // Reclaimed by the queue's maintenance pass (once a second).
    let deadline = std::time::Instant::now() + WAIT;
    while segments(&queue_dir) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "segments not reclaimed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn declare_rules_exclusive_auto_delete_and_server_names() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    use porter_core::CoreError;
    // Server-named, exclusive to connection 7.
    let mut exclusive = durable("", &[]);
    exclusive.exclusive_owner = Some(7);
    exclusive.durable = false;
    let declared = vhost.declare_queue(exclusive, false, 7).await.unwrap();
    assert!(declared.name.starts_with("amq.gen-"), "{}", declared.name);
    assert!(matches!(
        vhost.queue(&declared.name, 8),
        Err(CoreError::Locked(_))
    ));
    // Re-declare with other arguments: 406.
    vhost
        .declare_queue(durable("q", &[]), false, 1)
        .await
        .unwrap();
    let different = durable("q", &[("x-max-length", HeaderValue::I32(1))]);
    let refused = vhost.declare_queue(different, false, 1).await.unwrap_err();
    assert_eq!(refused.kind(), porter_core::error::ErrorKind::Precondition);
    // Exclusive where the queue is not: 405, before any argument is compared.
    let mut exclusive_now = durable("q", &[("x-max-length", HeaderValue::I32(1))]);
    exclusive_now.exclusive_owner = Some(1);
    assert!(matches!(
        vhost.declare_queue(exclusive_now, false, 1).await,
        Err(CoreError::Locked(_))
    ));
    assert!(matches!(
        vhost
            .declare_queue(durable("amq.mine", &[]), false, 1)
            .await,
        Err(CoreError::Forbidden(_))
    ));
    // if-empty refuses while messages wait; purge empties.
    publish(&vhost, "", message("q", "m", true)).await;
    assert!(vhost.delete_queue("q", false, true, 1).await.is_err());
    assert_eq!(vhost.purge_queue("q", 1).await.unwrap(), 1);
    assert_eq!(vhost.delete_queue("q", false, true, 1).await.unwrap(), 0);
    // Connection 7 goes: its exclusive queue goes with it.
    vhost.release_owner(7).await;
    assert!(vhost.queue(&declared.name, 7).is_err());
    // Auto-delete: gone with its last consumer.
    let mut auto = durable("auto", &[]);
    auto.auto_delete = true;
    vhost.declare_queue(auto, false, 1).await.unwrap();
    let events = consume(&vhost, "auto", "only", 0);
    vhost.queue("auto", 1).unwrap().cancel("only", false);
    drop(events);
    let deadline = std::time::Instant::now() + WAIT;
    while vhost.queue("auto", 1).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "auto-delete queue stayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn single_active_consumer_hands_over_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_queue(
            durable(
                "sac",
                &[("x-single-active-consumer", HeaderValue::Bool(true))],
            ),
            false,
            1,
        )
        .await
        .unwrap();
    let mut first = consume(&vhost, "sac", "first", 0);
    let mut second = consume(&vhost, "sac", "second", 0);
    for i in 0..3 {
        publish(&vhost, "", message("sac", &format!("s{i}"), true)).await;
    }
    let queue = vhost.queue("sac", 1).unwrap();
    for _ in 0..3 {
        let d = next(&mut first).await;
        queue.ack(&[d.queue_tag]).unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), second.recv())
            .await
            .is_err()
    );
    queue.cancel("first", false);
    publish(&vhost, "", message("sac", "after", true)).await;
    assert_eq!(body(&next(&mut second).await), "after");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn priorities_deliver_highest_first_and_prefetch_spans_levels() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let vhost = broker.vhost("/").unwrap();
        vhost
            .declare_queue(
                durable("prio", &[("x-max-priority", HeaderValue::U8(5))]),
                false,
                1,
            )
            .await
            .unwrap();
        for (body, priority) in [
            ("low", 0),
            ("mid", 3),
            ("high", 5),
            ("over", 9),
            ("none", 255),
        ] {
            let mut m = message("prio", body, true);
            m.properties.priority = (priority != 255).then_some(priority);
            publish(&vhost, "", m).await;
        }
        broker.shutdown().await.unwrap();
    }
    // After a restart too: each level is its own log.
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    let mut events = consume(&vhost, "prio", "c", 2);
    let queue = vhost.queue("prio", 1).unwrap();
    let a = next(&mut events).await;
    let b = next(&mut events).await;
    // "over" (9) is capped to the queue's maximum, 5, and came after "high".
    assert_eq!([body(&a), body(&b)], ["high", "over"]);
    // Prefetch 2 is across levels: nothing more until an ack.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.recv())
            .await
            .is_err()
    );
    queue.ack(&[a.queue_tag, b.queue_tag]).unwrap();
    let mut rest = Vec::new();
    for _ in 0..3 {
        let d = next(&mut events).await;
        queue.ack(&[d.queue_tag]).unwrap();
        rest.push(body(&d));
    }
    assert_eq!(rest, ["mid", "low", "none"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn per_message_expiration_rejection_dead_letters_and_x_expires() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_exchange(Exchange::new("dead", ExchangeKind::Direct), false)
        .await
        .unwrap();
    vhost
        .declare_queue(durable("graveyard", &[]), false, 1)
        .await
        .unwrap();
    vhost
        .bind(
            Binding::new("dead", Destination::Queue("graveyard".into()), "rip"),
            1,
        )
        .await
        .unwrap();
    let dlx = [
        ("x-dead-letter-exchange", HeaderValue::String("dead".into())),
        (
            "x-dead-letter-routing-key",
            HeaderValue::String("rip".into()),
        ),
    ];
    vhost
        .declare_queue(durable("work", &dlx), false, 1)
        .await
        .unwrap();
    // A per-message expiration on a queue without TTL, behind a message that never expires:
    // RabbitMQ expires at the head only, so it goes once it reaches the head.
    let mut short = message("work", "short-lived", true);
    short.properties.expiration = Some("50".into());
    publish(&vhost, "", short).await;
    publish(&vhost, "", message("work", "rejected", true)).await;
    let queue = vhost.queue("work", 1).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let d = queue.get(false).await.unwrap().expect("the second message");
    assert_eq!(body(&d), "rejected");
    queue.nack(&[d.queue_tag], false).unwrap();
    let mut events = consume(&vhost, "graveyard", "g", 0);
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let d = next(&mut events).await;
        assert_eq!(d.message.routing_key, "rip");
        let reason = d.message.properties.header("x-first-death-reason").cloned();
        reasons.push((body(&d), reason));
    }
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        reasons,
        [
            (
                "rejected".to_string(),
                Some(HeaderValue::String("rejected".into()))
            ),
            (
                "short-lived".to_string(),
                Some(HeaderValue::String("expired".into()))
            ),
        ]
    );
    // x-expires: an unused queue goes by itself.
    vhost
        .declare_queue(
            durable("ephemeral", &[("x-expires", HeaderValue::I32(200))]),
            false,
            1,
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while vhost.queue("ephemeral", 1).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "x-expires queue stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.shutdown().await.unwrap();
}

/// A burst through `publish_batch`: each message routed on its own (a bad one fails alone),
/// every destination queue gets the burst's messages in publish order, a fanned-out message is
/// one shared `Message` in every queue, overflow limits count the burst's earlier messages, and
/// everything confirmed is there after a restart.
#[tokio::test]
async fn publish_batch_routes_each_message_and_keeps_order_per_queue() {
    use porter_core::publish::Publish;
    use porter_core::CoreError;

    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_exchange(Exchange::new("fan", ExchangeKind::Fanout), false)
        .await
        .unwrap();
    for name in ["f1", "f2", "f3"] {
        vhost
            .declare_queue(durable(name, &[]), false, 1)
            .await
            .unwrap();
        vhost
            .bind(Binding::new("fan", Destination::Queue(name.into()), ""), 1)
            .await
            .unwrap();
    }
    vhost
        .declare_queue(
            durable(
                "capped",
                &[
                    ("x-max-length", HeaderValue::I32(2)),
                    ("x-overflow", HeaderValue::String("reject-publish".into())),
                ],
            ),
            false,
            1,
        )
        .await
        .unwrap();
    let to = |exchange: &str, m: Message| Publish {
        exchange: exchange.into(),
        message: m,
    };
    let mut bad = message("", "bad expiration", true);
    bad.properties.expiration = Some("soon".into());
    let burst = vec![
        to("fan", message("", "a", true)),
        to("", message("capped", "c0", true)),
        to("fan", message("", "b", false)),
        to("", bad),
        to("no-such-exchange", message("", "lost", true)),
        to("", message("capped", "c1", true)),
        to("fan", message("", "c", true)),
        to("", message("capped", "c2", true)),
        to("", message("nobody", "unroutable", true)),
    ];
    let outcomes = vhost.publish_batch(burst).await.unwrap();
    assert_eq!(outcomes.len(), 9);
    assert!(matches!(outcomes[3], Err(CoreError::Precondition(_))));
    assert!(outcomes[4].is_err(), "unknown exchange");
    let mut summary = Vec::new();
    for outcome in outcomes.into_iter().filter_map(|o| o.ok()) {
        summary.push((outcome.routed, outcome.rejected));
        outcome.durable.wait().await.unwrap();
    }
    assert_eq!(
        summary,
        [
            (true, false),  // a
            (true, false),  // c0
            (true, false),  // b
            (true, false),  // c1
            (true, false),  // c
            (true, true),   // c2: the burst's c0 and c1 filled the queue
            (false, false), // no queue named "nobody"
        ]
    );
    let mut firsts = Vec::new();
    for name in ["f1", "f2", "f3"] {
        let queue = vhost.queue(name, 1).unwrap();
        let mut got = Vec::new();
        while let Some(d) = queue.get(true).await.unwrap() {
            if got.is_empty() {
                firsts.push(d.message.clone());
            }
            got.push(body(&d));
        }
        assert_eq!(got, ["a", "b", "c"], "{name}");
    }
    assert!(
        Arc::ptr_eq(&firsts[0], &firsts[1]) && Arc::ptr_eq(&firsts[1], &firsts[2]),
        "a fanned-out message is shared, not copied per queue"
    );
    let capped = vhost.queue("capped", 1).unwrap();
    assert_eq!(capped.ready(), 2);
    broker.shutdown().await.unwrap();
    drop((vhost, capped, broker));

    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    let capped = vhost.queue("capped", 1).unwrap();
    let mut got = Vec::new();
    while let Some(d) = capped.get(true).await.unwrap() {
        got.push(body(&d));
    }
    assert_eq!(got, ["c0", "c1"]);
    broker.shutdown().await.unwrap();
}

/// `reject-publish-dlx`: the refused message is dead-lettered at once, though nothing else
/// happens on the queue afterwards (no consumer, no timer: only the append asks for a turn).
#[tokio::test]
async fn reject_publish_dlx_dead_letters_without_further_activity() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_queue(durable("overflowed", &[]), false, 1)
        .await
        .unwrap();
    vhost
        .declare_queue(
            durable(
                "capped",
                &[
                    ("x-max-length", HeaderValue::I32(1)),
                    (
                        "x-overflow",
                        HeaderValue::String("reject-publish-dlx".into()),
                    ),
                    ("x-dead-letter-exchange", HeaderValue::String("".into())),
                    (
                        "x-dead-letter-routing-key",
                        HeaderValue::String("overflowed".into()),
                    ),
                ],
            ),
            false,
            1,
        )
        .await
        .unwrap();
    publish(&vhost, "", message("capped", "kept", true)).await;
    let outcome = vhost
        .publish("", message("capped", "refused", true))
        .await
        .unwrap();
    assert!(outcome.rejected);
    let mut events = consume(&vhost, "overflowed", "c", 0);
    assert_eq!(body(&next(&mut events).await), "refused");
    broker.shutdown().await.unwrap();
}
