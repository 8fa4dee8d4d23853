//! Hostile and broken Kafka input against a real `porter` process, mini-redis style: raw TCP
//! clients build valid requests with `kafka-protocol` and then break them. After every case the
//! process must still be running, a fresh client must be able to produce and fetch, and every
//! record acknowledged before the case must still be there. Cases that must close the
//! connection also check that the server logged a warning saying why.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record};

/// The topic whose data every case re-checks.
const HEALTHY: &str = "healthy";
/// How long the server gets to close a connection it must close.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);
const LOG_WITHIN: Duration = Duration::from_secs(5);

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_PARTITIONS: i16 = 37;
const MAX_MESSAGE_BYTES: usize = 1_048_588;

/// A server plus the records acknowledged on `HEALTHY` so far.
struct Harness {
    server: Server,
    acked: Vec<(i64, Vec<u8>)>,
    round: u32,
}

impl Harness {
    fn new() -> Harness {
        let mut h = Harness {
            server: Server::start(&[]),
            acked: Vec::new(),
            round: 0,
        };
        h.check_healthy();
        h
    }

    /// The server is alive, a fresh client can produce and fetch, and everything acknowledged
    /// before is still there, unchanged, at its offset (and nothing else is).
    fn check_healthy(&mut self) {
        self.server.assert_alive();
        self.round += 1;
        let mut client = self.server.connect();
        let values: Vec<Vec<u8>> = (0..5)
            .map(|i| format!("healthy-{}-{i}", self.round).into_bytes())
            .collect();
        let base = client.produce_ok(HEALTHY, 0, &values);
        assert_eq!(
            base,
            self.acked.len() as i64,
            "offsets of the healthy topic skipped or reused"
        );
        for (i, v) in values.into_iter().enumerate() {
            self.acked.push((base + i as i64, v));
        }
        let got: Vec<(i64, Vec<u8>)> = client
            .fetch_all(HEALTHY, 0, 0)
            .into_iter()
            .map(|r| (r.offset, r.value.expect("value").to_vec()))
            .collect();
        assert_eq!(got, self.acked, "healthy topic's data changed");
        let stderr = self.server.stderr();
        assert!(
            !stderr.contains("panicked"),
            "porter panicked; stderr:\n{stderr}"
        );
        self.server.assert_alive();
    }

    /// Sends `bytes` on a new connection, then expects the server to close it and to log a
    /// warning line containing every one of `log`.
    fn expect_close(&mut self, bytes: &[u8], half_close: bool, log: &[&str]) {
        let mut client = self.server.connect();
        client.send_raw(bytes).expect("sending");
        if half_close {
            client.stream.shutdown(Shutdown::Write).unwrap();
        }
        client.expect_closed(CLOSE_WITHIN);
        let mut needles = vec!["WARN"];
        needles.extend_from_slice(log);
        self.server.wait_for_log(&needles, LOG_WITHIN);
        self.check_healthy();
    }
}

/// Request header bytes (no size prefix) for any key/version, flexible or not.
fn header_bytes(api_key: i16, version: i16, header_version: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bad-input")))
        .encode(&mut buf, header_version)
        .unwrap();
    buf
}

fn with_size(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn random_bytes_close_the_connection() {
    let mut h = Harness::new();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let before = h.server.count_log(&["WARN", "closing connection"]);
    for _ in 0..40 {
        let len = rng.usize(1..4096);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let mut client = h.server.connect();
        // The server may close before it has read everything: a failed write is fine.
        let _ = client.send_raw(&bytes);
        let _ = client.stream.shutdown(Shutdown::Write);
        client.expect_closed(CLOSE_WITHIN);
    }
    // Random input nearly always breaks framing or names an unknown API; a stream that ends
    // exactly on a frame boundary closes silently, so only require that most cases logged.
    let after = h.server.count_log(&["WARN", "closing connection"]);
    assert!(after - before >= 30, "only {} warnings", after - before);
    h.check_healthy();
}

#[test]
fn oversized_and_negative_frame_sizes_close_the_connection() {
    let mut h = Harness::new();
    for size in [
        0x7fff_ffffu32,    // 2 GiB
        200 * 1024 * 1024, // 200 MiB
        100 * 1024 * 1024 + 1,
        0x8000_0000, // negative as i32
        0xffff_ffff, // -1
    ] {
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 16]);
        let expected = format!("frame of {} bytes exceeds the limit", size as i32);
        h.expect_close(&bytes, false, &["bad framing", &expected]);
    }
}

