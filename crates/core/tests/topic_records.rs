//! Records produced by key and read back a page at a time, as the management API's message
//! browser and `porter consume` read them: keys land where Kafka's partitioner puts them,
//! pages are bounded by count and bytes, and the next page starts where the last one ended.

#[allow(dead_code)] // the helpers other tests use
mod common;

use bytes::Bytes;
use porter_core::topic_records::{browse, partition_for_key, produce, NewRecord, StartAt};
use porter_core::{Broker, TopicConfig};

use common::config;

fn record(key: &str, value: &str) -> NewRecord {
    NewRecord {
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        ..NewRecord::default()
    }
}

#[tokio::test]
async fn a_topic_reads_back_page_by_page_from_any_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).unwrap();
    let topic = broker
        .create_topic("orders", 3, TopicConfig::default())
        .await
        .unwrap();
    for i in 0..50 {
        let produced = produce(&topic, record("customer-7", &format!("order {i}")))
            .await
            .unwrap();
        produced.wait().await.unwrap();
        assert_eq!(
            produced.partition.index() as usize,
            partition_for_key(Some(b"customer-7"), 3),
            "one key, one partition, as a Kafka producer would place it"
        );
    }
    let partition = &topic.partitions[partition_for_key(Some(b"customer-7"), 3)];

    // Pages of 20, 20 and 10, each continuing where the last ended.
    let mut offset = StartAt::First.resolve(partition).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let page = browse(partition, offset, 20, 1 << 20).await.unwrap();
        assert!(page.records.len() <= 20);
        if page.records.is_empty() {
            break;
        }
        seen.extend(page.records.iter().map(|r| r.value.clone().unwrap()));
        offset = page.next_offset;
    }
    assert_eq!(seen.len(), 50);
    assert_eq!(seen[49], Bytes::from("order 49"));

    // The last 5, and a byte budget that holds 3 of them.
    let from = StartAt::FromEnd(5).resolve(partition).await.unwrap();
    let page = browse(partition, from, 100, 1 << 20).await.unwrap();
    assert_eq!(page.records.len(), 5);
    assert_eq!(page.records[0].value.as_deref(), Some(&b"order 45"[..]));
    let each = "customer-7".len() + "order 45".len();
    let page = browse(partition, from, 100, 3 * each).await.unwrap();
    assert_eq!(page.records.len(), 3);
    assert_eq!(page.next_offset, from + 3);

    // At the end: nothing, and the next offset stays put.
    let end = StartAt::Next.resolve(partition).await.unwrap();
    let page = browse(partition, end, 10, 1 << 20).await.unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.next_offset, end);

    // A partition the topic lacks is refused.
    let mut bad = record("k", "v");
    bad.partition = Some(3);
    assert!(produce(&topic, bad).await.is_err());
}
