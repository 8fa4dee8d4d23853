//! Changes to existing topics through the broker: config overrides and partition growth are
//! journaled and survive a crash (the broker dropped without `shutdown`), config changes reach
//! the open logs at once, and DeleteRecords moves the log start.

mod common;

use common::{batch, config, produce};

use porter_core::broker::DELETE_RECORDS_TO_HIGH_WATERMARK;
use porter_core::topic::ConfigOp;
use porter_core::{Broker, CoreError, TopicConfig};

fn pairs(pairs: &[(&str, &str)]) -> TopicConfig {
    TopicConfig::from_pairs(pairs.iter().copied()).unwrap()
}

#[tokio::test]
async fn config_changes_and_growth_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let expected_config = pairs(&[
        ("cleanup.policy", "compact,delete"),
        ("retention.ms", "60000"),
    ]);
    {
        let broker = Broker::open(config(dir.path())).unwrap();
        broker
            .create_topic("t", 3, pairs(&[("segment.ms", "1000")]))
            .await
            .unwrap();
        // The whole override set is replaced: segment.ms goes.
        broker
            .alter_topic_config("t", pairs(&[("retention.ms", "60000")]))
            .await
            .unwrap();
        broker
            .update_topic_config("t", false, |current, defaults| {
                let mut config = current.clone();
                config.alter("cleanup.policy", ConfigOp::Append("compact"), defaults)?;
                Ok(config)
            })
            .await
            .unwrap();
        let handle = broker.create_partitions("t", 6).await.unwrap();
        assert_eq!(handle.partitions.len(), 6);
        assert_eq!(broker.topic("t").unwrap().topic.partitions, 6);
        assert_eq!(produce(&broker, "t", 5, &["a", "b"]).await, 0);
        // Partitions that existed keep their data and handles.
        assert_eq!(produce(&broker, "t", 0, &["x"]).await, 0);
        // No shutdown: a crash.
    }
    let broker = Broker::open(config(dir.path())).unwrap();
    let handle = broker.topic("t").unwrap();
    assert_eq!(handle.topic.partitions, 6);
    assert_eq!(handle.partitions.len(), 6);
    assert_eq!(handle.topic.config, expected_config);
    assert_eq!(broker.partition("t", 5).unwrap().log_end_offset(), 2);
    assert_eq!(broker.partition("t", 0).unwrap().log_end_offset(), 1);
    broker.shutdown().await.unwrap();
    drop(broker);
    let broker = Broker::open(config(dir.path())).unwrap();
    assert_eq!(broker.topic("t").unwrap().topic.config, expected_config);
    assert_eq!(broker.topic("t").unwrap().partitions.len(), 6);
}

#[tokio::test]
async fn config_changes_apply_to_open_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    broker
        .create_topic("t", 2, TopicConfig::default())
        .await
        .unwrap();
    let before = broker.partition("t", 1).unwrap();
    before.append(batch(&["fits"])).await.unwrap();
    broker
        .alter_topic_config("t", pairs(&[("max.message.bytes", "20")]))
        .await
        .unwrap();
    // The partition handed out before the change sees it too: it is the same log.
    assert!(matches!(
        before.append(batch(&["now too large"])).await,
        Err(CoreError::TooLarge { max: 20, .. })
    ));
    broker
        .alter_topic_config("t", TopicConfig::default())
        .await
        .unwrap();
    before.append(batch(&["fits again"])).await.unwrap();
}

#[tokio::test]
async fn refused_changes_leave_everything_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    broker
        .create_topic("t", 3, pairs(&[("retention.ms", "5")]))
        .await
        .unwrap();
    for count in [3, 2, 0] {
        assert!(matches!(
            broker.create_partitions("t", count).await,
            Err(CoreError::InvalidPartitions(_))
        ));
    }
    assert!(matches!(
        broker.create_partitions("nope", 4).await,
        Err(CoreError::UnknownTopic(_))
    ));
    let mut bad = TopicConfig::default();
    bad.overrides.insert("retention.ms".into(), "-7".into());
    assert!(matches!(
        broker.alter_topic_config("t", bad).await,
        Err(CoreError::InvalidConfig { .. })
    ));
    // validate_only computes the result without applying it.
    let preview = broker
        .update_topic_config("t", true, |_, _| Ok(pairs(&[("retention.ms", "9")])))
        .await
        .unwrap();
    assert_eq!(preview.topic.config, pairs(&[("retention.ms", "9")]));
    assert_eq!(
        broker.topic("t").unwrap().topic.config,
        pairs(&[("retention.ms", "5")])
    );
    assert_eq!(broker.topic("t").unwrap().partitions.len(), 3);
    broker.shutdown().await.unwrap();
    drop(broker);
    let broker = Broker::open(config(dir.path())).unwrap();
    assert_eq!(
        broker.topic("t").unwrap().topic.config,
        pairs(&[("retention.ms", "5")])
    );
    assert_eq!(broker.topic("t").unwrap().topic.partitions, 3);
}

#[tokio::test]
async fn delete_records_moves_the_low_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    broker
        .create_topic("t", 1, TopicConfig::default())
        .await
        .unwrap();
    produce(&broker, "t", 0, &["a", "b", "c", "d", "e"]).await;
    assert_eq!(broker.delete_records("t", 0, 3).await.unwrap(), 3);
    // Below the current start: nothing moves.
    assert_eq!(broker.delete_records("t", 0, 1).await.unwrap(), 3);
    assert!(matches!(
        broker.delete_records("t", 0, 6).await,
        Err(CoreError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        broker.delete_records("t", 1, 0).await,
        Err(CoreError::UnknownPartition { .. })
    ));
    assert_eq!(
        broker
            .delete_records("t", 0, DELETE_RECORDS_TO_HIGH_WATERMARK)
            .await
            .unwrap(),
        5
    );
    // Crash: the log start is persisted.
    drop(broker);
    let broker = Broker::open(config(dir.path())).unwrap();
    assert_eq!(broker.partition("t", 0).unwrap().log_start_offset(), 5);
}
