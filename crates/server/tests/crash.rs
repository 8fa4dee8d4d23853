//! `kill -9` crash tests of the real `porter` binary.
//!
//! - `acked_records_survive_kill9_cycles`: an rdkafka producer (acks=all) writes unique payloads
//!   to a 2-partition topic under `--flush group`; the server is SIGKILLed at a random moment and
//!   restarted, `PORTER_CRASH_CYCLES` times (default 50). Every acknowledged record must be read
//!   back at its acknowledged offset, byte-exact, and no (partition, offset) may ever be
//!   acknowledged for two different payloads.
//! - `acked_records_survive_kill9_cycles_under_interval_flush`: the same under `--flush
//!   interval`, where the core commits on write (no fsync before the ack): kill -9 keeps the
//!   page cache, so every acknowledged record must survive too (a fifth of the cycles).
//! - `torn_tails_are_cut_on_restart`: garbage, half batches, a bad-CRC batch and zeros appended to
//!   the newest segment after a kill: all acked data stays readable, new records get the next
//!   offsets, and the server logs the truncation.
//! - `missing_or_corrupt_indexes_are_rebuilt`: `.index` files deleted, then overwritten with
//!   junk: reads by offset still find every record.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::ProducerContext;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, PurgeConfig};
use rdkafka::{ClientContext, Message};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 2;
const SENDS_PER_MS: u64 = 25;

/// (partition, offset, payload) of every record the broker acknowledged.
type AckLog = Arc<Mutex<Vec<(i32, i64, Vec<u8>)>>>;

struct AckContext {
    acked: AckLog,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            let payload = message.payload().expect("payload").to_vec();
            self.acked
                .lock()
                .unwrap()
                .push((message.partition(), message.offset(), payload));
        }
    }
}

fn producer(server: &Server, acked: &AckLog) -> BaseProducer<AckContext> {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "5000")
        .set("enable.idempotence", "false")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .set("queue.buffering.max.messages", "100000")
        .create_with_context(AckContext {
            acked: acked.clone(),
        })
        .expect("creating producer")
}

