//! DescribeConfigs (v1–v4): a topic's every config with its effective value and source
//! (DYNAMIC_TOPIC_CONFIG for an override, then DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG,
//! STATIC_BROKER_CONFIG or DEFAULT_CONFIG), or the broker's. Synonyms and documentation when asked
//! for.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use porter_core::config::{ConfigEntry, ConfigKind, ConfigSource, ConfigSynonym};
use porter_core::topic::validate_topic_name;

use super::config_resources::{kind_code, source_code, Refusal, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::Context;

pub fn handle(ctx: &Arc<Context>, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_message(None);
            match describe(ctx, &resource) {
                Ok(entries) => {
                    let configs = entries
                        .into_iter()
                        .filter(|e| wanted(&resource, &e.name))
                        .map(|e| encode(e, request.include_synonyms, request.include_documentation))
                        .collect();
                    result.with_configs(configs)
                }
                Err(refusal) => result
                    .with_error_code(refusal.code())
                    .with_error_message(refusal.message()),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    ctx: &Arc<Context>,
    resource: &DescribeConfigsResource,
) -> Result<Vec<ConfigEntry>, Refusal> {
    let name = resource.resource_name.as_str();
    match resource.resource_type {
        RESOURCE_TOPIC => {
            validate_topic_name(name).map_err(|e| Refusal::core(&e))?;
            let handle = ctx.broker.topic(name).ok_or_else(|| {
                Refusal::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown topic {name:?}"),
                )
            })?;
            Ok(ctx.broker.describe_topic_config(&handle.topic.config))
        }
        // "" is the cluster-wide dynamic default.
        RESOURCE_BROKER if name.is_empty() => Ok(ctx.broker.describe_cluster_default_config()),
        RESOURCE_BROKER if name == ctx.config.node_id.to_string() => {
            let mut entries = ctx.broker.describe_broker_config();
            entries.push(ConfigEntry {
                name: "broker.id".into(),
                value: ctx.config.node_id.to_string(),
                source: ConfigSource::BrokerConfig,
                kind: ConfigKind::Int,
                doc: "This broker's node id",
                read_only: true,
                synonyms: vec![ConfigSynonym {
                    name: "broker.id".into(),
                    value: ctx.config.node_id.to_string(),
                    source: ConfigSource::BrokerConfig,
                }],
            });
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        }
        RESOURCE_BROKER => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!(
                "unexpected broker id {name:?}: this is broker {}",
                ctx.config.node_id
            ),
        )),
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("unsupported config resource type {other}"),
        )),
    }
}

/// Null or empty `configuration_keys` means every config.
fn wanted(resource: &DescribeConfigsResource, name: &str) -> bool {
    match &resource.configuration_keys {
        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == name),
        _ => true,
    }
}

/// `config_type` and `documentation` exist from v3 on; older versions simply don't encode them.
fn encode(
    entry: ConfigEntry,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if synonyms {
        entry
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name))
                    .with_value(Some(StrBytes::from_string(s.value)))
                    .with_source(source_code(s.source))
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(entry.name))
        .with_value(Some(StrBytes::from_string(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(source_code(entry.source))
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(kind_code(entry.kind))
        .with_documentation(documentation.then(|| StrBytes::from_static_str(entry.doc)))
}
