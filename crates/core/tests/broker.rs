//! The broker core against a real data directory: topics are durable and atomic, deleted topics
//! leave nothing behind, and data survives clean and unclean restarts.

mod common;

use common::{config, produce};

use porter_core::{Broker, BrokerConfig, CoreError, TopicConfig};

#[tokio::test]
async fn topics_and_data_survive_clean_and_unclean_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(config(dir.path())).unwrap();
        broker
            .create_topic("orders", 3, TopicConfig::default())
            .await
            .unwrap();
        assert_eq!(produce(&broker, "orders", 1, &["a", "b"]).await, 0);
        broker.shutdown().await.unwrap();
    }
    {
        let broker = Broker::open(config(dir.path())).unwrap();
        let topic = broker.topic("orders").expect("topic survives a clean stop");
        assert_eq!(topic.topic.partitions, 3);
        assert_eq!(produce(&broker, "orders", 1, &["c"]).await, 2);
        // No shutdown: the next open must treat this as a crash.
    }
    let broker = Broker::open(config(dir.path())).unwrap();
    let p = broker.partition("orders", 1).unwrap();
    assert_eq!(p.log_end_offset(), 3);
    assert_eq!(p.high_watermark(), 3);
    let slice = p.read(0, 1 << 20).await.unwrap();
    assert!(!slice.bytes.is_empty());
}

#[tokio::test]
async fn delete_then_recreate_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    produce(&broker, "t", 0, &["old"]).await;
    broker.delete_topic("t").await.unwrap();
    assert!(broker.topic("t").is_none());
    assert!(matches!(
        broker.partition("t", 0),
        Err(CoreError::UnknownTopic(_))
    ));
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    assert_eq!(broker.partition("t", 0).unwrap().log_end_offset(), 0);
    broker.shutdown().await.unwrap();
    drop(broker);
    let broker = Broker::open(config(dir.path())).unwrap();
    assert_eq!(broker.partition("t", 0).unwrap().log_end_offset(), 0);
}

#[tokio::test]
async fn directories_of_unknown_topics_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    drop(Broker::open(config(dir.path())).unwrap());
    // As left by a delete interrupted between journal and rename.
    let stale = dir.path().join("logs").join("ghost").join("0");
    std::fs::create_dir_all(&stale).unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    assert!(!stale.exists());
    assert!(broker.topics().is_empty());
}

#[tokio::test]
async fn creation_rules() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    broker
        .create_topic("x", 1, TopicConfig::default())
        .await
        .unwrap();
    assert!(matches!(
        broker.create_topic("x", 1, TopicConfig::default()).await,
        Err(CoreError::TopicExists(_))
    ));
    assert!(matches!(
        broker
            .create_topic("bad/name", 1, TopicConfig::default())
            .await,
        Err(CoreError::InvalidTopicName { .. })
    ));
    assert!(matches!(
        broker.create_topic("zero", 0, TopicConfig::default()).await,
        Err(CoreError::InvalidPartitions(0))
    ));
    // Auto-creation uses the default partition count.
    let auto = broker.topic_or_auto_create("auto").await.unwrap();
    assert_eq!(auto.topic.partitions, 1);
}

#[tokio::test]
async fn auto_create_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig {
        auto_create_topics: false,
        ..config(dir.path())
    })
    .unwrap();
    assert!(matches!(
        broker.topic_or_auto_create("nope").await,
        Err(CoreError::UnknownTopic(_))
    ));
}

#[tokio::test]
async fn a_second_broker_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Broker::open(config(dir.path())).unwrap();
    assert!(Broker::open(config(dir.path())).is_err());
}
