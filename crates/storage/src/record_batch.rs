//! RecordBatch v2 (magic 2) header parsing, validation and offset patching.
//!
//! Only the fixed 61-byte header is parsed here: it is on the hot path of every append, read and
//! recovery scan. Record bodies are left to `kafka_protocol` (see `Segment::offset_for_timestamp`).
//!
//! Layout (big-endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C of bytes @21..end), attributes i16 @21,
//! lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
//! producerEpoch i16 @51, baseSequence i32 @53, recordsCount i32 @57, records @61.

use crate::{Offset, StorageError};

/// Bytes of the fixed header, up to the first record.
pub const HEADER_BYTES: usize = 61;
/// Bytes before and including `batchLength`, not counted in it.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only supported format.
pub const MAGIC_V2: i8 = 2;
/// Start of the bytes covered by the CRC.
const CRC_COVERED_START: usize = 21;

const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TIMESTAMP_TYPE: i16 = 1 << 3;
const ATTRIBUTE_TRANSACTIONAL: i16 = 1 << 4;
const ATTRIBUTE_CONTROL: i16 = 1 << 5;

/// The fixed header of one batch, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    /// Bytes after the `batchLength` field; the batch is `LOG_OVERHEAD_BYTES + batch_length` long.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `bytes` and checks what the header alone can tell:
    /// magic 2, a length that covers at least the header, a record count (0 for an empty batch
    /// compaction left) that fits in `lastOffsetDelta`. Does not check the CRC nor that the
    /// whole batch is in `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, StorageError> {
        if bytes.len() < HEADER_BYTES {
            return Err(StorageError::CorruptBatch(format!(
                "{} bytes is shorter than the {HEADER_BYTES}-byte batch header",
                bytes.len()
            )));
        }
        let header = BatchHeader {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: be_i32(bytes, 12),
            magic: bytes[16] as i8,
            crc: u32::from_be_bytes(bytes[17..21].try_into().expect("4 bytes")),
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            records_count: be_i32(bytes, 57),
        };
        if header.magic != MAGIC_V2 {
            return Err(StorageError::CorruptBatch(format!(
                "magic {} (only 2 is supported)",
                header.magic
            )));
        }
        if (header.batch_length as i64) < (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i64 {
            return Err(StorageError::CorruptBatch(format!(
                "batch length {} is shorter than the header",
                header.batch_length
            )));
        }
        // Compaction leaves empty batches (a producer's last one, kept for its sequence state)
        // and gaps inside a batch, so on disk the count may be 0 and the delta may exceed
        // count - 1; `validate` (the produce path) insists on contiguous offsets and a record.
        if header.records_count < 0 || header.last_offset_delta < 0 {
            return Err(StorageError::CorruptBatch(format!(
                "records count {} and last offset delta {} (neither may be negative)",
                header.records_count, header.last_offset_delta
            )));
        }
        if header.last_offset_delta < header.records_count - 1 {
            return Err(StorageError::CorruptBatch(format!(
                "last offset delta {} is too small for records count {}",
                header.last_offset_delta, header.records_count
            )));
        }
        Ok(header)
    }

    /// Total bytes of the batch, header included.
    pub fn total_bytes(&self) -> usize {
        debug_assert!(self.batch_length >= 0);
        LOG_OVERHEAD_BYTES + self.batch_length as usize
    }

    pub fn last_offset(&self) -> Offset {
        self.base_offset + self.last_offset_delta as Offset
    }

    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTRIBUTE_COMPRESSION_MASK) as u8
    }

    /// True when the timestamps are broker append times (Kafka's LogAppendTime).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTRIBUTE_TIMESTAMP_TYPE != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }
}

/// CRC-32C as stored in the header: over the bytes from `attributes` to the end of the batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_COVERED_START..])
}

