//! Helpers shared by the integration tests: build batches with kafka-protocol's encoder and
//! decode what `Log::read` returns.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use porter_storage::{AppendInfo, FlushMode, Log, LogConfig, Offset, StorageError};

/// One batch holding `values`, the i-th record with timestamp `timestamps[i]`.
pub fn batch_with(values: &[Vec<u8>], timestamps: &[i64], compression: Compression) -> Bytes {
    assert_eq!(values.len(), timestamps.len());
    let records: Vec<Keyed> = values
        .iter()
        .zip(timestamps)
        .map(|(value, &timestamp)| (None, Some(value.as_slice()), timestamp))
        .collect();
    keyed_batch(&records, compression, -1)
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

/// One keyed record for `keyed_batch`: (key, value (None = tombstone), timestamp).
pub type Keyed<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// One batch of keyed records, as a producer with `producer_id` (-1: not idempotent) sends it.
pub fn keyed_batch(records: &[Keyed], compression: Compression, producer_id: i64) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, timestamp))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 3 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be constant or the encoder splits the batch; without a
            // producer the header's base sequence is -1.
            sequence: if producer_id >= 0 { 100 } else { -1 } + i as i32,
            timestamp: *timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
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

/// Every record readable, decoded: (offset, key, value, timestamp).
pub type Full = (Offset, Option<Vec<u8>>, Option<Vec<u8>>, i64);

pub fn read_full(log: &porter_storage::Log) -> Vec<Full> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let slice = log.read(next, 4096).unwrap();
        if slice.bytes.is_empty() {
            break; // a gap at the end left by compaction
        }
        let mut buf = slice.bytes.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
        let mut last = next;
        for record in sets.into_iter().flat_map(|s| s.records) {
            last = record.offset;
            if record.offset >= next {
                out.push((
                    record.offset,
                    record.key.map(|k| k.to_vec()),
                    record.value.map(|v| v.to_vec()),
                    record.timestamp,
                ));
            }
        }
        next = last + 1;
    }
    out
}

/// Headers of every batch in bytes returned by `Log::read`.
pub fn headers_of(bytes: &Bytes) -> Vec<porter_storage::BatchHeader> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = porter_storage::BatchHeader::parse(&bytes[at..]).unwrap();
        at += header.total_bytes();
        out.push(header);
    }
    out
}

/// Storage decides nothing about commitment (the core's commit seam does): these tests stand
/// in for it with the same rule per flush mode: under `Group` committed once synced, otherwise
/// once written.
pub trait AppendCommitted {
    fn append_committed(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, StorageError>;
}

impl AppendCommitted for Log {
    fn append_committed(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, StorageError> {
        let info = self.append(records, now_ms)?;
        let committed = if self.config().flush == FlushMode::Group {
            self.sync()?
        } else {
            info.last_offset + 1
        };
        self.commit_to(committed);
        Ok(info)
    }
}

/// Opens a log in `dir` with a small file cache.
pub fn open(
    dir: &std::path::Path,
    config: porter_storage::LogConfig,
    after_crash: bool,
) -> porter_storage::Log {
    porter_storage::Log::open(dir, config, porter_storage::FileCache::new(64), after_crash).unwrap()
}

/// The segment files of `dir` with this suffix ("log", "index", "timeindex"), in offset order.
pub fn segment_files(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    files.sort();
    files
}
