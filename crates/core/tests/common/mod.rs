//! Helpers shared by the core's integration tests.

use std::sync::Arc;

use bytes::Bytes;
use porter_core::{Broker, BrokerConfig};
use porter_storage::records::{encode_batch, LogRecord};

pub fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    }
}

/// One uncompressed batch with these values, each keyed by its value (a compacted topic
/// refuses records without a key).
pub fn batch(values: &[&str]) -> Bytes {
    let records: Vec<LogRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| LogRecord {
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::copy_from_slice(v.as_bytes())),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            ..LogRecord::default()
        })
        .collect();
    encode_batch(&records).expect("encode batch")
}

/// Appends `values` durably; returns the first offset.
pub async fn produce(broker: &Arc<Broker>, topic: &str, partition: i32, values: &[&str]) -> i64 {
    let p = broker.partition(topic, partition).unwrap();
    let info = p.append(batch(values)).await.unwrap();
    p.wait_durable(info.last_offset + 1).await.unwrap();
    info.base_offset
}
