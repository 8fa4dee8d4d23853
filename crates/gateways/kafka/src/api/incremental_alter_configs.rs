//! IncrementalAlterConfigs (v0–v1): SET, DELETE, APPEND and SUBTRACT on single keys of a topic's
//! overrides, all of a resource's changes applied together or not at all. APPEND and SUBTRACT
//! only make sense for list-valued keys (`cleanup.policy`). On a broker resource: SET and DELETE of
//! its dynamic configs (see porter_core::broker::dynamic_config).

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use porter_core::config::ConfigKind;
use porter_core::topic::{topic_config_key, ConfigOp};
use porter_core::CoreError;

use super::config_resources::{
    alter_broker, alter_resource, Refusal, RESOURCE_BROKER, RESOURCE_TOPIC,
};
use super::duplicated;
use super::Context;

/// Kafka's `AlterConfigOp.OpType` codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    ctx: &Arc<Context>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// One checked change: (key, op code, value).
type Change = (String, i8, Option<String>);

async fn alter(
    ctx: &Arc<Context>,
    resource: AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    let mut changes: Vec<Change> = Vec::with_capacity(resource.configs.len());
    for config in &resource.configs {
        let key = config.name.to_string();
        let op = config.config_operation;
        if !seen.insert(key.clone()) {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("config {key} named twice"),
            ));
        }
        if !(OP_SET..=OP_SUBTRACT).contains(&op) {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("unknown config operation {op} for {key}"),
            ));
        }
        if op != OP_DELETE && config.value.is_none() {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("config {key} has a null value"),
            ));
        }
        if resource.resource_type == RESOURCE_TOPIC && (op == OP_APPEND || op == OP_SUBTRACT) {
            // Unknown keys fall through to the core, which refuses them with INVALID_CONFIG.
            if let Some(spec) = topic_config_key(&key) {
                if spec.kind != ConfigKind::List {
                    return Err(Refusal::new(
                        ResponseError::InvalidRequest,
                        format!("APPEND and SUBTRACT apply only to list-valued configs, not {key}"),
                    ));
                }
            }
        }
        changes.push((key, op, config.value.as_ref().map(|v| v.to_string())));
    }
    if resource.resource_type == RESOURCE_BROKER {
        if changes
            .iter()
            .any(|(_, op, _)| *op == OP_APPEND || *op == OP_SUBTRACT)
        {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                "APPEND and SUBTRACT apply to no dynamic broker config Porter has",
            ));
        }
        return alter_broker(
            ctx,
            &resource.resource_name,
            validate_only,
            move |current| {
                let mut config = current.clone();
                for (key, op, value) in changes {
                    if op == OP_DELETE {
                        config.remove(&key);
                    } else {
                        config.insert(key, value.unwrap_or_default());
                    }
                }
                Ok(config)
            },
        )
        .await;
    }
    alter_resource(
        ctx,
        resource.resource_type,
        resource.resource_name.as_str(),
        validate_only,
        move |current, defaults| {
            let mut config = current.clone();
            for (key, op, value) in &changes {
                let value = value.as_deref().unwrap_or_default();
                let op = match *op {
                    OP_SET => ConfigOp::Set(value),
                    OP_DELETE => ConfigOp::Delete,
                    OP_APPEND => ConfigOp::Append(value),
                    _ => ConfigOp::Subtract(value),
                };
                config.alter(key, op, defaults)?;
            }
            Ok::<_, CoreError>(config)
        },
    )
    .await
}
