//! Business messaging through the core API, as every gateway reaches it: topic messages
//! published with tags and keys, pop consumption by a consumer group (filters, acks across a
//! restart, dead letters), and lookup by key and id.

#[allow(dead_code)] // the helpers other tests use
mod common;

use std::time::Duration;

use bytes::Bytes;
use porter_core::lookup::{lookup, LookupBy};
use porter_core::pop::{dead_letter_topic, PopConsumers, ReceiveOptions};
use porter_core::topic_message::TopicMessage;
use porter_core::topic_publish::{publish, PartitionChoice};
use porter_core::{Broker, TopicConfig};

use common::config;

fn message(id: &str, tag: &str, key: &str) -> (PartitionChoice, TopicMessage) {
    (
        PartitionChoice::Auto,
        TopicMessage {
            message_id: id.into(),
            tag: Some(tag.into()),
            keys: vec![key.into()],
            body: Bytes::copy_from_slice(id.as_bytes()),
            ..Default::default()
        },
    )
}

fn options(max: usize, invisible_ms: u64) -> ReceiveOptions {
    ReceiveOptions {
        max_messages: max,
        invisible_ms,
        long_poll: Duration::ZERO,
        max_attempts: 3,
    }
}

#[tokio::test]
async fn a_group_pops_filters_acks_and_keeps_its_progress_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(config(dir.path())).unwrap();
        let topic = broker
            .create_topic("orders", 2, TopicConfig::default())
            .await
            .unwrap();
        let sent: Vec<_> = (0..6)
            .map(|i| {
                message(
                    &format!("m{i}"),
                    if i % 2 == 0 { "paid" } else { "new" },
                    &format!("order-{i}"),
                )
            })
            .collect();
        publish(&topic, &sent).await.unwrap();
        let pop = PopConsumers::new(broker.clone());
        let paid = |m: &TopicMessage| m.tag.as_deref() == Some("paid");
        let got = pop
            .receive("billing", &topic, &paid, options(10, 60_000))
            .await
            .unwrap();
        let mut ids: Vec<_> = got
            .iter()
            .map(|r| r.message.message.message_id.clone())
            .collect();
        ids.sort();
        assert_eq!(ids, ["m0", "m2", "m4"]);
        // Ack two; the third stays in flight when the broker dies.
        for r in &got[..2] {
            pop.ack("billing", &topic, &r.receipt.to_string())
                .await
                .unwrap();
        }
        assert!(pop
            .receive("billing", &topic, &paid, options(10, 60_000))
            .await
            .unwrap()
            .is_empty());
        // No shutdown: a crash.
    }
    let broker = Broker::open(config(dir.path())).unwrap();
    let topic = broker.topic("orders").unwrap();
    let pop = PopConsumers::new(broker.clone());
    let paid = |m: &TopicMessage| m.tag.as_deref() == Some("paid");
    let again = pop
        .receive("billing", &topic, &paid, options(10, 60_000))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "only the unacked one comes back");
    // Another group has progress of its own.
    let all = pop
        .receive("audit", &topic, &|_| true, options(10, 60_000))
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
}

#[tokio::test]
async fn a_message_past_its_attempts_goes_to_the_dead_letter_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    let topic = broker
        .create_topic("jobs", 1, TopicConfig::default())
        .await
        .unwrap();
    publish(&topic, &[message("poison", "t", "k")])
        .await
        .unwrap();
    let pop = PopConsumers::new(broker.clone());
    for attempt in 1..=3 {
        let got = pop
            .receive("workers", &topic, &|_| true, options(1, 1))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].attempt, attempt);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(pop
        .receive("workers", &topic, &|_| true, options(1, 1))
        .await
        .unwrap()
        .is_empty());
    let dlq = broker
        .topic(&dead_letter_topic("workers"))
        .expect("the DLQ topic was created");
    let dead = pop
        .receive("ops", &dlq, &|_| true, options(1, 1000))
        .await
        .unwrap();
    assert_eq!(dead[0].message.message.message_id, "poison");
    assert_eq!(
        dead[0].message.message.property("DLQ_ORIGIN_TOPIC"),
        Some("jobs")
    );
}

#[tokio::test]
async fn a_message_is_found_by_key_and_by_id_within_a_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    let topic = broker
        .create_topic("trades", 3, TopicConfig::default())
        .await
        .unwrap();
    let before = porter_core::partition::now_ms();
    let sent: Vec<_> = (0..50)
        .map(|i| message(&format!("id-{i}"), "t", &format!("order-{}", i % 10)))
        .collect();
    publish(&topic, &sent).await.unwrap();
    let after = porter_core::partition::now_ms();

    let by_key = lookup(&topic, &LookupBy::Key("order-7".into()), before, after, 64)
        .await
        .unwrap();
    let mut ids: Vec<_> = by_key
        .messages
        .iter()
        .map(|m| m.message.message_id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["id-17", "id-27", "id-37", "id-47", "id-7"]);
    assert!(!by_key.truncated);

    let by_id = lookup(
        &topic,
        &LookupBy::MessageId("id-33".into()),
        before,
        after,
        64,
    )
    .await
    .unwrap();
    assert_eq!(by_id.messages.len(), 1);
    assert_eq!(by_id.messages[0].message.keys, ["order-3"]);

    let earlier = lookup(
        &topic,
        &LookupBy::Key("order-7".into()),
        before - 60_000,
        before - 1,
        64,
    )
    .await
    .unwrap();
    assert!(earlier.messages.is_empty(), "outside the time range");
}
