//! Metadata: the single broker, and the requested topics with their partitions (all led by it).
//! Requested topics that don't exist are auto-created when the broker and the request allow it.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use porter_core::broker::TopicHandle;
use porter_core::topic::validate_topic_name;

use super::Context;
use crate::error::error_code;

pub async fn handle(
    ctx: &Arc<Context>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = BrokerId(ctx.config.node_id);
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(ctx.config.advertised_host.clone()))
        .with_port(ctx.config.advertised_port as i32);

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<String>> = match request.topics {
        None => None,
        Some(topics) if version == 0 && topics.is_empty() => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    // Auto-creation is always allowed before v4, which added the flag.
    let allow_create = version < 4 || request.allow_auto_topic_creation;

    let mut topics = Vec::new();
    match requested {
        None => {
            for handle in ctx.broker.topics() {
                topics.push(describe(&handle, node, version));
            }
        }
        Some(names) => {
            for name in names {
                let found = if let Err(e) = validate_topic_name(&name) {
                    Err(error_code(&e))
                } else if allow_create {
                    ctx.broker
                        .topic_or_auto_create(&name)
                        .await
                        .map_err(|e| error_code(&e))
                } else {
                    ctx.broker
                        .topic(&name)
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                };
                topics.push(match found {
                    Ok(handle) => describe(&handle, node, version),
                    Err(code) => MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name))))
                        .with_error_code(code.code()),
                });
            }
        }
    }

    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(topics);
    if version >= 1 {
        response.controller_id = node;
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(ctx.config.cluster_id.clone()));
    }
    response
}

/// Fields a version lacks must stay at their defaults, or encoding fails.
fn describe(handle: &TopicHandle, node: BrokerId, version: i16) -> MetadataResponseTopic {
    let partitions = (0..handle.topic.partitions as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            handle.topic.name.clone(),
        ))))
        .with_partitions(partitions);
    if version >= 10 {
        topic.topic_id = handle.topic.id;
    }
    topic
}
