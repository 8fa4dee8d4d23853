//! Requests pipelined on one connection take effect in the order they were sent, as on Kafka
//! (which reads a connection's next request only after answering the previous one). librdkafka
//! sends an asynchronous offset commit per poll without waiting; if an older commit could land
//! after a newer one, a restarted consumer would silently rewind.

mod common;

use common::*;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

const COMMIT_VERSION: i16 = 8;
const FETCH_VERSION: i16 = 7;
const GROUP: &str = "pipelined";
const TOPIC: &str = "ordered-commits";
const PARTITIONS: i32 = 4;
const COMMITS: i64 = 600;
/// An OffsetFetch is pipelined after every this many commits; it must see the last of them.
const CHECK_EVERY: i64 = 40;

fn commit(offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(
                (0..PARTITIONS)
                    .map(|p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset * 10 + p as i64)
                    })
                    .collect(),
            )])
}

fn fetch() -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes((0..PARTITIONS).collect())]))
}

fn committed(response: &OffsetFetchResponse) -> Vec<i64> {
    assert_eq!(response.error_code, 0, "{response:?}");
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "{response:?}");
            p.committed_offset
        })
        .collect()
}

fn expected(offset: i64) -> Vec<i64> {
    (0..PARTITIONS).map(|p| offset * 10 + p as i64).collect()
}

#[test]
fn pipelined_offset_commits_take_effect_in_the_order_sent() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(client.create_topic(TOPIC, PARTITIONS), 0);

    // Everything is written before anything is read: hundreds of requests in flight.
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    for offset in 1..=COMMITS {
        wire.extend_from_slice(&client.frame(COMMIT_VERSION, &commit(offset)));
        sent.push(None);
        if offset % CHECK_EVERY == 0 {
            wire.extend_from_slice(&client.frame(FETCH_VERSION, &fetch()));
            sent.push(Some(offset));
        }
    }
    let writer = {
        let mut stream = client.stream.try_clone().expect("cloning the stream");
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &wire))
    };
    for (i, check) in sent.into_iter().enumerate() {
        let correlation_id = i as i32 + 2; // create_topic used 1
        match check {
            None => {
                let (id, response) = client.read_response::<OffsetCommitRequest>(COMMIT_VERSION);
                assert_eq!(id, correlation_id, "responses come back in request order");
                let response: OffsetCommitResponse = response;
                for p in &response.topics[0].partitions {
                    assert_eq!(p.error_code, 0, "{response:?}");
                }
            }
            Some(offset) => {
                let (id, response) = client.read_response::<OffsetFetchRequest>(FETCH_VERSION);
                assert_eq!(id, correlation_id);
                assert_eq!(
                    committed(&response),
                    expected(offset),
                    "an OffsetFetch sent after commit {offset} must see it"
                );
            }
        }
    }
    writer.join().unwrap().unwrap();

    // A new connection (a restarted consumer) reads the last commit sent.
    let mut fresh = server.connect();
    assert_eq!(
        committed(&fresh.call(FETCH_VERSION, &fetch())),
        expected(COMMITS)
    );
}

/// One idempotent producer's batches, pipelined hundreds deep on one connection, are appended in
/// the order sent: each is accepted (its sequence follows the one before), their offsets ascend
/// with their sequence, and a retry of a recent one returns its original offset.
#[test]
fn pipelined_idempotent_produces_are_appended_in_sequence_order() {
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest};
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

    const BATCHES: i32 = 400;
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(client.create_topic("idempotent-pipeline", 1), 0);
    let init = client.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(init.error_code, 0, "{init:?}");
    let batch = |sequence: i32| {
        let mut record = record(format!("seq-{sequence}").as_bytes());
        record.producer_id = init.producer_id.0;
        record.producer_epoch = init.producer_epoch;
        record.sequence = sequence;
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &[record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    };
    let produce = |sequence: i32| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name("idempotent-pipeline"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(sequence)))])])
    };
    let mut wire = Vec::new();
    for sequence in 0..BATCHES {
        wire.extend_from_slice(&client.frame(PRODUCE_VERSION, &produce(sequence)));
    }
    let writer = {
        let mut stream = client.stream.try_clone().expect("cloning the stream");
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &wire))
    };
    for sequence in 0..BATCHES {
        let (_, response) = client.read_response::<ProduceRequest>(PRODUCE_VERSION);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, sequence as i64),
            "batch with sequence {sequence}"
        );
    }
    writer.join().unwrap().unwrap();

    // A retry of a recent batch (Kafka remembers a producer's last five) is the same batch: its
    // original offset, nothing appended.
    let recent = BATCHES - 2;
    let retry = client.call(PRODUCE_VERSION, &produce(recent));
    assert_eq!(
        retry.responses[0].partition_responses[0].base_offset,
        recent as i64
    );
    let values: Vec<Vec<u8>> = client
        .fetch_all("idempotent-pipeline", 0, 0)
        .into_iter()
        .map(|r| r.value.unwrap().to_vec())
        .collect();
    let expected: Vec<Vec<u8>> = (0..BATCHES)
        .map(|s| format!("seq-{s}").into_bytes())
        .collect();
    assert_eq!(values, expected);
}
