//! A Fetch response stays within the request's `max_bytes`, except by the first batch of the
//! first partition that has data (KIP-74): a consumer sized for `fetch.max.bytes` must be able to
//! take every response. (librdkafka's test 0082 found Porter adding a second large batch.)

mod common;

use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;

const TOPIC: &str = "large-batches";
const BATCH_VALUE_BYTES: usize = 900_000;
const MAX_BYTES: i32 = 1_000_000;

fn fetch(partitions: &[i32], max_bytes: i32, partition_max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// Record bytes per partition in a response.
fn sizes(response: &kafka_protocol::messages::FetchResponse) -> Vec<usize> {
    response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            p.records.as_ref().map_or(0, |r| r.len())
        })
        .collect()
}

#[test]
fn only_the_first_batch_of_a_response_may_exceed_its_limit() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(client.create_topic(TOPIC, 3), 0);
    for partition in 0..3 {
        for i in 0..2u8 {
            client.produce_ok(TOPIC, partition, &[vec![b'a' + i; BATCH_VALUE_BYTES]]);
        }
    }

    // Two partitions with a 900 KB batch each: only the first fits in 1 MB.
    let response = client.call(FETCH_VERSION, &fetch(&[0, 1, 2], MAX_BYTES, MAX_BYTES));
    let got = sizes(&response);
    let total: usize = got.iter().sum();
    assert!(
        total <= MAX_BYTES as usize,
        "response of {total} bytes: {got:?}"
    );
    assert!(
        got[0] > BATCH_VALUE_BYTES && got[0] < 2 * BATCH_VALUE_BYTES,
        "{got:?}"
    );
    assert_eq!(&got[1..], &[0, 0], "{got:?}");

    // A limit below one batch: the first partition still gets one whole batch, the rest none.
    let response = client.call(FETCH_VERSION, &fetch(&[2, 0], 1_000, 1_000));
    let got = sizes(&response);
    assert!(
        got[0] > BATCH_VALUE_BYTES && got[0] < 2 * BATCH_VALUE_BYTES,
        "{got:?}"
    );
    assert_eq!(got[1], 0, "{got:?}");

    // Room for everything: every partition's two batches.
    let response = client.call(FETCH_VERSION, &fetch(&[0, 1, 2], 8_000_000, 4_000_000));
    for size in sizes(&response) {
        assert!(size > 2 * BATCH_VALUE_BYTES, "{size}");
    }
}
