//! Log compaction end to end: librdkafka produces to a `cleanup.policy=compact` topic with tiny
//! segments, the broker's background cleaner (every 200 ms here, set with the TOML key
//! `storage.compaction_interval_ms`) rewrites the closed segments, and a consumer reading from
//! the beginning sees exactly the last record of each live key, at the offset it was produced
//! at, and nothing of deleted keys once `delete.retention.ms` has passed. The compacted view
//! survives a SIGTERM restart and a kill -9.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);
const PARTITIONS: i32 = 2;
const KEYS: usize = 50;
const ROUNDS: usize = 10;
/// Cleaner period of these tests' brokers.
const COMPACTION_INTERVAL_MS: u64 = 200;
const SEGMENT_BYTES: &str = "1024";

/// (partition, offset) -> (key, value); `None` value: a tombstone.
type View = BTreeMap<(i32, i64), (String, Option<String>)>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A broker whose cleaner runs every `COMPACTION_INTERVAL_MS`; the config file lives in the
/// returned dir, which must outlive the server's restarts.
fn start_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("porter-compaction-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("porter.toml");
    std::fs::write(
        &config,
        format!("[storage]\ncompaction_interval_ms = {COMPACTION_INTERVAL_MS}\n"),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    (server, dir)
}

fn create_compacted_topic(server: &Server, topic: &str, delete_retention_ms: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .expect("creating admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic_spec = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", SEGMENT_BYTES)
        .set("min.compaction.lag.ms", "0")
        .set("delete.retention.ms", delete_retention_ms);
    let results = runtime()
        .block_on(async {
            tokio::time::timeout(TIMEOUT, admin.create_topics(&[topic_spec], &opts)).await
        })
        .expect("create_topics timed out")
        .expect("create_topics");
    assert_eq!(results[0].clone(), Ok(topic.to_string()));
}

/// An idempotent producer, as modern clients are by default: the cleaner must keep each
/// producer's last batch header (its sequence state) while still removing the records in it.
fn producer(server: &Server) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "15000")
        .create()
        .expect("creating producer")
}

/// Sends `records` (key, value or tombstone) and waits for every acknowledgement; returns
/// what was produced where, in the broker's offsets.
fn produce(producer: &FutureProducer, topic: &str, records: &[(String, Option<String>)]) -> View {
    let mut pending = Vec::new();
    for (key, value) in records {
        let mut record: FutureRecord<'_, str, str> = FutureRecord::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        let future = producer
            .send_result(record)
            .unwrap_or_else(|(e, _)| panic!("enqueueing {key}: {e}"));
        pending.push((key.clone(), value.clone(), future));
    }
    let rt = runtime();
    let mut view = View::new();
    for (key, value, future) in pending {
        let delivery = rt
            .block_on(async { tokio::time::timeout(TIMEOUT, future).await })
            .unwrap_or_else(|_| panic!("delivery of {key} timed out"))
            .expect("delivery future cancelled")
            .unwrap_or_else(|(e, _)| panic!("delivery of {key} failed: {e}"));
        let prior = view.insert((delivery.partition, delivery.offset), (key, value));
        assert!(prior.is_none(), "two records acknowledged at one offset");
    }
    view
}

/// What compaction must leave of `produced`: per partition, the last record of each key, and
/// no tombstone (their `delete.retention.ms` passed).
fn compacted(produced: &View) -> View {
    let mut last: BTreeMap<(i32, &str), i64> = BTreeMap::new();
    for ((p, offset), (key, _)) in produced {
        last.insert((*p, key), *offset);
    }
    last.into_iter()
        .filter_map(|((p, _), offset)| {
            let record = produced[&(p, offset)].clone();
            record.1.is_some().then_some(((p, offset), record))
        })
        .collect()
}

/// Every record from the beginning, through the raw client (cheap enough to poll with).
fn raw_view(server: &Server, topic: &str) -> View {
    let mut client = server.connect();
    let mut view = View::new();
    for p in 0..PARTITIONS {
        for r in client.fetch_all(topic, p, 0) {
            let text =
                |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
            let key = text(r.key).expect("a keyless record in a compacted topic");
            view.insert((p, r.offset), (key, text(r.value)));
        }
    }
    view
}

/// Every record from the beginning through librdkafka, checking offsets rise in each partition.
fn consumer_view(server: &Server, topic: &str) -> View {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("creating consumer");
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .expect("fetch_watermarks");
        ends.insert(p, high);
    }
    consumer.assign(&tpl).expect("assign");
    let mut view = View::new();
    let mut next: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let deadline = Instant::now() + TIMEOUT;
    while next.iter().any(|(p, n)| *n < ends[p]) {
        assert!(
            Instant::now() < deadline,
            "consumer reached only {next:?} of {ends:?} within {TIMEOUT:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consumer error");
        let (p, offset) = (message.partition(), message.offset());
        assert!(
            offset >= next[&p],
            "partition {p}: offset {offset} after {}",
            next[&p] - 1
        );
        next.insert(p, offset + 1);
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let key = text(message.key()).expect("a keyless record in a compacted topic");
        view.insert((p, offset), (key, text(message.payload())));
    }
    view
}

/// `got == want`, reported as the records missing and unexpected (a few of each).
fn assert_same(got: &View, want: &View, what: &str) {
    if got == want {
        return;
    }
    let missing: Vec<_> = want.iter().filter(|(k, v)| got.get(k) != Some(v)).collect();
    let extra: Vec<_> = got.iter().filter(|(k, v)| want.get(k) != Some(v)).collect();
    panic!(
        "{what}: {} of {} expected records missing, e.g. {:?}; {} of {} unexpected, e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        got.len(),
        &extra[..extra.len().min(5)]
    );
}

