//! Fetch answers are streamed from the segment files, not held in memory (issue 14): a client
//! that pipelines 40 Fetch requests of up to 50 MiB each over 50 MB of data and never reads its
//! socket costs the broker less RSS than a single one of those answers, even when its memory
//! share would allow them all; and everyone else is served meanwhile.
//!
//! The share is raised to 512 MiB so that the memory budget cannot be what bounds the broker
//! (with answers built in memory, this scenario measured 543 MiB of growth): only answers that
//! never enter the heap pass.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};

const TOPIC: &str = "fifty-megabytes";
const FETCH_MAX_BYTES: i32 = 50 << 20;
const PIPELINED_FETCHES: usize = 40;
/// Less than one 50 MB answer: a broker that built even one of them in memory fails.
const RSS_GROWTH_MAX: u64 = 32 << 20;

fn fetch() -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(FETCH_MAX_BYTES)])])
}

#[test]
fn pipelined_fetches_that_are_never_read_cost_less_than_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("porter.toml");
    std::fs::write(
        &config,
        "[kafka]\nrequest_memory_bytes_max = 1073741824\n\
         connection_memory_bytes_max = 536870912\nwrite_stall_ms = 60000\n",
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let mut client = server.connect();
    // 50 MB in the topic, in 1 MB batches of incompressible bytes.
    let mut rng = fastrand::Rng::with_seed(0xfe7c);
    for _ in 0..50 {
        let values: Vec<Vec<u8>> = (0..10)
            .map(|_| (0..100_000).map(|_| rng.u8(..)).collect())
            .collect();
        client.produce_ok(TOPIC, 0, &values);
    }
    // One ordinary fetch, read in full: the answer is all 50 MB, exact to the byte.
    let whole = client.call(12, &fetch());
    let records = whole.responses[0].partitions[0].records.clone().unwrap();
    assert!(
        records.len() > 49_000_000,
        "a 50 MiB fetch returned {} bytes",
        records.len()
    );
    let fetched = decode_records(records);
    assert_eq!(fetched.len(), 500);
    assert_eq!(fetched.last().unwrap().offset, 499);

    let pid = server.pid();
    let baseline = rss_bytes(pid);
    let mut non_reader = server.connect();
    for _ in 0..PIPELINED_FETCHES {
        let frame = non_reader.frame(12, &fetch());
        non_reader.send_raw(&frame).expect("sending a fetch");
    }
    // The broker answers all 40 (its memory share allows it) and then waits on the socket.
    let mut peak = 0;
    for _ in 0..100 {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{PIPELINED_FETCHES} unread 50 MiB fetches: RSS {} -> peak {} MiB",
        baseline >> 20,
        peak >> 20
    );
    assert!(
        peak <= baseline + RSS_GROWTH_MAX,
        "RSS grew by {} MiB (from {} MiB) for {PIPELINED_FETCHES} unread fetches",
        (peak - baseline) >> 20,
        baseline >> 20
    );

    // Everyone else is served: a produce and a full fetch on another connection.
    let mut other = server.connect();
    let offset = other.produce_ok(TOPIC, 0, &[b"after".to_vec()]);
    assert_eq!(offset, 500);
    let tail = other.fetch_all(TOPIC, 0, 500);
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].value.as_deref(), Some(&b"after"[..]));
    drop(non_reader);
}
