//! CreatePartitions (v0–v3): grows a topic to a new total. Counts only grow (INVALID_PARTITIONS
//! otherwise), since a key's partition must not move under its consumers. Porter is one node, so
//! an explicit assignment may only name this broker, once per new partition.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use porter_core::CoreError;

use super::config_resources::Refusal;
use super::{duplicated, Context};

pub async fn handle(
    ctx: &Arc<Context>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let duplicates = duplicated(request.topics.iter().map(|t| t.name.0.to_string()));
    let mut results = Vec::with_capacity(request.topics.len());
    for (topic, duplicate) in request.topics.into_iter().zip(duplicates) {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let outcome = if duplicate {
            Err(Refusal::new(
                ResponseError::InvalidRequest,
                "topic named twice in one request",
            ))
        } else {
            grow(ctx, &topic, request.validate_only).await
        };
        results.push(match outcome {
            Ok(()) => result,
            Err(refusal) => result
                .with_error_code(refusal.code())
                .with_error_message(refusal.message()),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(
    ctx: &Arc<Context>,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), Refusal> {
    let name = topic.name.as_str();
    let count = topic.count as i64;
    let current = match ctx.broker.validate_create_partitions(name, count) {
        Ok(handle) => handle.topic.partitions as i64,
        Err(CoreError::InvalidPartitions(_)) => {
            let current = ctx
                .broker
                .topic(name)
                .map_or(0, |h| h.topic.partitions as i64);
            return Err(Refusal::new(
                ResponseError::InvalidPartitions,
                if count <= current {
                    format!("topic {name:?} has {current} partitions; the count can only grow")
                } else {
                    format!("{count} partitions is above the limit")
                },
            ));
        }
        Err(e) => return Err(Refusal::core(&e)),
    };
    if let Some(assignments) = &topic.assignments {
        let node = ctx.config.node_id;
        let valid = assignments.len() as i64 == count - current
            && assignments
                .iter()
                .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
        if !valid {
            return Err(Refusal::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Porter runs as a single node: give each of the {} new partitions \
                     exactly broker {node}, or no assignment",
                    count - current
                ),
            ));
        }
    }
    if validate_only {
        return Ok(());
    }
    ctx.broker
        .create_partitions(name, count as u32)
        .await
        .map(|_| ())
        .map_err(|e| Refusal::core(&e))
}
