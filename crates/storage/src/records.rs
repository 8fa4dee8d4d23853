//! Records for writers and readers that don't speak Kafka: the broker's internal logs today,
//! the AMQP, MQTT and STOMP gateways later. They build the same RecordBatch v2 bytes a Kafka
//! producer sends, so every protocol's messages share one log format and any protocol can read
//! what another wrote.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::{Offset, StorageError};

/// One record: its offset is assigned by the log on append (ignored when encoding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: Offset,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Encodes `records` as one uncompressed batch, ready for `Log::append`.
pub fn encode_batch(records: &[LogRecord]) -> Result<Bytes, StorageError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| StorageError::CorruptBatch(format!("encoding records: {e}")))?;
    Ok(buf.freeze())
}

/// Decodes every record of the batches in `bytes` (as returned by `Log::read`), decompressing
/// as needed. Control records (transaction markers) are skipped.
pub fn decode_batches(mut bytes: Bytes) -> Result<Vec<LogRecord>, StorageError> {
    let sets = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| StorageError::CorruptBatch(format!("decoding records: {e}")))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control)
        .map(|r| LogRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
        .collect())
}

/// The positions of the records in `bytes` that have no key (counted across its batches: a
/// Kafka produce carries one batch per partition, so this is the position in the batch): a
/// compacted log keeps the latest record per key, so it can't take a record without one.
/// Decompresses as needed; control records don't count.
pub fn keyless_records(bytes: &Bytes) -> Result<Vec<i32>, StorageError> {
    positions_where(bytes, |r| r.key.is_none())
}

/// The positions (counted across the batches) of the data records in `bytes` for which `pick`
/// holds; control records are skipped.
fn positions_where(
    bytes: &Bytes,
    pick: impl Fn(&Record) -> bool,
) -> Result<Vec<i32>, StorageError> {
    let mut bytes = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| StorageError::CorruptBatch(format!("decoding records: {e}")))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .enumerate()
        .filter(|(_, r)| !r.control && pick(r))
        .map(|(index, _)| index as i32)
        .collect())
}

/// Re-encodes the batches in `bytes` in `codec` (a batch's attributes codec number), keeping
/// every record's offset delta, timestamp, headers and its batch's producer id, epoch, sequence
/// and transactional flag. Batches already in `codec`, and control batches, stay as they are.
pub fn recompress(bytes: Bytes, codec: u8) -> Result<Bytes, StorageError> {
    let compression = match codec {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => {
            return Err(StorageError::CorruptBatch(format!(
                "unknown compression codec {other}"
            )))
        }
    };
    if !needs_recompression(&bytes, codec)? {
        return Ok(bytes);
    }
    let mut input = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut input)
        .map_err(|e| StorageError::CorruptBatch(format!("decoding records: {e}")))?;
    let mut out = BytesMut::with_capacity(bytes.len());
    for set in sets {
        let options = RecordEncodeOptions {
            version: 2,
            compression: if set.records.iter().any(|r| r.control) {
                set.compression
            } else {
                compression
            },
        };
        RecordBatchEncoder::encode(&mut out, &set.records, &options)
            .map_err(|e| StorageError::CorruptBatch(format!("encoding records: {e}")))?;
    }
    Ok(out.freeze())
}

/// Whether any batch in `bytes` is in another codec than `codec` (the low 3 bits of the
/// attributes, at byte 22 of a v2 batch).
fn needs_recompression(bytes: &Bytes, codec: u8) -> Result<bool, StorageError> {
    let mut at = 0usize;
    while at < bytes.len() {
        let header = crate::record_batch::BatchHeader::parse(&bytes[at..])?;
        if header.compression() != codec && !header.is_control() {
            return Ok(true);
        }
        at += header.total_bytes();
    }
    Ok(false)
}

/// The positions (counted across the batches, as in [`keyless_records`]) of the records whose
/// timestamp lies more than `before_ms` before `now_ms` or more than `after_ms` after it.
pub fn records_outside_time_window(
    bytes: &Bytes,
    now_ms: i64,
    before_ms: u64,
    after_ms: u64,
) -> Result<Vec<i32>, StorageError> {
    let earliest = now_ms.saturating_sub(before_ms.min(i64::MAX as u64) as i64);
    let latest = now_ms.saturating_add(after_ms.min(i64::MAX as u64) as i64);
    positions_where(bytes, |r| !(earliest..=latest).contains(&r.timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips() {
        let records = vec![
            LogRecord {
                timestamp: 5,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![("h".into(), Some(Bytes::from_static(b"1")))],
                ..LogRecord::default()
            },
            LogRecord {
                offset: 1,
                timestamp: 6,
                value: None,
                ..LogRecord::default()
            },
        ];
        let bytes = encode_batch(&records).unwrap();
        crate::record_batch::validate(&bytes, u32::MAX).unwrap();
        assert_eq!(decode_batches(bytes).unwrap(), records);
    }

    #[test]
    fn recompression_keeps_every_record_and_changes_the_codec() {
        let records: Vec<LogRecord> = (0..50)
            .map(|i| LogRecord {
                offset: i,
                timestamp: 1_000 + i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 100])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
            })
            .collect();
        let plain = encode_batch(&records).unwrap();
        let zstd = recompress(plain.clone(), 4).unwrap();
        let header = crate::record_batch::validate(&zstd, u32::MAX).unwrap();
        assert_eq!(header.compression(), 4);
        assert!(zstd.len() < plain.len());
        assert_eq!(decode_batches(zstd.clone()).unwrap(), records);
        // Already in the codec: the very same bytes.
        assert_eq!(recompress(zstd.clone(), 4).unwrap(), zstd);
        let back = recompress(zstd, 0).unwrap();
        assert_eq!(
            crate::record_batch::validate(&back, u32::MAX)
                .unwrap()
                .compression(),
            0
        );
        assert_eq!(decode_batches(back).unwrap(), records);
    }

    #[test]
    fn records_outside_the_time_window_are_found() {
        let at = |timestamp| LogRecord {
            timestamp,
            ..LogRecord::default()
        };
        let bytes = encode_batch(&[at(1_000), at(5_000), at(10_000), at(10_001)]).unwrap();
        assert_eq!(
            records_outside_time_window(&bytes, 6_000, 4_000, 4_000).unwrap(),
            vec![0, 3]
        );
        assert_eq!(
            records_outside_time_window(&bytes, 6_000, 5_000, 4_001).unwrap(),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn keyless_records_are_found_by_position() {
        let keyed = |k: &'static [u8]| LogRecord {
            key: Some(Bytes::from_static(k)),
            ..LogRecord::default()
        };
        let records = vec![
            keyed(b"a"),
            LogRecord::default(),
            keyed(b"c"),
            LogRecord::default(),
        ];
        let bytes = encode_batch(&records).unwrap();
        assert_eq!(keyless_records(&bytes).unwrap(), vec![1, 3]);
        let bytes = encode_batch(&[keyed(b"a")]).unwrap();
        assert!(keyless_records(&bytes).unwrap().is_empty());
    }
}