#[test]
fn truncated_frames_are_dropped() {
    let mut h = Harness::new();
    // Size says 100, 10 bytes arrive, the client goes away.
    for (size, sent) in [(100u32, 10usize), (100 * 1024 * 1024, 10), (8, 4), (64, 0)] {
        {
            let mut client = h.server.connect();
            let mut bytes = size.to_be_bytes().to_vec();
            bytes.extend(std::iter::repeat_n(0xabu8, sent));
            client.send_raw(&bytes).unwrap();
            client.stream.flush().unwrap();
        } // dropped: closed
        let expected = format!("connection ended inside a {size}-byte frame");
        h.server
            .wait_for_log(&["WARN", "bad framing", &expected], LOG_WITHIN);
        h.check_healthy();
    }
    // A frame shorter than any request header.
    h.expect_close(&with_size(&[0, 3, 0]), false, &["closing connection"]);
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let mut h = Harness::new();
    let mut body = header_bytes(9999, 0, 1).to_vec();
    body.extend_from_slice(&[0u8; 8]);
    h.expect_close(
        &with_size(&body),
        false,
        &["bad request", "unknown API key 9999"],
    );
    // A key kafka-protocol knows but Porter does not serve (whichever ApiVersions leaves out:
    // the served set grows over time).
    let served: Vec<i16> = h
        .server
        .connect()
        .call(3, &ApiVersionsRequest::default())
        .api_keys
        .iter()
        .map(|k| k.api_key)
        .collect();
    let unserved = (0..200i16)
        .filter_map(|k| ApiKey::try_from(k).ok())
        .find(|k| !served.contains(&(*k as i16)))
        .expect("an API Porter does not serve");
    let version = unserved.valid_versions().max;
    let header_version = unserved.request_header_version(version);
    let mut body = header_bytes(unserved as i16, version, header_version).to_vec();
    body.extend_from_slice(&[0u8; 8]);
    let expected = format!("{unserved:?}");
    h.expect_close(&with_size(&body), false, &["bad request", &expected]);
}

#[test]
fn unsupported_produce_version_closes_the_connection() {
    let mut h = Harness::new();
    for version in [99i16, 2, -1] {
        let mut body = header_bytes(ApiKey::Produce as i16, version, 1).to_vec();
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .encode(&mut body, 7)
            .unwrap();
        let expected = format!("unsupported version {version} of Produce");
        h.expect_close(&with_size(&body), false, &["bad request", &expected]);
    }
}

