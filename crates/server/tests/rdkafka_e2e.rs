//! librdkafka (through the `rdkafka` crate) against a real `porter`, end to end, once per
//! compression codec: create a 3-partition topic with the AdminClient, produce 20,000 records
//! with keys, headers and explicit timestamps, stop the server with SIGTERM and start it again,
//! consume everything back with `assign` from the beginning (no group commits), look offsets up
//! by timestamp, check the metadata, delete the topic.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

const RECORDS: usize = 20_000;
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

/// Record `i` of a run; partition is `i % PARTITIONS`, timestamps rise with `i`.
fn make(codec: &str, i: usize, base_ts: i64) -> Rec {
    let filler = "lorem ipsum dolor sit amet ".repeat(i % 9);
    let mut headers = vec![
        ("idx".to_string(), Some((i as u32).to_be_bytes().to_vec())),
        ("codec".to_string(), Some(codec.as_bytes().to_vec())),
    ];
    if i.is_multiple_of(5) {
        headers.push(("null-header".to_string(), None));
    }
    if i.is_multiple_of(7) {
        headers.push(("empty".to_string(), Some(Vec::new())));
    }
    Rec {
        key: format!("key-{i}").into_bytes(),
        value: format!("{codec}-value-{i}-{filler}").into_bytes(),
        headers,
        timestamp: base_ts + i as i64,
    }
}

#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

struct CountContext(Arc<Deliveries>);

impl ClientContext for CountContext {}

impl ProducerContext for CountContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                eprintln!("delivery failed: {e}");
                self.0.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn admin_client(server: &Server) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .expect("creating admin client")
}

fn consumer(server: &Server) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        // librdkafka wants one; nothing is ever committed (Porter has no groups yet).
        .set("group.id", "porter-e2e")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("creating consumer")
}

