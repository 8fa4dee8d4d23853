//! Helpers shared by the integration tests: build batches with kafka-protocol's encoder and
//! decode what `Log::read` returns.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use porter_storage::{FlushMode, LogConfig, Offset};

/// One batch holding `values`, the i-th record with timestamp `timestamps[i]`.
pub fn batch_with(values: &[Vec<u8>], timestamps: &[i64], compression: Compression) -> Bytes {
    assert_eq!(values.len(), timestamps.len());
    let records: Vec<Record> = values
        .iter()
        .zip(timestamps)
        .enumerate()
        .map(|(i, (value, &timestamp))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

/// One uncompressed batch of `values`, all stamped `timestamp`.
pub fn batch(values: &[Vec<u8>], timestamp: i64) -> Bytes {
    batch_with(values, &vec![timestamp; values.len()], Compression::None)
}

/// `count` values named after `tag`, each `size` bytes or more.
pub fn values(tag: u64, count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut value = format!("{tag}-{i}-").into_bytes();
            value.resize(size.max(value.len()), b'x');
            value
        })
        .collect()
}

/// (offset, value) of every record in `bytes`.
pub fn decode(bytes: &Bytes) -> Vec<(Offset, Vec<u8>)> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()))
        .collect()
}

/// Small segments and index intervals so tests roll and index often.
pub fn small_config(flush: FlushMode) -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        retention_ms: None,
        flush,
        ..LogConfig::default()
    }
}

/// Reads everything from `from` to the high watermark.
pub fn read_all(log: &porter_storage::Log, from: Offset) -> Vec<(Offset, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.high_watermark() {
        let slice = log.read(next, 300).unwrap();
        let records = decode(&slice.bytes);
        assert!(
            !records.is_empty(),
            "read at {next} below the high watermark returned nothing"
        );
        out.extend(records.iter().filter(|(o, _)| *o >= next).cloned());
        next = records.last().unwrap().0 + 1;
    }
    out
}