#[test]
fn api_versions_with_unknown_version_answers_v0_with_error_35() {
    let mut h = Harness::new();
    let mut client = h.server.connect();
    let mut body = header_bytes(ApiKey::ApiVersions as i16, 99, 2).to_vec();
    // Whatever a future version's body looks like; the server must not try to parse it.
    body.extend_from_slice(&[0x42u8; 32]);
    client.send_raw(&with_size(&body)).unwrap();
    let mut frame = client.read_frame().expect("an ApiVersions v0 answer");
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 7);
    let response = ApiVersionsResponse::decode(&mut frame, 0).expect("v0 body");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    let find = |key: ApiKey| {
        response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(find(ApiKey::ApiVersions), Some((0, 3)), "{response:?}");
    assert_eq!(find(ApiKey::Produce), Some((3, 13)), "{response:?}");
    assert_eq!(find(ApiKey::Fetch), Some((4, 18)), "{response:?}");
    assert_eq!(find(ApiKey::Metadata), Some((0, 12)), "{response:?}");
    // The connection stays usable: the client retries with a version it now knows.
    let response = client.call(3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
    assert!(!response.api_keys.is_empty());
    drop(client);
    h.check_healthy();
}

#[test]
fn produce_with_bad_crc_is_rejected_and_nothing_is_appended() {
    let mut h = Harness::new();
    let mut client = h.server.connect();
    let good = encode_batch(&[b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(
        good.len(),
        12 + i32::from_be_bytes(good[8..12].try_into().unwrap()) as usize
    );
    // Flip a byte of the last record's value: covered by the CRC.
    let mut bad = good.to_vec();
    *bad.last_mut().unwrap() ^= 0xff;
    let (code, _) = client.produce_batch(HEALTHY, 0, Bytes::from(bad));
    assert_eq!(code, CORRUPT_MESSAGE);
    // Flip a byte of the stored CRC itself.
    let mut bad = good.to_vec();
    bad[17] ^= 0x01;
    let (code, _) = client.produce_batch(HEALTHY, 0, Bytes::from(bad));
    assert_eq!(code, CORRUPT_MESSAGE);
    // A batch length field that disagrees with the bytes sent.
    let mut bad = good.to_vec();
    let len = i32::from_be_bytes(bad[8..12].try_into().unwrap());
    bad[8..12].copy_from_slice(&(len + 1000).to_be_bytes());
    let (code, _) = client.produce_batch(HEALTHY, 0, Bytes::from(bad));
    assert_eq!(code, CORRUPT_MESSAGE, "batch length longer than the data");
    // Two batches where the second is cut short.
    let mut bad = good.to_vec();
    bad.extend_from_slice(&good[..good.len() / 2]);
    let (code, _) = client.produce_batch(HEALTHY, 0, Bytes::from(bad));
    assert_eq!(code, CORRUPT_MESSAGE, "a half batch after a whole one");
    // Nothing of the above reached the log: check_healthy compares the whole partition.
    drop(client);
    h.check_healthy();
}

/// A single-record batch of exactly `total` bytes (log overhead included).
fn batch_of_size(total: usize) -> Bytes {
    let mut value_len = total - 100;
    for _ in 0..10 {
        let batch = encode_batch(&[vec![b'x'; value_len]]);
        if batch.len() == total {
            return batch;
        }
        value_len = (value_len as i64 + total as i64 - batch.len() as i64) as usize;
    }
    panic!("could not build a batch of {total} bytes");
}

#[test]
fn batch_over_max_message_bytes_is_rejected() {
    let mut h = Harness::new();
    let mut client = h.server.connect();
    let (code, _) = client.produce_batch(HEALTHY, 0, batch_of_size(1_100_000));
    assert_eq!(code, MESSAGE_TOO_LARGE);
    let (code, _) = client.produce_batch(HEALTHY, 0, batch_of_size(MAX_MESSAGE_BYTES + 1));
    assert_eq!(code, MESSAGE_TOO_LARGE, "one byte over the limit");
    // Exactly at the limit is fine (on another topic, so the healthy one stays small).
    let (code, base) = client.produce_batch("at-limit", 0, batch_of_size(MAX_MESSAGE_BYTES));
    assert_eq!(code, 0, "a batch of exactly max.message.bytes");
    let records = client.fetch_all("at-limit", 0, 0);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].offset, base);
    drop(client);
    h.check_healthy();
}

#[test]
fn invalid_topic_names_are_rejected() {
    let mut h = Harness::new();
    let mut client = h.server.connect();
    let long = "a".repeat(250);
    for name in ["bad/name", long.as_str(), ".", "..", "sp ace", "bad\0nul"] {
        let (code, _) = client.produce_batch(name, 0, encode_batch(&[b"x".to_vec()]));
        assert_eq!(code, INVALID_TOPIC_EXCEPTION, "produce to {name:?}");
        let response = client.call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name(name)))
                ]))
                .with_allow_auto_topic_creation(true),
        );
        assert_eq!(
            response.topics[0].error_code, INVALID_TOPIC_EXCEPTION,
            "metadata for {name:?}"
        );
    }
    // 249 characters is the longest legal name.
    let longest = "b".repeat(249);
    let (code, base) = client.produce_batch(&longest, 0, encode_batch(&[b"x".to_vec()]));
    assert_eq!(code, 0, "249-character topic name");
    assert_eq!(base, 0);
    // None of the invalid names left a topic behind.
    let response = client.call(12, &MetadataRequest::default().with_topics(None));
    let names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert!(names.contains(&longest), "{names:?}");
    assert!(
        names.iter().all(|n| n == HEALTHY || n == &longest),
        "{names:?}"
    );
    // Partition counts out of range.
    assert_eq!(
        client.create_topic("zero-partitions", 0),
        INVALID_PARTITIONS
    );
    assert_eq!(client.create_topic("too-many", 10_001), INVALID_PARTITIONS);
    assert_eq!(
        client.create_topic("bad/create", 1),
        INVALID_TOPIC_EXCEPTION
    );
    drop(client);
    h.check_healthy();
}

