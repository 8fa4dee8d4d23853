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
    let mut bytes = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| StorageError::CorruptBatch(format!("decoding records: {e}")))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .enumerate()
        .filter(|(_, r)| !r.control && r.key.is_none())
        .map(|(index, _)| index as i32)
        .collect())
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