/// Waits (bounded) until the partitions read back as `want`.
fn wait_for_view(server: &Server, topic: &str, want: &View, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = raw_view(server, topic);
        if got == *want {
            return started.elapsed();
        }
        if started.elapsed() > within {
            assert_same(&got, want, &format!("compacted view after {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn last_value_per_key_survives_restart_and_kill9() {
    let started = Instant::now();
    let topic = "profiles";
    let (mut server, _config) = start_server();
    create_compacted_topic(&server, topic, "100");
    let producer = producer(&server);

    // 10 rounds of k0..k49, each round acknowledged before the next (so batches are small and
    // segments roll often).
    let mut produced = View::new();
    for round in 0..ROUNDS {
        let records: Vec<_> = (0..KEYS)
            .map(|k| (format!("k{k}"), Some(format!("k{k}-round{round}"))))
            .collect();
        produced.extend(produce(&producer, topic, &records));
    }
    // Delete every fifth key and k1, then bring k1 back.
    let mut tombstones: Vec<_> = (0..KEYS)
        .step_by(5)
        .map(|k| (format!("k{k}"), None))
        .collect();
    tombstones.push(("k1".to_string(), None));
    produced.extend(produce(&producer, topic, &tombstones));
    produced.extend(produce(
        &producer,
        topic,
        &[("k1".to_string(), Some("k1-reborn".to_string()))],
    ));
    // Records of fresh keys, one batch each, so the segments holding the above close. Then,
    // once delete.retention.ms has passed, one more: the broker does not clean a log again
    // until it grows, so without it the tombstones of an idle log stay.
    for i in 0..20 {
        let filler = (format!("filler{i}"), Some("x".repeat(100)));
        produced.extend(produce(&producer, topic, &[filler]));
    }
    std::thread::sleep(Duration::from_millis(300));
    produced.extend(produce(
        &producer,
        topic,
        &[("last".to_string(), Some("last".to_string()))],
    ));
    drop(producer);
    let produced_in = started.elapsed();
    assert_eq!(produced.len(), KEYS * ROUNDS + tombstones.len() + 1 + 21);

    let want = compacted(&produced);
    assert!(want.values().all(|(key, _)| key != "k0" && key != "k45"));
    assert_eq!(
        want.values()
            .find(|(key, _)| key == "k1")
            .unwrap()
            .1
            .as_deref(),
        Some("k1-reborn")
    );
    let converged = wait_for_view(&server, topic, &want, Duration::from_secs(20));
    assert!(
        server.count_log(&["compacted log"]) > 0,
        "no cleaner pass logged"
    );
    for p in 0..PARTITIONS {
        let segments = segment_files(&server.partition_dir(topic, p), "log").len();
        assert!(segments > 3, "partition {p} has only {segments} segments");
    }
    assert_same(&consumer_view(&server, topic), &want, "librdkafka's view");

    // SIGTERM + restart, then kill -9 + restart: the view is the same, and stays so through
    // further cleaner passes (a restarted broker cleans every compacted log once).
    server.terminate();
    server.restart();
    assert_same(
        &consumer_view(&server, topic),
        &want,
        "after SIGTERM restart",
    );
    std::thread::sleep(Duration::from_millis(3 * COMPACTION_INTERVAL_MS));
    assert_same(
        &raw_view(&server, topic),
        &want,
        "after SIGTERM restart and a pass",
    );
    server.kill9();
    server.restart();
    assert_same(&consumer_view(&server, topic), &want, "after kill -9");
    std::thread::sleep(Duration::from_millis(3 * COMPACTION_INTERVAL_MS));
    assert_same(&raw_view(&server, topic), &want, "after kill -9 and a pass");
    server.terminate();
    let stderr = server.stderr();
    assert!(
        !stderr.contains("compaction failed") && !stderr.contains("panicked"),
        "{stderr}"
    );
    eprintln!(
        "compaction: produced {} records in {produced_in:?}, converged in {converged:?}, \
         total {:?}",
        produced.len(),
        started.elapsed()
    );
}

/// Kafka keeps the last batch of each idempotent producer so its sequence state survives, but
/// still filters the records inside it (an emptied batch stays as a header:
/// `BatchRetention.RETAIN_EMPTY`). Keeping the batch whole would let every short-lived
/// producer (each client instance gets a new producer id) pin its superseded values and
/// tombstones forever.
#[test]
fn superseded_records_in_a_gone_producers_last_batch_are_removed() {
    let (server, _config) = start_server();
    let topic = "short-lived-producers";
    create_compacted_topic(&server, topic, "100");
    let mut produced = View::new();
    // One batch: `a` (superseded below) and a tombstone for `b`, then that producer is gone.
    let gone = producer(&server);
    let first = produce(
        &gone,
        topic,
        &[("a".into(), Some("old".into())), ("b".into(), None)],
    );
    // (librdkafka's partitioner puts both keys in one partition; linger.ms makes it one batch.)
    let at: Vec<(i32, i64)> = first.keys().copied().collect();
    assert_eq!((at[0].0, at[0].1 + 1), at[1], "{first:?}");
    produced.extend(first);
    drop(gone);
    let later = producer(&server);
    produced.extend(produce(&later, topic, &[("a".into(), Some("new".into()))]));
    for i in 0..8 {
        let filler = (format!("filler{i}"), Some("x".repeat(400)));
        produced.extend(produce(&later, topic, &[filler]));
    }
    std::thread::sleep(Duration::from_millis(300));
    produced.extend(produce(&later, topic, &[("last".into(), Some("x".into()))]));
    wait_for_view(
        &server,
        topic,
        &compacted(&produced),
        Duration::from_secs(5),
    );
}