#[test]
fn array_length_lies_close_the_connection() {
    let mut h = Harness::new();
    // Metadata v1: topics is an i32-length array; claim 2^31-1 entries, send 10 bytes.
    let mut body = header_bytes(ApiKey::Metadata as i16, 1, 1).to_vec();
    body.put_i32(i32::MAX);
    body.extend_from_slice(&[0u8; 10]);
    h.expect_close(&with_size(&body), false, &["bad request", "Metadata v1"]);

    // Metadata v12: compact array, length as an unsigned varint (n + 1 = 2^31).
    let mut body = header_bytes(ApiKey::Metadata as i16, 12, 2).to_vec();
    body.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    body.extend_from_slice(&[0u8; 10]);
    h.expect_close(&with_size(&body), false, &["bad request", "Metadata v12"]);

    // A topic name string claiming 32767 bytes with 3 following.
    let mut body = header_bytes(ApiKey::Metadata as i16, 1, 1).to_vec();
    body.put_i32(1);
    body.put_i16(i16::MAX);
    body.extend_from_slice(b"abc");
    h.expect_close(&with_size(&body), false, &["bad request", "Metadata v1"]);

    // Produce v3 whose records field claims 2^31-1 bytes.
    let mut body = header_bytes(ApiKey::Produce as i16, 3, 1).to_vec();
    body.put_i16(-1); // transactional_id: null
    body.put_i16(-1); // acks
    body.put_i32(1000); // timeout
    body.put_i32(1); // one topic
    body.put_i16(HEALTHY.len() as i16);
    body.extend_from_slice(HEALTHY.as_bytes());
    body.put_i32(1); // one partition
    body.put_i32(0); // index
    body.put_i32(i32::MAX); // records length
    body.extend_from_slice(&[0u8; 20]);
    h.expect_close(&with_size(&body), false, &["bad request", "Produce v3"]);
}

/// A Produce whose batch header claims more records than it holds, CRC recomputed so only a
/// look inside the batch can tell. Kafka's LogValidator rejects it (CORRUPT_MESSAGE / 87
/// INVALID_RECORD); accepting it would let one client push the log end offset by 2^31 with a
/// single record and hand consumers a batch they cannot decode.
#[test]
fn record_count_lie_is_rejected() {
    let mut h = Harness::new();
    let mut client = h.server.connect();
    for claimed in [1000i32, i32::MAX] {
        let good = encode_batch(&[b"one".to_vec()]);
        let mut bad = good.to_vec();
        // lastOffsetDelta at 23..27 and recordsCount at 57..61, kept consistent with each
        // other; the CRC (at 17..21) covers bytes 21.. and is recomputed.
        bad[23..27].copy_from_slice(&(claimed - 1).to_be_bytes());
        bad[57..61].copy_from_slice(&claimed.to_be_bytes());
        let crc = crc32c(&bad[21..]);
        bad[17..21].copy_from_slice(&crc.to_be_bytes());
        let (code, base) = client.produce_batch(HEALTHY, 0, Bytes::from(bad));
        assert!(
            code == CORRUPT_MESSAGE || code == 87,
            "a batch claiming {claimed} records but holding 1 was answered {code} \
             (base offset {base})"
        );
    }
    drop(client);
    h.check_healthy();
}

