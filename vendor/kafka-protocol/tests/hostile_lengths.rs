//! Porter patch test: lengths read off the wire must never size an allocation beyond the bytes
//! actually received. Each case hands the decoder a few bytes whose length field claims far
//! more; the decoder must return `Err` promptly. Before the patch the array cases abort the
//! process (`memory allocation of N bytes failed`), which no `catch_unwind` can stop, so a
//! passing run of this file is itself the proof. The owned `String`/`Vec<u8>` decoders are
//! crate-private, so their cases live in `src/protocol/types.rs` (`porter_hostile_lengths`).
//! See ../PORTER_PATCH.md.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Decompressor, Snappy};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{MetadataRequest, ProduceRequest};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Generous: an honest rejection takes microseconds; a multi-GiB allocation or zero-fill
/// takes seconds or kills the process.
const DECODE_MS_MAX: u128 = 500;

fn assert_fails_fast<T: std::fmt::Debug>(what: &str, decode: impl FnOnce() -> anyhow::Result<T>) {
    let started = Instant::now();
    let result = decode();
    let elapsed = started.elapsed();
    assert!(result.is_err(), "{what}: expected Err, got {result:?}");
    assert!(
        elapsed.as_millis() <= DECODE_MS_MAX,
        "{what}: took {elapsed:?}, more than {DECODE_MS_MAX} ms"
    );
    eprintln!("{what}: rejected in {elapsed:?}: {:#}", result.unwrap_err());
}

/// Unsigned varint as used by compact (flexible-version) lengths.
fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[test]
fn metadata_request_array_of_i32_max_topics_is_rejected() {
    // MetadataRequest v4: topics = Array(Int32 length), then allow_auto_topic_creation.
    let mut body = BytesMut::new();
    body.put_i32(i32::MAX);
    body.put_u8(1);
    assert_fails_fast("MetadataRequest v4 Array 2^31-1", || {
        MetadataRequest::decode(&mut body.freeze(), 4)
    });
}

#[test]
fn metadata_request_compact_array_of_u32_max_topics_is_rejected() {
    // MetadataRequest v12 (flexible): topics = CompactArray, varint N+1 = 2^32-1.
    let mut body = BytesMut::new();
    put_unsigned_varint(&mut body, u32::MAX);
    body.put_slice(&[0, 0, 0]);
    assert_fails_fast("MetadataRequest v12 CompactArray 2^32-2", || {
        MetadataRequest::decode(&mut body.freeze(), 12)
    });
}

#[test]
fn produce_request_topic_array_of_i32_max_is_rejected() {
    // ProduceRequest v3: transactional_id (nullable String), acks, timeout_ms, topic_data Array.
    let mut body = BytesMut::new();
    body.put_i16(-1);
    body.put_i16(-1);
    body.put_i32(30_000);
    body.put_i32(i32::MAX);
    body.put_slice(&[0, 1, b't']);
    assert_fails_fast("ProduceRequest v3 topic_data 2^31-1", || {
        ProduceRequest::decode(&mut body.freeze(), 3)
    });
}

#[test]
fn produce_request_compact_partition_array_of_u32_max_is_rejected() {
    // ProduceRequest v9 (flexible): one topic whose partition_data CompactArray claims 2^32-2.
    let mut body = BytesMut::new();
    put_unsigned_varint(&mut body, 0); // transactional_id = null
    body.put_i16(-1);
    body.put_i32(30_000);
    put_unsigned_varint(&mut body, 2); // one topic
    put_unsigned_varint(&mut body, 2); // name length 1 (+1)
    body.put_u8(b't');
    put_unsigned_varint(&mut body, u32::MAX);
    body.put_u8(0);
    assert_fails_fast("ProduceRequest v9 partition_data 2^32-2", || {
        ProduceRequest::decode(&mut body.freeze(), 9)
    });
}

#[test]
fn produce_request_string_longer_than_buffer_is_rejected() {
    // transactional_id claims 32767 bytes, 3 follow.
    let mut body = BytesMut::new();
    body.put_i16(i16::MAX);
    body.put_slice(b"abc");
    assert_fails_fast("ProduceRequest v3 transactional_id 32767", || {
        ProduceRequest::decode(&mut body.freeze(), 3)
    });
}

