//! DescribeTopicPartitions (KIP-966): Metadata's topic part for clusters with many partitions,
//! paginated. Topics come sorted by name; a response holds at most `response_partition_limit`
//! partitions (and the broker's own cap), and `next_cursor` says where the next one starts.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::TOPIC_OPERATIONS_ALL;
use super::Context;

/// Partitions per response at most, whatever the client asks (Kafka's
/// max.request.partition.size.limit default).
pub const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

pub fn handle(
    ctx: &Arc<Context>,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let node = BrokerId(ctx.config.node_id);
    let mut names: Vec<String> = if request.topics.is_empty() {
        ctx.broker
            .topics()
            .iter()
            .map(|t| t.topic.name.clone())
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (first_topic, mut first_partition) = match &request.cursor {
        Some(cursor) => {
            let topic = cursor.topic_name.0.to_string();
            if !request.topics.is_empty() && !names.contains(&topic) {
                // Kafka: a cursor must point into the requested topics.
                return DescribeTopicPartitionsResponse::default().with_topics(vec![
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(cursor.topic_name.clone()))
                        .with_error_code(ResponseError::InvalidRequest.code()),
                ]);
            }
            (Some(topic), cursor.partition_index.max(0))
        }
        None => (None, 0),
    };
    let limit = request
        .response_partition_limit
        .clamp(1, PARTITIONS_PER_RESPONSE_MAX) as usize;

    let mut budget = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names
        .into_iter()
        .filter(|n| first_topic.as_ref().is_none_or(|first| n >= first))
    {
        let Some(handle) = ctx.broker.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            first_partition = 0;
            continue;
        };
        if budget == 0 {
            next_cursor = Some(cursor(&name, 0));
            break;
        }
        let count = handle.topic.partitions as i32;
        let end = count.min(first_partition + budget as i32);
        let partitions: Vec<_> = (first_partition..end)
            .map(|index| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
            })
            .collect();
        budget -= partitions.len();
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                .with_topic_id(handle.topic.id)
                .with_partitions(partitions)
                .with_topic_authorized_operations(TOPIC_OPERATIONS_ALL),
        );
        if end < count {
            next_cursor = Some(cursor(&name, end));
            break;
        }
        first_partition = 0;
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition)
}
