//! `compression.type` on a topic: batches are stored in its codec whatever the producer sent
//! (Kafka recompresses on append), and consumers read the same records back.

mod common;

use common::*;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::protocol::StrBytes;

/// The codec bits of every batch's attributes (byte 22 of a v2 batch, low 3 bits).
fn codecs(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while bytes.len() >= 23 {
        let length = i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        out.push(bytes[22] & 0x07);
        bytes = &bytes[(12 + length).min(bytes.len())..];
    }
    out
}

#[test]
fn batches_are_stored_in_the_topics_codec() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    for (topic, codec) in [
        ("stored-zstd", "zstd"),
        ("stored-gzip", "gzip"),
        ("as-sent", "producer"),
    ] {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("compression.type"))
                    .with_value(Some(StrBytes::from_string(codec.to_string())))])]);
        let response = client.call(5, &request);
        assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    }
    let values: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("value-{i:04}-{}", "x".repeat(64)).into_bytes())
        .collect();
    for (topic, expected_codec) in [("stored-zstd", 4u8), ("stored-gzip", 1), ("as-sent", 0)] {
        client.produce_ok(topic, 0, &values[..100]);
        client.produce_ok(topic, 0, &values[100..]);
        let request = kafka_protocol::messages::FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                kafka_protocol::messages::fetch_request::FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![
                        kafka_protocol::messages::fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let response = client.call(FETCH_VERSION, &request);
        let records = response.responses[0].partitions[0]
            .records
            .clone()
            .expect("records");
        assert_eq!(codecs(&records), vec![expected_codec; 2], "{topic}");
        let got: Vec<Vec<u8>> = client
            .fetch_all(topic, 0, 0)
            .into_iter()
            .map(|r| r.value.expect("value").to_vec())
            .collect();
        assert_eq!(
            got, values,
            "{topic}: the records read back are the ones sent"
        );
    }
}
