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

use super::{Caller, Context};
use crate::authorize::{allowed, Operation, ResourceType, CLUSTER};
use crate::error::error_code;

pub async fn handle(
    ctx: &Arc<Context>,
    request: MetadataRequest,
    version: i16,
    caller: &Caller,
) -> MetadataResponse {
    let may = |op, name: &str| allowed(ctx, caller, op, ResourceType::Topic, name);
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
    // Without an authorizer every operation is allowed; clients that ask (v8+) get the full
    // set, as Kafka answers, instead of the "not requested" marker some admin clients misread.
    let topic_operations = (version >= 8 && request.include_topic_authorized_operations)
        .then_some(TOPIC_OPERATIONS_ALL);

    let mut topics = Vec::new();
    match requested {
        None => {
            // Listing all: the topics the caller may not describe are left out, as Kafka does.
            for handle in ctx.broker.topics() {
                if may(Operation::Describe, &handle.topic.name) {
                    topics.push(describe(&handle, node, version, topic_operations));
                }
            }
        }
        Some(names) => {
            for name in names {
                let may_create = || {
                    may(Operation::Create, &name)
                        || allowed(
                            ctx,
                            caller,
                            Operation::Create,
                            ResourceType::Cluster,
                            CLUSTER,
                        )
                };
                let found = if let Err(e) = validate_topic_name(&name) {
                    Err(error_code(&e))
                } else if !may(Operation::Describe, &name) {
                    Err(ResponseError::TopicAuthorizationFailed)
                } else if allow_create && (ctx.broker.topic(&name).is_some() || may_create()) {
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
                    Ok(handle) => describe(&handle, node, version, topic_operations),
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
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS_ALL;
    }
    response
}

/// Fields a version lacks must stay at their defaults, or encoding fails.
/// Kafka's AclOperation bits a topic supports: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC_OPERATIONS_ALL: i32 = 0xDF8;
/// ... and the cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS_ALL: i32 = 0x1FA0;

fn describe(
    handle: &TopicHandle,
    node: BrokerId,
    version: i16,
    operations: Option<i32>,
) -> MetadataResponseTopic {
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
    if let Some(operations) = operations {
        topic.topic_authorized_operations = operations;
    }
    topic
}