/// Validates one whole batch from a producer that starts at `bytes[0]`: header checks, at least
/// one record with contiguous offsets, the batch fits in `bytes`,
/// is at most `max_batch_bytes`, and its CRC matches. Returns the header; the batch is
/// `bytes[..header.total_bytes()]`.
pub fn validate(bytes: &[u8], max_batch_bytes: u32) -> Result<BatchHeader, StorageError> {
    let header = BatchHeader::parse(bytes)?;
    if header.records_count < 1 {
        return Err(StorageError::CorruptBatch(format!(
            "records count {} (must be at least 1)",
            header.records_count
        )));
    }
    if header.last_offset_delta != header.records_count - 1 {
        return Err(StorageError::CorruptBatch(format!(
            "last offset delta {} does not match records count {}",
            header.last_offset_delta, header.records_count
        )));
    }
    let total = header.total_bytes();
    if total > max_batch_bytes as usize {
        return Err(StorageError::BatchTooLarge {
            size: total,
            max: max_batch_bytes,
        });
    }
    if total > bytes.len() {
        return Err(StorageError::CorruptBatch(format!(
            "batch of {total} bytes but only {} bytes left in the buffer",
            bytes.len()
        )));
    }
    let actual = compute_crc(&bytes[..total]);
    if actual != header.crc {
        return Err(StorageError::CorruptBatch(format!(
            "CRC mismatch: header says {:#010x}, data has {actual:#010x}",
            header.crc
        )));
    }
    check_record_count(&bytes[..total], &header)?;
    Ok(header)
}

/// Checks that the batch holds exactly `records_count` records. Without this a producer could
/// claim 2^31 records in a one-record batch and move the log end by that much. Uncompressed
/// records are walked by their length prefixes (cheap); compressed ones are decoded, as Kafka's
/// own log validator does.
fn check_record_count(batch: &[u8], header: &BatchHeader) -> Result<(), StorageError> {
    let count = if header.compression() == 0 {
        let mut position = HEADER_BYTES;
        let mut count = 0i64;
        while position < batch.len() {
            let (length, used) = read_varint(&batch[position..]).ok_or_else(|| {
                StorageError::CorruptBatch(format!("record {count} has a bad length prefix"))
            })?;
            if length < 0 || position + used + length as usize > batch.len() {
                return Err(StorageError::CorruptBatch(format!(
                    "record {count} of {length} bytes runs past the batch end"
                )));
            }
            position += used + length as usize;
            count += 1;
        }
        count
    } else {
        let mut bytes = bytes::Bytes::copy_from_slice(batch);
        kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes)
            .map_err(|e| StorageError::CorruptBatch(format!("undecodable records: {e}")))?
            .records
            .len() as i64
    };
    if count != header.records_count as i64 {
        return Err(StorageError::CorruptBatch(format!(
            "header says {} records, the batch holds {count}",
            header.records_count
        )));
    }
    Ok(())
}

/// A zigzag varint (Kafka's record framing): (value, bytes used).
fn read_varint(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

/// The batches of a buffer: each one's start position and header, in order.
pub type Batches = Vec<(usize, BatchHeader)>;

/// Validates a buffer of concatenated batches; every byte must belong to a valid batch.
/// Returns the headers with each batch's start position in `bytes`.
pub fn validate_all(
    bytes: &[u8],
    max_batch_bytes: u32,
) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    walk_batches(bytes, |position| {
        validate(&bytes[position..], max_batch_bytes)
    })
}

