//! OffsetDelete (DeleteConsumerGroupOffsets) as Kafka answers it: a live group keeps the offsets
//! of the topics its members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC) and may drop the others';
//! an empty group may drop any. librdkafka's test 0081 found Porter deleting them all.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetDeleteResponse, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

const GROUP: &str = "offset-delete";
const SUBSCRIBED: &str = "subscribed";
const OTHER: &str = "no-longer-consumed";
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn group() -> GroupId {
    GroupId(StrBytes::from_static_str(GROUP))
}

/// ConsumerProtocolSubscription v0 for one topic.
fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

fn commit(member: &str, generation: i32, topic: &str) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group())
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(7)])])
}

fn delete(topics: &[&str]) -> OffsetDeleteRequest {
    OffsetDeleteRequest::default()
        .with_group_id(group())
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(0)
                        ])
                })
                .collect(),
        )
}

/// (topic, error code) per partition of a response.
fn codes(response: &OffsetDeleteResponse) -> Vec<(String, i16)> {
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.error_code))
        })
        .collect()
}

#[test]
fn a_live_group_keeps_the_offsets_of_topics_it_subscribes_to() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    for topic in [SUBSCRIBED, OTHER] {
        assert_eq!(client.create_topic(topic, 1), 0);
    }
    // Offsets for both topics while the group is empty (a consumer using assign()).
    for topic in [SUBSCRIBED, OTHER] {
        let response = client.call(8, &commit("", -1, topic));
        assert_eq!(
            response.topics[0].partitions[0].error_code, 0,
            "{response:?}"
        );
    }

    // One member subscribing to SUBSCRIBED only (JoinGroup v3: no member-id round trip).
    let join = JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(subscription(SUBSCRIBED))]);
    let joined = client.call(3, &join);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let member = joined.member_id.to_string();
    let synced = client.call(
        3,
        &SyncGroupRequest::default()
            .with_group_id(group())
            .with_generation_id(joined.generation_id)
            .with_member_id(joined.member_id.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(Bytes::new())]),
    );
    assert_eq!(synced.error_code, 0, "{synced:?}");

    let response = client.call(0, &delete(&[SUBSCRIBED, OTHER]));
    assert_eq!(
        codes(&response),
        vec![
            (SUBSCRIBED.to_string(), GROUP_SUBSCRIBED_TO_TOPIC),
            (OTHER.to_string(), 0)
        ]
    );
    // The subscribed topic's offset is still there; the other is gone.
    let committed = |client: &mut Client| {
        let request = kafka_protocol::messages::OffsetFetchRequest::default()
            .with_group_id(group())
            .with_topics(None);
        let response = client.call(7, &request);
        let mut topics: Vec<String> = response
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect();
        topics.sort();
        topics
    };
    assert_eq!(committed(&mut client), vec![SUBSCRIBED.to_string()]);

    // Once the member leaves, the group is empty and its offsets may go.
    let left = client.call(
        2,
        &LeaveGroupRequest::default()
            .with_group_id(group())
            .with_member_id(StrBytes::from_string(member)),
    );
    assert_eq!(left.error_code, 0, "{left:?}");
    let response = client.call(0, &delete(&[SUBSCRIBED]));
    assert_eq!(codes(&response), vec![(SUBSCRIBED.to_string(), 0)]);
    assert!(committed(&mut client).is_empty());
}
