//! AlterConfigs (v0–v2), the legacy API: the configs sent become the topic's whole override set
//! (any override not named is removed), as in Kafka; on a broker resource, its whole set of dynamic
//! configs (see porter_core::broker::dynamic_config).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use porter_core::TopicConfig;

use super::config_resources::{
    alter_broker, alter_resource, Refusal, RESOURCE_BROKER, RESOURCE_TOPIC,
};
use super::duplicated;
use super::Context;

pub async fn handle(ctx: &Arc<Context>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let duplicates = duplicated(
        request
            .resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.to_string())),
    );
    let mut responses = Vec::with_capacity(request.resources.len());
    for (resource, duplicate) in request.resources.into_iter().zip(duplicates) {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone())
            .with_error_message(None);
        let outcome = if duplicate {
            Err(Refusal::new(
                ResponseError::InvalidRequest,
                "resource named twice in one request",
            ))
        } else {
            alter(ctx, resource, request.validate_only).await
        };
        responses.push(match outcome {
            Ok(()) => response,
            Err(refusal) => response
                .with_error_code(refusal.code())
                .with_error_message(refusal.message()),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

async fn alter(
    ctx: &Arc<Context>,
    resource: AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    let mut pairs = Vec::with_capacity(resource.configs.len());
    for config in &resource.configs {
        let key = config.name.to_string();
        if !seen.insert(key.clone()) {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("config {key} named twice"),
            ));
        }
        let Some(value) = &config.value else {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("config {key} has a null value"),
            ));
        };
        pairs.push((key, value.to_string()));
    }
    if resource.resource_type == RESOURCE_BROKER {
        // The sent configs become the broker's whole dynamic set, as for a topic.
        let config: BTreeMap<String, String> = pairs.into_iter().collect();
        return alter_broker(ctx, &resource.resource_name, validate_only, move |_| {
            Ok(config)
        })
        .await;
    }
    // Parsed before routing, so bad keys and values are INVALID_CONFIG even under validate_only.
    let config = match resource.resource_type {
        RESOURCE_TOPIC => {
            TopicConfig::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(|e| Refusal::core(&e))?
        }
        _ => TopicConfig::default(),
    };
    alter_resource(
        ctx,
        resource.resource_type,
        resource.resource_name.as_str(),
        validate_only,
        move |_, _| Ok(config),
    )
    .await
}