/// The batches of a buffer the broker encoded itself (already CRC'd, one allocation shared
/// with other logs): headers are parsed and their lengths checked against the buffer, but the
/// CRC and the record walk are skipped, since a second pass over bytes the encoder just
/// summed finds nothing. Debug builds still run the full [`validate`] to catch encoder bugs.
pub fn prepared_batches(
    bytes: &[u8],
    max_batch_bytes: u32,
) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    walk_batches(bytes, |position| {
        let header = BatchHeader::parse(&bytes[position..])?;
        let total = header.total_bytes();
        if total > max_batch_bytes as usize {
            return Err(StorageError::BatchTooLarge {
                size: total,
                max: max_batch_bytes,
            });
        }
        if total > bytes.len() - position || header.records_count < 1 {
            return Err(StorageError::CorruptBatch(format!(
                "prepared batch at {position}: {total} bytes, {} records, {} bytes left",
                header.records_count,
                bytes.len() - position
            )));
        }
        debug_assert_eq!(
            validate(&bytes[position..], max_batch_bytes).ok(),
            Some(header),
            "a prepared batch must be valid"
        );
        Ok(header)
    })
}

/// Walks a non-empty buffer of concatenated batches with `check` (which returns the header of
/// the batch at a position, having made sure it lies within the buffer): the headers with their
/// positions, every byte accounted for.
fn walk_batches(
    bytes: &[u8],
    mut check: impl FnMut(usize) -> Result<BatchHeader, StorageError>,
) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    if bytes.is_empty() {
        return Err(StorageError::CorruptBatch(
            "no record batch in the buffer".into(),
        ));
    }
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = check(position)?;
        batches.push((position, header));
        position += header.total_bytes();
    }
    debug_assert_eq!(position, bytes.len());
    Ok(batches)
}

/// Stamps a whole batch with the broker's clock (Kafka's LogAppendTime for v2): sets the
/// timestamp-type attribute bit and `maxTimestamp`, then recomputes the CRC (both fields are
/// covered). Consumers read `maxTimestamp` as every record's timestamp. Returns the new header.
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) -> BatchHeader {
    let mut header = BatchHeader::parse(batch).expect("validated batch");
    assert_eq!(header.total_bytes(), batch.len(), "a whole batch");
    header.attributes |= ATTRIBUTE_TIMESTAMP_TYPE;
    header.max_timestamp = append_time_ms;
    batch[21..23].copy_from_slice(&header.attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&append_time_ms.to_be_bytes());
    header.crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&header.crc.to_be_bytes());
    header
}

/// Overwrites the header fields a re-encoded (compacted) batch must keep from the original:
/// the timestamp type, `maxTimestamp` of a LogAppendTime batch (the encoder would compute it
/// from the records' create times) and the base sequence. Recomputes the CRC.
pub(crate) fn restore_header_fields(batch: &mut [u8], original: &BatchHeader) -> BatchHeader {
    let mut header = BatchHeader::parse(batch).expect("freshly encoded batch");
    assert_eq!(header.total_bytes(), batch.len(), "a whole batch");
    if original.is_log_append_time() {
        header.attributes |= ATTRIBUTE_TIMESTAMP_TYPE;
        header.max_timestamp = original.max_timestamp;
    }
    header.base_sequence = original.base_sequence;
    batch[21..23].copy_from_slice(&header.attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&header.max_timestamp.to_be_bytes());
    batch[53..57].copy_from_slice(&header.base_sequence.to_be_bytes());
    header.crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&header.crc.to_be_bytes());
    header
}