/// CRC-32C (Castagnoli), bitwise: small and only used on tiny batches.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Valid requests of every served API, each then mutated at a few random bytes (size prefix
/// kept, so the decoders see the garbage). The server may answer, error or close: it must not
/// die, and the healthy topic must be untouched.
#[test]
fn mutated_requests_do_not_hurt_the_server() {
    let mut h = Harness::new();
    let fuzz = "fuzz";
    let records: Vec<Record> = (0..3)
        .map(|i| {
            let mut r = record(format!("fuzz-value-{i}").as_bytes());
            r.offset = i;
            r.key = Some(Bytes::from(format!("key-{i}")));
            r.headers.insert(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            );
            r
        })
        .collect();
    let mut templates: Vec<Vec<u8>> = Vec::new();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(fuzz))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(encode_records(&records, compression)))])]);
        for version in [3, 9, 11] {
            templates.push(encode_frame(version, 1, &produce).to_vec());
        }
    }
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(fuzz))),
    ]));
    for version in [1, 4, 9, 12] {
        templates.push(encode_frame(version, 1, &metadata).to_vec());
    }
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(fuzz))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    for version in [4, 7, 12] {
        templates.push(encode_frame(version, 1, &fetch).to_vec());
    }
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(fuzz))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)])]);
    for version in [1, 6] {
        templates.push(encode_frame(version, 1, &list).to_vec());
    }
    templates.push(encode_frame(3, 1, &ApiVersionsRequest::default()).to_vec());

    // Make sure the fuzz topic exists and has data, so fetches and list-offsets read real logs.
    h.server.connect().produce_ok(fuzz, 0, &[b"seed".to_vec()]);

    let mut rng = fastrand::Rng::with_seed(0xf022);
    for _ in 0..400 {
        let mut frame = templates[rng.usize(..templates.len())].clone();
        // Keep the size prefix and the API key/version (so the body decoders get exercised).
        for _ in 0..rng.usize(1..=4) {
            let at = rng.usize(8..frame.len());
            frame[at] = match rng.u8(..4) {
                0 => 0xff,
                1 => 0x00,
                2 => 0x7f,
                _ => rng.u8(..),
            };
        }
        let mut client = h.server.connect();
        let _ = client.send_raw(&frame);
        let _ = client.stream.shutdown(Shutdown::Write);
        // An answer, an error or a close are all fine; don't wait on a long-polling fetch.
        client
            .stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut client.stream, &mut sink);
        h.server.assert_alive();
    }
    h.check_healthy();
}