fn cycles() -> u32 {
    std::env::var("PORTER_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// Reads each partition from `from[p]` (`i64::MAX`: skip it) and checks that every expected
/// (offset → payload) at or above it is there.
fn verify_all(server: &Server, expected: &HashMap<(i32, i64), Vec<u8>>, from: &[i64]) {
    let mut client = server.connect();
    for partition in 0..PARTITIONS {
        let start = from[partition as usize];
        if start == i64::MAX {
            continue; // nothing new acked on this partition
        }
        let records: BTreeMap<i64, Vec<u8>> = client
            .fetch_all(TOPIC, partition, start)
            .into_iter()
            .map(|r| (r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()))
            .collect();
        for ((p, offset), payload) in expected {
            if *p != partition || *offset < start {
                continue;
            }
            match records.get(offset) {
                Some(got) => assert_eq!(
                    got,
                    payload,
                    "partition {p} offset {offset}: acked {:?}, read {:?}",
                    String::from_utf8_lossy(payload),
                    String::from_utf8_lossy(got)
                ),
                None => panic!(
                    "acked record {:?} at partition {p} offset {offset} is gone (log has {} records from {start})",
                    String::from_utf8_lossy(payload),
                    records.len()
                ),
            }
        }
    }
}

#[test]
fn acked_records_survive_kill9_cycles() {
    acked_records_survive(&["--flush", "group"], cycles());
}

#[test]
fn acked_records_survive_kill9_cycles_under_interval_flush() {
    acked_records_survive(
        &["--flush", "interval", "--flush-interval-ms", "200"],
        (cycles() / 5).max(10),
    );
}

/// Produces with acks=all and kills the server `total_cycles` times; see the module doc.
fn acked_records_survive(flags: &[&str], total_cycles: u32) {
    let started = Instant::now();
    let mut server = Server::start(flags);
    assert_eq!(server.connect().create_topic(TOPIC, PARTITIONS), 0);
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("PORTER_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0xc4a5),
    );
    // Every acked (partition, offset) and its payload, across all cycles.
    let mut expected: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    let mut cycles_with_acks = 0;
    for cycle in 0..total_cycles {
        if cycle > 0 {
            server.restart();
        }
        let acked: AckLog = Arc::default();
        let producer = producer(&server, &acked);
        let kill_after = Duration::from_millis(rng.u64(50..=400));
        let cycle_start = Instant::now();
        let mut seq = 0u64;
        while cycle_start.elapsed() < kill_after {
            // Paced (about 25 records/ms) so sends stay in flight right up to the kill without
            // piling up millions of records to verify.
            let allowed = cycle_start.elapsed().as_millis() as u64 * SENDS_PER_MS + 100;
            if seq >= allowed || producer.in_flight_count() > 5_000 {
                producer.poll(Duration::from_millis(1));
                continue;
            }
            let payload = format!("cycle-{cycle}-msg-{seq}-{}", rng.u64(..));
            let partition = (seq % PARTITIONS as u64) as i32;
            match producer.send::<(), _>(
                BaseRecord::to(TOPIC)
                    .partition(partition)
                    .payload(payload.as_bytes()),
            ) {
                Ok(()) => seq += 1,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "send failed: {e}"
                    );
                    producer.poll(Duration::from_millis(1));
                }
            }
            if seq.is_multiple_of(64) {
                producer.poll(Duration::ZERO);
            }
        }
        server.kill9();
        // Fail everything not yet acknowledged, and collect the acks already received.
        producer.purge(PurgeConfig::default().queue().inflight());
        let deadline = Instant::now() + Duration::from_secs(10);
        while producer.in_flight_count() > 0 {
            assert!(
                Instant::now() < deadline,
                "producer still has {} messages in flight 10 s after purge",
                producer.in_flight_count()
            );
            producer.poll(Duration::from_millis(10));
        }
        drop(producer);

        let acked = std::mem::take(&mut *acked.lock().unwrap());
        if !acked.is_empty() {
            cycles_with_acks += 1;
        }
        let mut first_new = [i64::MAX; PARTITIONS as usize];
        for (partition, offset, payload) in acked {
            assert!((0..PARTITIONS).contains(&partition));
            assert!(offset >= 0, "acked with offset {offset}");
            first_new[partition as usize] = first_new[partition as usize].min(offset);
            if let Some(previous) = expected.insert((partition, offset), payload.clone()) {
                panic!(
                    "cycle {cycle}: partition {partition} offset {offset} acked twice: first {:?}, now {:?}",
                    String::from_utf8_lossy(&previous),
                    String::from_utf8_lossy(&payload)
                );
            }
        }
        // After the restart, this cycle's acks must all be there (cheap: read from the first).
        server.restart();
        verify_all(&server, &expected, &first_new);
        server.kill9();
    }
    server.restart();
    verify_all(&server, &expected, &[0; PARTITIONS as usize]);
    // Offsets are dense: the log holds exactly as many records as its end offset says.
    let mut client = server.connect();
    for partition in 0..PARTITIONS {
        let records = client.fetch_all(TOPIC, partition, 0);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "offset gap in partition {partition}");
        }
    }
    server.terminate();
    eprintln!(
        "{flags:?}: {total_cycles} kill -9 cycles, {} acked records ({cycles_with_acks} cycles with acks) in {:?}",
        expected.len(),
        started.elapsed()
    );
    assert!(
        cycles_with_acks * 2 >= total_cycles,
        "only {cycles_with_acks} of {total_cycles} cycles got any ack: the test is not testing"
    );
}

// ---------------------------------------------------------------------------------------------

/// Produces `batches` batches of `per_batch` records to partition 0 with the raw client and
/// appends them to `acked`.
fn produce_batches(
    server: &Server,
    topic: &str,
    acked: &mut Vec<Vec<u8>>,
    batches: usize,
    per_batch: usize,
) {
    let mut client = server.connect();
    for _ in 0..batches {
        let values: Vec<Vec<u8>> = (0..per_batch)
            .map(|i| format!("{topic}-record-{}-{i}-{}", acked.len(), "p".repeat(40)).into_bytes())
            .collect();
        let base = client.produce_ok(topic, 0, &values);
        assert_eq!(base, acked.len() as i64, "offsets not dense");
        acked.extend(values);
    }
}

fn verify_dense(server: &Server, topic: &str, acked: &[Vec<u8>]) {
    let records = server.connect().fetch_all(topic, 0, 0);
    assert_eq!(records.len(), acked.len(), "record count");
    for (i, (r, want)) in records.iter().zip(acked).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value.as_deref(), Some(want.as_slice()), "offset {i}");
    }
}

