//! A key's newest records read back from a topic (a chat room's history): newest last, bounded
//! by count and by the bytes scanned.

#[allow(dead_code)] // the helpers other tests use
mod common;

use std::sync::Arc;

use bytes::Bytes;
use porter_core::history::{newest, HISTORY_SCAN_BYTES_MAX};
use porter_core::{Broker, TopicConfig};
use porter_storage::records::{encode_batch, LogRecord};

use common::config;

/// Appends one batch of `(key, value)` records to `partition` of `topic`, durably; timestamps
/// increase with `clock`.
async fn append(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: &[(&str, String)],
    clock: &mut i64,
) {
    let records: Vec<LogRecord> = records
        .iter()
        .map(|(key, value)| {
            *clock += 1;
            LogRecord {
                timestamp: *clock,
                key: Some(Bytes::copy_from_slice(key.as_bytes())),
                value: Some(Bytes::from(value.clone())),
                ..LogRecord::default()
            }
        })
        .collect();
    let p = broker.partition(topic, partition).unwrap();
    let appended = p.append(encode_batch(&records).unwrap()).await.unwrap();
    p.wait_durable(appended.last_offset + 1).await.unwrap();
}

fn values(records: &[LogRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned())
        .collect()
}

#[tokio::test]
async fn the_newest_records_of_a_key_come_back_oldest_first_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    let topic = broker
        .create_topic("chat", 2, TopicConfig::default())
        .await
        .unwrap();
    let mut clock = 1_700_000_000_000;
    // 3,000 records, most of them other rooms', so the scan goes back through several windows.
    for round in 0..30 {
        let batch: Vec<(&str, String)> = (0..100)
            .map(|i| {
                let n = round * 100 + i;
                let key = if n % 50 == 0 { "lobby" } else { "other" };
                (key, format!("m{n}"))
            })
            .collect();
        append(&broker, "chat", round % 2, &batch, &mut clock).await;
    }

    let last = newest(&topic, b"lobby", 3).await.unwrap();
    assert_eq!(values(&last.records), ["m2850", "m2900", "m2950"]);
    assert!(!last.truncated);

    let all = newest(&topic, b"lobby", 1000).await.unwrap();
    assert_eq!(
        all.records.len(),
        60,
        "every lobby record, from both partitions"
    );
    assert_eq!(values(&all.records)[..2], ["m0", "m50"]);
    assert!(all
        .records
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp));

    let none = newest(&topic, b"nobody", 10).await.unwrap();
    assert!(none.records.is_empty() && !none.truncated);
}

#[tokio::test]
async fn a_rare_key_behind_more_than_the_scan_bound_is_reported_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    let topic = broker
        .create_topic("busy", 1, TopicConfig::default())
        .await
        .unwrap();
    let mut clock = 1_700_000_000_000;
    append(&broker, "busy", 0, &[("rare", "old".into())], &mut clock).await;
    let noise = "x".repeat(8 * 1024);
    let batches = HISTORY_SCAN_BYTES_MAX as usize / (noise.len() * 64) + 2;
    for _ in 0..batches {
        let batch: Vec<(&str, String)> = (0..64).map(|_| ("noise", noise.clone())).collect();
        append(&broker, "busy", 0, &batch, &mut clock).await;
    }
    append(&broker, "busy", 0, &[("rare", "new".into())], &mut clock).await;

    let found = newest(&topic, b"rare", 10).await.unwrap();
    assert_eq!(
        values(&found.records),
        ["new"],
        "the old one is past the bound"
    );
    assert!(found.truncated);
}