/// A client that pipelines Fetch, Metadata and ApiVersions requests as fast as it can and never
/// reads an answer. Each Fetch could return 8 MiB, so without a bound on responses the broker
/// would hold hundreds of MiB for it. The broker must stop reading from it (its share of the
/// memory budget is used up), keep its RSS within 64 MiB of where it was, serve everyone else,
/// and close the non-reader at the write-stall deadline.
#[test]
fn a_client_that_never_reads_its_responses_is_paused_then_closed() {
    const RSS_GROWTH_MAX: u64 = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("porter.toml");
    std::fs::write(&config, "[kafka]\nwrite_stall_ms = 5000\n").unwrap();
    let mut h = Harness {
        server: Server::start(&["--config", config.to_str().unwrap()]),
        acked: Vec::new(),
        round: 0,
    };
    h.check_healthy();

    // About 10 MiB in the topic the non-reader fetches, in ~800 KiB batches.
    let topic = "big";
    let mut client = h.server.connect();
    let mut rng = fastrand::Rng::with_seed(0xb16);
    for _ in 0..12 {
        let values: Vec<Vec<u8>> = (0..8)
            .map(|_| (0..100 * 1024).map(|_| rng.u8(..)).collect())
            .collect();
        client.produce_ok(topic, 0, &values);
    }
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(8 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(8 << 20)])]);
    // Warm up: one ordinary 8 MiB fetch, read in full.
    let warm = client.call(12, &fetch);
    let got = warm.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len());
    assert!(got > 4 << 20, "the warm-up fetch returned only {got} bytes");
    let pid = h.server.pid();
    let baseline = rss_bytes(pid);

    let mut non_reader = h.server.connect();
    non_reader
        .stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let metadata = MetadataRequest::default().with_topics(None);
    let mut sent = 0;
    let mut paused = false;
    for i in 0..400_000 {
        let frame = match i % 3 {
            0 => non_reader.frame(12, &fetch),
            1 => non_reader.frame(9, &metadata),
            _ => non_reader.frame(3, &ApiVersionsRequest::default()),
        };
        if non_reader.send_raw(&frame).is_err() {
            paused = true; // the broker stopped reading: our send buffer filled up
            break;
        }
        sent += 1;
    }
    assert!(
        paused,
        "the broker read all {sent} pipelined requests of a client that never reads"
    );

    // While the non-reader is paused, the broker's memory stays bounded.
    let mut peak = 0;
    for _ in 0..50 {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        peak <= baseline + RSS_GROWTH_MAX,
        "RSS grew by {} MiB (from {} MiB) for a client that never reads",
        (peak - baseline) >> 20,
        baseline >> 20
    );
    eprintln!(
        "non-reader: {sent} requests sent, RSS {} -> peak {} MiB",
        baseline >> 20,
        peak >> 20
    );
    // ... and everyone else is served.
    h.check_healthy();

    // At the write-stall deadline the broker gives up on the non-reader.
    h.server.wait_for_log(
        &["WARN", "closing connection", "write stall deadline"],
        Duration::from_secs(30),
    );
    non_reader.expect_closed(CLOSE_WITHIN);
    h.check_healthy();
}

/// A connection that says nothing is closed at the idle deadline (Kafka:
/// connections.max.idle.ms), with a warning naming it.
#[test]
fn an_idle_connection_is_closed_at_the_idle_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("porter.toml");
    std::fs::write(&config, "[kafka]\nidle_ms = 500\n").unwrap();
    let mut h = Harness {
        server: Server::start(&["--config", config.to_str().unwrap()]),
        acked: Vec::new(),
        round: 0,
    };
    let mut idle = h.server.connect();
    // It served a request, then went quiet.
    let versions = idle.call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    idle.expect_closed(Duration::from_secs(30));
    h.server
        .wait_for_log(&["WARN", "closing connection", "idle deadline"], LOG_WITHIN);
    h.check_healthy();
}

/// `--amqp-listen off` starts the broker without its AMQP listener; Kafka is unaffected and the
/// start-up log says which listener is off.
#[test]
fn a_listener_can_be_turned_off() {
    let mut h = Harness {
        server: Server::start(&["--amqp-listen", "off"]),
        acked: Vec::new(),
        round: 0,
    };
    h.check_healthy();
    h.server
        .wait_for_log(&["porter is listening", "amqp=off"], LOG_WITHIN);
    let amqp = std::net::SocketAddr::from(([127, 0, 0, 1], h.server.amqp_port));
    assert!(
        std::net::TcpStream::connect_timeout(&amqp, Duration::from_secs(2)).is_err(),
        "something accepts on the AMQP port"
    );
}
