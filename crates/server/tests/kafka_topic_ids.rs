//! Topic ids on the data path (KIP-516): Metadata gives each topic its id, Produce v13 and Fetch
//! v13+ name topics by it, an unknown id is UNKNOWN_TOPIC_ID; and DescribeTopicPartitions
//! (KIP-966) pages through partitions with a cursor.

mod common;

use common::*;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, FetchRequest, MetadataRequest, ProduceRequest,
};
use uuid::Uuid;

const UNKNOWN_TOPIC_ID: i16 = 100;

fn topic_id(client: &mut Client, topic: &str) -> Uuid {
    let response = client.call(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ])),
    );
    let id = response.topics[0].topic_id;
    assert_ne!(id, Uuid::nil(), "{response:?}");
    id
}

fn produce_by_id(client: &mut Client, id: Uuid, values: &[Vec<u8>]) -> (i16, i64, Uuid) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_topic_id(id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(encode_batch(values)))])]);
    let response = client.call(13, &request);
    let topic = &response.responses[0];
    let partition = &topic.partition_responses[0];
    (partition.error_code, partition.base_offset, topic.topic_id)
}

fn fetch_by_id(client: &mut Client, version: i16, id: Uuid) -> (i16, Vec<Fetched>, Uuid) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.call(version, &request);
    let topic = &response.responses[0];
    let data = &topic.partitions[0];
    let records = data.records.clone().map(decode_records).unwrap_or_default();
    (data.error_code, records, topic.topic_id)
}

#[test]
fn produce_and_fetch_name_topics_by_id() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(client.create_topic("by-id", 1), 0);
    let id = topic_id(&mut client, "by-id");

    let values: Vec<Vec<u8>> = (0..3).map(|i| format!("v{i}").into_bytes()).collect();
    let (code, base, echoed) = produce_by_id(&mut client, id, &values);
    assert_eq!((code, base, echoed), (0, 0, id));
    // The same records under the name, through the versions before ids.
    let by_name: Vec<Vec<u8>> = client
        .fetch_all("by-id", 0, 0)
        .into_iter()
        .map(|r| r.value.unwrap().to_vec())
        .collect();
    assert_eq!(by_name, values);

    for version in 13..=18 {
        let (code, records, echoed) = fetch_by_id(&mut client, version, id);
        assert_eq!((code, echoed), (0, id), "Fetch v{version}");
        let got: Vec<Vec<u8>> = records
            .into_iter()
            .map(|r| r.value.unwrap().to_vec())
            .collect();
        assert_eq!(got, values, "Fetch v{version}");
    }

    let stranger = Uuid::new_v4();
    assert_eq!(
        produce_by_id(&mut client, stranger, &values).0,
        UNKNOWN_TOPIC_ID
    );
    assert_eq!(fetch_by_id(&mut client, 16, stranger).0, UNKNOWN_TOPIC_ID);

    // A topic deleted and created again under the same name has a new id; the old one is gone.
    let admin = kafka_protocol::messages::DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name("by-id")])
        .with_timeout_ms(10_000);
    assert_eq!(client.call(4, &admin).responses[0].error_code, 0);
    assert_eq!(client.create_topic("by-id", 1), 0);
    assert_ne!(topic_id(&mut client, "by-id"), id);
    assert_eq!(fetch_by_id(&mut client, 13, id).0, UNKNOWN_TOPIC_ID);
}

#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(client.create_topic("pages-a", 3), 0);
    assert_eq!(client.create_topic("pages-b", 4), 0);
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut calls = 0;
    loop {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(topic_name("pages-b")),
                TopicRequest::default().with_name(topic_name("pages-a")),
            ])
            .with_response_partition_limit(2)
            .with_cursor(cursor.take());
        let response = client.call(0, &request);
        calls += 1;
        for topic in &response.topics {
            assert_eq!(topic.error_code, 0, "{response:?}");
            assert_ne!(topic.topic_id, Uuid::nil());
            for p in &topic.partitions {
                seen.push((
                    topic.name.as_ref().unwrap().0.to_string(),
                    p.partition_index,
                ));
                assert_eq!(p.leader_id, BrokerId(0));
            }
        }
        match response.next_cursor {
            Some(next) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(next.topic_name)
                        .with_partition_index(next.partition_index),
                )
            }
            None => break,
        }
        assert!(calls < 10, "the cursor does not advance");
    }
    let expected: Vec<(String, i32)> = (0..3)
        .map(|p| ("pages-a".to_string(), p))
        .chain((0..4).map(|p| ("pages-b".to_string(), p)))
        .collect();
    assert_eq!(seen, expected, "every partition once, in order");
    assert_eq!(calls, 4);

    // An unknown topic is named with its error.
    let response = client.call(
        0,
        &DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(topic_name("pages-none"))
            ])
            .with_response_partition_limit(100),
    );
    assert_eq!(response.topics[0].error_code, 3);
}
