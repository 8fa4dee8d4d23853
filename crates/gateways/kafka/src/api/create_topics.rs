//! CreateTopics: each topic is created durably and independently; one bad topic fails alone.
//! Porter is a single node, so a replication factor above 1 is refused rather than faked.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use porter_core::{CoreError, TopicConfig};

use super::{duplicated, Caller, Context};
use crate::authorize::{allowed, Operation, ResourceType, CLUSTER};
use crate::error::error_code;

/// Kafka's config-source code for a per-topic override.
const CONFIG_SOURCE_TOPIC: i8 = 1;

pub async fn handle(
    ctx: &Arc<Context>,
    request: CreateTopicsRequest,
    version: i16,
    caller: &Caller,
) -> CreateTopicsResponse {
    let may_create_any = allowed(
        ctx,
        caller,
        Operation::Create,
        ResourceType::Cluster,
        CLUSTER,
    );
    let duplicates = duplicated(request.topics.iter().map(|t| t.name.0.to_string()));
    let mut results = Vec::with_capacity(request.topics.len());
    for (topic, duplicate) in request.topics.into_iter().zip(duplicates) {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        if duplicate {
            results.push(failed(
                result,
                ResponseError::InvalidRequest,
                "topic named twice in one request",
            ));
            continue;
        }
        if !may_create_any && !allowed(ctx, caller, Operation::Create, ResourceType::Topic, &name) {
            results.push(failed(
                result,
                ResponseError::TopicAuthorizationFailed,
                "creating a topic needs Create on it or on the cluster",
            ));
            continue;
        }
        if topic.replication_factor > 1 {
            results.push(failed(
                result,
                ResponseError::InvalidReplicationFactor,
                "Porter runs as a single node: replication factor must be 1 or -1",
            ));
            continue;
        }
        let partitions = if !topic.assignments.is_empty() {
            topic.assignments.len() as i64
        } else if topic.num_partitions == -1 {
            ctx.broker.config().default_partitions as i64
        } else {
            topic.num_partitions as i64
        };
        let pairs: Vec<(String, String)> = topic
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        let config =
            match TopicConfig::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Ok(config) => config,
                Err(e) => {
                    results.push(failed_core(result, &e));
                    continue;
                }
            };
        let outcome = match ctx.broker.validate_new_topic(&name, partitions) {
            Err(e) => Err(e),
            Ok(()) if request.validate_only => Ok(None),
            Ok(()) => ctx
                .broker
                .create_topic(&name, partitions as u32, config.clone())
                .await
                .map(|h| Some(h.topic.id)),
        };
        match outcome {
            Ok(id) => {
                let configs = config
                    .overrides
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                            .with_config_source(CONFIG_SOURCE_TOPIC)
                    })
                    .collect();
                let mut result = result.with_error_message(None);
                // num_partitions, replication_factor and configs came in v5, topic_id in v7.
                if version >= 5 {
                    result = result
                        .with_num_partitions(partitions as i32)
                        .with_replication_factor(1)
                        .with_configs(Some(configs));
                }
                if version >= 7 {
                    result.topic_id = id.unwrap_or_default();
                }
                results.push(result);
            }
            Err(e) => results.push(failed_core(result, &e)),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn failed(
    result: CreatableTopicResult,
    code: ResponseError,
    message: &str,
) -> CreatableTopicResult {
    result
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

fn failed_core(result: CreatableTopicResult, error: &CoreError) -> CreatableTopicResult {
    if !matches!(error, CoreError::TopicExists(_)) {
        tracing::info!(%error, "create topic refused");
    }
    failed(result, error_code(error), &error.to_string())
}