fn run(codec: &str) {
    let started = Instant::now();
    let topic = format!("e2e-{codec}");
    let mut server = Server::start(&[]);
    let rt = runtime();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));

    // Create the topic with 3 partitions.
    let admin = admin_client(&server);
    let results = rt
        .block_on(async {
            tokio::time::timeout(
                TIMEOUT,
                admin.create_topics(
                    &[NewTopic::new(
                        &topic,
                        PARTITIONS,
                        TopicReplication::Fixed(1),
                    )],
                    &opts,
                ),
            )
            .await
        })
        .expect("create_topics timed out")
        .expect("create_topics");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].clone(), Ok(topic.clone()));

    // Produce.
    let base_ts = now_ms() - 3_600_000;
    let records: Vec<Rec> = (0..RECORDS).map(|i| make(codec, i, base_ts)).collect();
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<CountContext> = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("acks", "all")
        .set("compression.type", codec)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("enable.idempotence", "false")
        .create_with_context(CountContext(deliveries.clone()))
        .expect("creating producer");
    let deadline = Instant::now() + TIMEOUT;
    for (i, rec) in records.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &rec.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut record = BaseRecord::to(&topic)
            .partition(i as i32 % PARTITIONS)
            .key(&rec.key[..])
            .payload(&rec.value[..])
            .timestamp(rec.timestamp)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert_eq!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::QueueFull),
                        "send: {e}"
                    );
                    assert!(Instant::now() < deadline, "producer queue stayed full");
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(TIMEOUT).expect("flush");
    assert_eq!(deliveries.failed.load(Ordering::Relaxed), 0);
    assert_eq!(deliveries.ok.load(Ordering::Relaxed), RECORDS as u64);
    drop(producer);
    drop(admin);
    let produced = started.elapsed();

    // Graceful restart: SIGTERM must exit 0 and leave the clean-shutdown marker.
    let t = Instant::now();
    server.terminate();
    let stop_took = t.elapsed();
    server.restart();
    // The first start found a new directory; neither start had anything to recover.
    assert_eq!(
        (
            server.count_log(&["new data directory"]),
            server.count_log(&["no clean-shutdown marker"])
        ),
        (1, 0),
        "the restart after SIGTERM recovered as after a crash:\n{}",
        server.stderr()
    );

    // Consume everything from the beginning.
    let consumer = consumer(&server);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got: Vec<Vec<(i64, Rec)>> = vec![Vec::new(); PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut total = 0;
    while total < RECORDS {
        assert!(
            Instant::now() < deadline,
            "consumed only {total} of {RECORDS} records in 60 s"
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                // librdkafka reports connection trouble as consumer errors and recovers by
                // itself; a close initiated by the server shows up in its log, checked below.
                eprintln!("{codec}: consumer error (retrying): {e}");
                server.assert_alive();
                continue;
            }
        };
        assert_eq!(message.topic(), topic);
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                    .collect()
            })
            .unwrap_or_default();
        let rec = Rec {
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp: message.timestamp().to_millis().expect("timestamp"),
        };
        got[message.partition() as usize].push((message.offset(), rec));
        total += 1;
    }
    // Nothing more arrives.
    if let Some(extra) = consumer.poll(Duration::from_millis(300)) {
        panic!(
            "an extra message after {RECORDS}: {:?}",
            extra.map(|m| m.offset())
        );
    }
    for (p, got_p) in got.iter().enumerate() {
        let expected: Vec<&Rec> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| i % PARTITIONS as usize == p)
            .map(|(_, r)| r)
            .collect();
        assert_eq!(got_p.len(), expected.len(), "partition {p} count");
        for (n, ((offset, rec), want)) in got_p.iter().zip(&expected).enumerate() {
            assert_eq!(*offset, n as i64, "partition {p}: offsets not dense");
            assert_eq!(rec, *want, "partition {p} offset {offset}");
        }
    }
    let consumed = started.elapsed() - produced;
    let t = Instant::now();

    // ListOffsets by timestamp. Partition p holds records i = p, p+3, p+6, ... at offsets
    // 0, 1, 2, ... with timestamps base_ts + i.
    // One query per case, all three partitions in it (librdkafka takes a few hundred ms per
    // call whatever it holds).
    let n_per = (RECORDS / PARTITIONS as usize) as i64;
    type Case = fn(i64, i64, i64) -> (i64, Offset); // (base_ts + p, n_per) -> (ts, offset)
    let cases: Vec<(&str, Case)> = vec![
        ("timestamp 0", |_, _, _| (0, Offset::Offset(0))),
        ("first record", |t0, _, _| (t0, Offset::Offset(0))),
        ("between first and second", |t0, _, _| {
            (t0 + 1, Offset::Offset(1))
        }),
        ("record 1234", |t0, _, _| {
            (t0 + 3 * 1234, Offset::Offset(1234))
        }),
        ("just before record 1234", |t0, _, _| {
            (t0 + 3 * 1234 - 1, Offset::Offset(1234))
        }),
        ("last record", |t0, n, _| {
            (t0 + 3 * (n - 1), Offset::Offset(n - 1))
        }),
        ("after the last record", |t0, _, records| {
            (t0 + 10 * records, Offset::End)
        }),
    ];
    for (what, case) in cases {
        let mut query = TopicPartitionList::new();
        let mut want = Vec::new();
        for p in 0..PARTITIONS {
            let (ts, offset) = case(base_ts + p as i64, n_per, RECORDS as i64);
            query
                .add_partition_offset(&topic, p, Offset::Offset(ts))
                .unwrap();
            want.push(offset);
        }
        let answer = consumer
            .offsets_for_times(query, TIMEOUT)
            .unwrap_or_else(|e| panic!("{codec}: offsets_for_times ({what}): {e}"));
        for (p, want) in want.into_iter().enumerate() {
            let found = answer
                .find_partition(&topic, p as i32)
                .expect("partition in answer");
            assert_eq!(found.offset(), want, "{codec}: partition {p}, {what}");
        }
    }

    let by_time_took = t.elapsed();

    // Metadata.
    let t = Instant::now();
    let metadata = consumer
        .fetch_metadata(Some(&topic), TIMEOUT)
        .expect("metadata");
    let entry = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("topic in metadata");
    assert!(entry.error().is_none(), "{:?}", entry.error());
    assert_eq!(entry.partitions().len(), PARTITIONS as usize);
    for (i, p) in entry.partitions().iter().enumerate() {
        assert_eq!(p.id(), i as i32);
        assert_eq!(p.leader(), metadata.brokers()[0].id());
    }
    assert_eq!(metadata.brokers().len(), 1);
    assert_eq!(metadata.brokers()[0].port() as u16, server.port);
    drop(consumer);
    let metadata_took = t.elapsed();

    // Delete the topic: gone from metadata.
    let admin = admin_client(&server);
    let results = rt
        .block_on(async {
            tokio::time::timeout(TIMEOUT, admin.delete_topics(&[&topic], &opts)).await
        })
        .expect("delete_topics timed out")
        .expect("delete_topics");
    assert_eq!(results[0].clone(), Ok(topic.clone()));
    let metadata = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    assert!(
        metadata.topics().iter().all(|t| t.name() != topic),
        "{topic} still in metadata after delete"
    );
    drop(admin);
    let t = Instant::now();
    server.terminate();
    let stderr = server.stderr();
    assert!(
        !stderr.contains("closing connection") && !stderr.contains("panicked"),
        "the server dropped a client connection or panicked:\n{stderr}"
    );
    eprintln!(
        "{codec}: produced {RECORDS} in {produced:?}, SIGTERM stop {stop_took:?}, consumed in \
         {consumed:?}, offsets_for_times {by_time_took:?}, metadata {metadata_took:?}, final stop \
         {:?}, total {:?}",
        t.elapsed(),
        started.elapsed()
    );
}

#[test]
fn codec_none() {
    run("none");
}

#[test]
fn codec_gzip() {
    run("gzip");
}

#[test]
fn codec_snappy() {
    run("snappy");
}

#[test]
fn codec_lz4() {
    run("lz4");
}

#[test]
fn codec_zstd() {
    run("zstd");
}