#[test]
fn produce_request_records_bytes_of_i32_max_is_rejected() {
    // One topic, one partition whose records (nullable Bytes) claim 2^31-1 bytes.
    let mut body = BytesMut::new();
    body.put_i16(-1);
    body.put_i16(-1);
    body.put_i32(30_000);
    body.put_i32(1);
    body.put_i16(1);
    body.put_u8(b't');
    body.put_i32(1);
    body.put_i32(0); // partition index
    body.put_i32(i32::MAX);
    body.put_slice(&[0; 16]);
    assert_fails_fast("ProduceRequest v3 records 2^31-1", || {
        ProduceRequest::decode(&mut body.freeze(), 3)
    });
}

fn one_record_batch() -> BytesMut {
    let mut headers = IndexMap::new();
    headers.insert(
        StrBytes::from_static_str("h"),
        Some(Bytes::from_static(b"v")),
    );
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"value")),
        headers,
    };
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, [&record], &options).unwrap();
    batch
}

// Record batch v2 layout: base_offset i64, batch_length i32, leader_epoch i32, magic i8,
// crc u32 (crc32c of everything after it), attributes i16, last_offset_delta i32,
// first_timestamp i64, max_timestamp i64, producer_id i64, producer_epoch i16,
// base_sequence i32, record_count i32, records.
const CRC_OFFSET: usize = 17;
const CRC_COVERED_FROM: usize = 21;
const RECORD_COUNT_OFFSET: usize = 57;

fn fix_crc(batch: &mut BytesMut) {
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_OFFSET..CRC_COVERED_FROM].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn record_batch_with_i32_max_record_count_is_rejected() {
    let mut batch = one_record_batch();
    assert!(RecordBatchDecoder::decode(&mut batch.clone().freeze()).is_ok());
    batch[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    fix_crc(&mut batch);
    assert_fails_fast("record batch record_count 2^31-1", || {
        RecordBatchDecoder::decode(&mut batch.freeze())
    });
}

#[test]
fn record_with_i32_max_header_count_is_rejected() {
    let batch = one_record_batch();
    // The record ends with: header count (varint 1 = 0x02), key "h", value "v":
    // 02 | 02 'h' | 02 'v'. Replace the count with zigzag varint i32::MAX (fe ff ff ff 0f),
    // which needs 4 more bytes: grow the record's size varint and the batch length to match.
    let header_count_at = batch.len() - 5;
    assert_eq!(&batch[header_count_at..], &[0x02, 0x02, b'h', 0x02, b'v']);
    let mut hostile = BytesMut::new();
    hostile.put_slice(&batch[..header_count_at]);
    hostile.put_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
    hostile.put_slice(&batch[header_count_at + 1..]);
    let batch_length = i32::from_be_bytes(hostile[8..12].try_into().unwrap()) + 4;
    hostile[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let record_size_at = RECORD_COUNT_OFFSET + 4;
    assert!(
        hostile[record_size_at] < 0x80,
        "one-byte record size varint"
    );
    hostile[record_size_at] += 8; // zigzag: +4 bytes of record is +8 in the varint
    fix_crc(&mut hostile);
    assert_fails_fast("record header count 2^31-1", || {
        RecordBatchDecoder::decode(&mut hostile.freeze())
    });
}

#[test]
fn snappy_block_claiming_4_gib_is_rejected() {
    // Kafka (xerial) snappy framing: magic header, then u32 block length + block. The block's
    // varint header claims 2^32-1 uncompressed bytes.
    let mut framed = BytesMut::new();
    framed.put_slice(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
    let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    framed.put_u32(block.len() as u32);
    framed.put_slice(&block);
    assert_fails_fast("xerial snappy block 2^32-1", || {
        Snappy::decompress(&mut framed.freeze(), |_| Ok(()))
    });

    // Raw (unframed) snappy fallback with the same hostile header.
    let mut raw = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    assert_fails_fast("raw snappy 2^32-1", || {
        Snappy::decompress(&mut raw, |_| Ok(()))
    });
}