fn append_to_newest_segment(server: &Server, topic: &str, bytes: &[u8]) {
    let segments = segment_files(&server.partition_dir(topic, 0), "log");
    let newest = segments.last().expect("a segment file");
    let mut file = OpenOptions::new().append(true).open(newest).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn torn_tails_are_cut_on_restart() {
    let topic = "torn";
    let mut server = Server::start(&["--flush", "group"]);
    let mut acked = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    let batch = encode_batch(&[b"torn-a".to_vec(), b"torn-b".to_vec(), b"torn-c".to_vec()]);
    let mut bad_crc = batch.to_vec();
    *bad_crc.last_mut().unwrap() ^= 0x55;
    let garbage: Vec<u8> = (0..37).map(|_| rng.u8(..)).collect();
    let mut garbage_then_half = garbage.clone();
    garbage_then_half.extend_from_slice(&batch[..batch.len() / 2]);
    let tails: Vec<(&str, Vec<u8>)> = vec![
        ("garbage then a half batch", garbage_then_half),
        ("a half batch", batch[..batch.len() / 2].to_vec()),
        ("a header-only fragment", batch[..20].to_vec()),
        ("a whole batch with a bad CRC", bad_crc),
        ("4 KiB of zeros", vec![0u8; 4096]),
        ("5 garbage bytes", garbage[..5].to_vec()),
    ];
    for (round, (what, tail)) in tails.into_iter().enumerate() {
        produce_batches(&server, topic, &mut acked, 5, 10);
        server.kill9();
        let before = server.count_log(&["truncating log at the first invalid batch"]);
        append_to_newest_segment(&server, topic, &tail);
        server.restart();
        server.wait_for_log(&["porter is listening"], Duration::from_secs(5));
        let after = server.count_log(&["WARN", "truncating log at the first invalid batch"]);
        assert!(
            after > before,
            "round {round} ({what}): no truncation warning; stderr:\n{}",
            server.stderr()
        );
        verify_dense(&server, topic, &acked);
        // New records continue right after the last acked one.
        produce_batches(&server, topic, &mut acked, 1, 3);
        verify_dense(&server, topic, &acked);
    }
    // A clean stop and start after all that changes nothing.
    server.terminate();
    server.restart();
    verify_dense(&server, topic, &acked);
    server.terminate();
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let topic = "indexed";
    let mut server = Server::start(&["--flush", "group", "--segment-bytes", "65536"]);
    let mut acked = Vec::new();
    produce_batches(&server, topic, &mut acked, 400, 10);
    let dir = server.partition_dir(topic, 0);
    let segments = segment_files(&dir, "log").len();
    assert!(segments >= 5, "only {segments} segments");
    let mut rng = fastrand::Rng::with_seed(11);

    type Damage = fn(&std::path::Path, &mut fastrand::Rng);
    let damages: Vec<(&str, Damage)> = vec![
        ("deleted", |p, _| std::fs::remove_file(p).unwrap()),
        ("random bytes", |p, rng| {
            let len = std::fs::metadata(p).unwrap().len().max(64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            std::fs::write(p, junk).unwrap();
        }),
        ("truncated to 13 bytes", |p, _| {
            let f = OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(13).unwrap();
        }),
        ("entries pointing past the end", |p, _| {
            let len = std::fs::metadata(p).unwrap().len().max(64) as usize;
            let mut junk = Vec::with_capacity(len);
            for i in 0..len / 8 {
                junk.extend_from_slice(&(i as u32 * 7).to_be_bytes());
                junk.extend_from_slice(&0x7fff_0000u32.to_be_bytes());
            }
            std::fs::write(p, junk).unwrap();
        }),
        ("emptied", |p, _| std::fs::write(p, b"").unwrap()),
    ];
    for (what, damage) in damages {
        server.kill9();
        let indexes = segment_files(&dir, "index");
        assert!(!indexes.is_empty(), "{what}: no .index files");
        for index in &indexes {
            damage(index, &mut rng);
        }
        server.restart();
        verify_dense(&server, topic, &acked);
        // Random reads by offset land exactly.
        let mut client = server.connect();
        for _ in 0..100 {
            let offset = rng.i64(0..acked.len() as i64);
            let (code, _, records) = client.fetch_once(topic, 0, offset, 1024);
            assert_eq!(code, 0);
            let first = records
                .first()
                .unwrap_or_else(|| panic!("{what}: fetch at {offset} returned nothing"));
            assert_eq!(first.offset, offset, "{what}");
            assert_eq!(
                first.value.as_deref(),
                Some(acked[offset as usize].as_slice())
            );
        }
        produce_batches(&server, topic, &mut acked, 3, 10);
        verify_dense(&server, topic, &acked);
        if what == "deleted" {
            server.wait_for_log(
                &["WARN", "rebuilding segment indexes"],
                Duration::from_secs(1),
            );
        }
    }
    // The time indexes too.
    server.kill9();
    for index in segment_files(&dir, "timeindex") {
        std::fs::remove_file(index).unwrap();
    }
    server.restart();
    verify_dense(&server, topic, &acked);
    server.terminate();
}