/// The header-only batch (`recordsCount` 0) compaction writes when it removes every record of
/// an idempotent producer's last batch (Kafka's `writeEmptyHeader`): it keeps `original`'s
/// offsets (`baseOffset`, `lastOffsetDelta`), producer id, epoch, base sequence, leader epoch,
/// timestamp type and transactional/control bits, so the producer's sequence state survives.
/// Uncompressed; both timestamps are `original`'s `maxTimestamp` (the producer's last activity,
/// which producer expiration reads after a restart). Returns the bytes and their header.
pub(crate) fn encode_empty(original: &BatchHeader) -> (Vec<u8>, BatchHeader) {
    let header = BatchHeader {
        batch_length: (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32,
        attributes: original.attributes & !ATTRIBUTE_COMPRESSION_MASK,
        base_timestamp: original.max_timestamp,
        records_count: 0,
        crc: 0,
        ..*original
    };
    let mut batch = Vec::with_capacity(HEADER_BYTES);
    batch.extend_from_slice(&header.base_offset.to_be_bytes());
    batch.extend_from_slice(&header.batch_length.to_be_bytes());
    batch.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    batch.push(header.magic as u8);
    batch.extend_from_slice(&[0; 4]); // crc, below
    batch.extend_from_slice(&header.attributes.to_be_bytes());
    batch.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    batch.extend_from_slice(&header.base_timestamp.to_be_bytes());
    batch.extend_from_slice(&header.max_timestamp.to_be_bytes());
    batch.extend_from_slice(&header.producer_id.to_be_bytes());
    batch.extend_from_slice(&header.producer_epoch.to_be_bytes());
    batch.extend_from_slice(&header.base_sequence.to_be_bytes());
    batch.extend_from_slice(&header.records_count.to_be_bytes());
    assert_eq!(batch.len(), HEADER_BYTES);
    let crc = compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let header = BatchHeader { crc, ..header };
    debug_assert_eq!(BatchHeader::parse(&batch).ok(), Some(header));
    (batch, header)
}

/// Overwrites `baseOffset` of the batch at the start of `batch`. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: Offset) {
    assert!(batch.len() >= HEADER_BYTES);
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Encodes one batch of records with the given timestamps; values are `value_prefix` + index.
    pub(crate) fn encode_batch(
        timestamps: &[i64],
        value: &[u8],
        compression: Compression,
    ) -> Bytes {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, &timestamp)| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32, // offset - sequence constant keeps one batch
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
        .expect("encode batch");
        buf.freeze()
    }

    #[test]
    fn valid_batch_parses() {
        let batch = encode_batch(&[10, 30, 20], b"abc", Compression::None);
        let header = validate(&batch, 1 << 20).unwrap();
        assert_eq!(header.records_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 30);
        assert_eq!(header.total_bytes(), batch.len());
        assert_eq!(validate_all(&batch, 1 << 20).unwrap().len(), 1);
    }

    #[test]
    fn wrong_crc_is_rejected() {
        let mut batch = BytesMut::from(&encode_batch(&[1], b"abc", Compression::None)[..]);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        assert!(
            matches!(validate(&batch, 1 << 20), Err(StorageError::CorruptBatch(m)) if m.contains("CRC"))
        );
    }

    #[test]
    fn base_offset_is_not_covered_by_crc() {
        let mut batch = BytesMut::from(&encode_batch(&[1, 2], b"abc", Compression::None)[..]);
        set_base_offset(&mut batch, 12345);
        let header = validate(&batch, 1 << 20).unwrap();
        assert_eq!(header.base_offset, 12345);
        assert_eq!(header.last_offset(), 12346);
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let mut batch = BytesMut::from(&encode_batch(&[1], b"abc", Compression::None)[..]);
        batch[16] = 1;
        assert!(
            matches!(validate(&batch, 1 << 20), Err(StorageError::CorruptBatch(m)) if m.contains("magic"))
        );
    }

    #[test]
    fn bad_lengths_are_rejected() {
        let batch = encode_batch(&[1], b"abc", Compression::None);
        // Truncated: the length field points past the buffer.
        assert!(matches!(
            validate(&batch[..batch.len() - 1], 1 << 20),
            Err(StorageError::CorruptBatch(_))
        ));
        // Shorter than a header.
        assert!(validate(&batch[..20], 1 << 20).is_err());
        // Negative length.
        let mut negative = BytesMut::from(&batch[..]);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(validate(&negative, 1 << 20).is_err());
        // Too large for the configured maximum.
        assert!(matches!(
            validate(&batch, 10),
            Err(StorageError::BatchTooLarge { max: 10, .. })
        ));
        // Trailing garbage after a valid batch.
        let mut trailing = BytesMut::from(&batch[..]);
        trailing.extend_from_slice(&[0; 7]);
        assert!(validate_all(&trailing, 1 << 20).is_err());
        assert!(validate_all(&[], 1 << 20).is_err());
    }

    #[test]
    fn header_count_must_match_the_records_inside() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let good = encode_batch(&[1, 2, 3], b"abc", compression);
            assert!(validate(&good, 1 << 20).is_ok());
            // Claim 1000 records (count and delta agree, CRC recomputed): still refused.
            let mut lie = BytesMut::from(&good[..]);
            lie[23..27].copy_from_slice(&999i32.to_be_bytes());
            lie[57..61].copy_from_slice(&1000i32.to_be_bytes());
            let crc = compute_crc(&lie);
            lie[17..21].copy_from_slice(&crc.to_be_bytes());
            let err = validate(&lie, 1 << 20).unwrap_err();
            assert!(
                matches!(err, StorageError::CorruptBatch(_)),
                "{compression:?}: {err}"
            );
        }
    }

    #[test]
    fn count_must_match_last_offset_delta() {
        let mut batch = BytesMut::from(&encode_batch(&[1, 2], b"abc", Compression::None)[..]);
        batch[57..61].copy_from_slice(&5i32.to_be_bytes());
        assert!(BatchHeader::parse(&batch).is_err());
        batch[57..61].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(BatchHeader::parse(&batch).is_err());
        // No records (what compaction leaves of a producer's last batch) parses; a produce
        // needs a record.
        batch[57..61].copy_from_slice(&0i32.to_be_bytes());
        assert!(BatchHeader::parse(&batch).is_ok());
        let crc = compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(validate(&batch, 1 << 20).is_err());
        // A compacted batch (gap inside) parses, but a produce must be contiguous.
        batch[57..61].copy_from_slice(&1i32.to_be_bytes());
        batch[23..27].copy_from_slice(&3i32.to_be_bytes());
        assert!(BatchHeader::parse(&batch).is_ok());
        let crc = compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(validate(&batch, 1 << 20).is_err());
    }

    #[test]
    fn empty_batch_keeps_offsets_producer_fields_and_a_valid_crc() {
        for compression in [Compression::None, Compression::Gzip] {
            let mut batch = BytesMut::from(&encode_batch(&[10, 30, 20], b"abc", compression)[..]);
            set_base_offset(&mut batch, 100);
            batch[43..51].copy_from_slice(&7i64.to_be_bytes());
            batch[51..53].copy_from_slice(&3i16.to_be_bytes());
            batch[53..57].copy_from_slice(&41i32.to_be_bytes());
            let original = set_log_append_time(&mut batch, 777);
            let (empty, header) = encode_empty(&original);
            assert_eq!(empty.len(), HEADER_BYTES);
            assert_eq!(BatchHeader::parse(&empty).unwrap(), header);
            assert_eq!(header.crc, compute_crc(&empty));
            assert_eq!(header.records_count, 0);
            assert_eq!((header.base_offset, header.last_offset()), (100, 102));
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (7, 3, 41)
            );
            assert_eq!((header.base_timestamp, header.max_timestamp), (777, 777));
            assert!(header.is_log_append_time());
            assert_eq!(header.compression(), 0);
            let decoded = crate::segment::decode_batch(Bytes::from(empty.clone())).unwrap();
            assert!(decoded.records.is_empty());
            // Never accepted from a producer.
            assert!(validate(&empty, 1 << 20).is_err());
        }
    }

    #[test]
    fn log_append_time_sets_bit_max_timestamp_and_crc() {
        let mut batch = BytesMut::from(&encode_batch(&[1, 2], b"abc", Compression::Gzip)[..]);
        let header = set_log_append_time(&mut batch, 777);
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 777);
        assert_eq!(header.compression(), 1);
        assert_eq!(validate(&batch, 1 << 20).unwrap(), header);
    }
}
