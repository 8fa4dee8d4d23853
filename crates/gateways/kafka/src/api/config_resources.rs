//! What DescribeConfigs, AlterConfigs and IncrementalAlterConfigs share: Kafka's resource types,
//! the outcome of one resource, and the routing of a change to a topic or (refused) broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;
use porter_core::config::{ConfigKind, ConfigSource};
use porter_core::topic::validate_topic_name;
use porter_core::topic::TopicDefaults;
use porter_core::{CoreError, TopicConfig};

use super::Context;
use crate::error::error_code;

/// Kafka's `ConfigResource.Type` codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Why one resource of a request failed: its error code and message.
#[derive(Debug)]
pub struct Refusal {
    pub code: ResponseError,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// A core error keeps its own message (it names the config key for INVALID_CONFIG).
    pub fn core(error: &CoreError) -> Self {
        Refusal::new(error_code(error), error.to_string())
    }

    pub fn code(&self) -> i16 {
        self.code.code()
    }

    pub fn message(&self) -> Option<StrBytes> {
        Some(StrBytes::from_string(self.message.clone()))
    }
}

/// Kafka's config-source code (DescribeConfigs v1+).
pub fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::TopicOverride => 1,        // DYNAMIC_TOPIC_CONFIG
        ConfigSource::DynamicBroker => 2,        // DYNAMIC_BROKER_CONFIG
        ConfigSource::DynamicDefaultBroker => 3, // DYNAMIC_DEFAULT_BROKER_CONFIG
        ConfigSource::BrokerConfig => 4,         // STATIC_BROKER_CONFIG
        ConfigSource::Default => 5,              // DEFAULT_CONFIG
    }
}

/// Kafka's config-type code (DescribeConfigs v3+).
pub fn kind_code(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Boolean => 1,
        ConfigKind::String => 2,
        ConfigKind::Int => 3,
        ConfigKind::Long => 5,
        ConfigKind::Double => 6,
        ConfigKind::List => 7,
    }
}

/// Changes a resource's configs with `change` (current overrides and broker defaults in, the
/// whole new override set out). Topics are changed durably and live; broker configs are
/// static, so a broker resource is refused.
pub async fn alter_resource<F>(
    ctx: &Arc<Context>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: F,
) -> Result<(), Refusal>
where
    F: FnOnce(&TopicConfig, &TopicDefaults) -> Result<TopicConfig, CoreError> + Send + 'static,
{
    match resource_type {
        RESOURCE_TOPIC => {
            validate_topic_name(name).map_err(|e| Refusal::core(&e))?;
            ctx.broker
                .update_topic_config(name, validate_only, change)
                .await
                .map(|_| ())
                .map_err(|e| {
                    tracing::info!(topic = name, error = %e, "topic config change refused");
                    Refusal::core(&e)
                })
        }
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("unsupported config resource type {other}"),
        )),
    }
}

/// Changes a broker resource's dynamic configs with `change` (the current set in, the whole new
/// set out): `name` is this broker's id, or empty for every broker's default (Kafka's rule).
pub async fn alter_broker<F>(
    ctx: &Arc<Context>,
    name: &str,
    validate_only: bool,
    change: F,
) -> Result<(), Refusal>
where
    F: FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, CoreError>
        + Send
        + 'static,
{
    if !name.is_empty() && name != ctx.config.node_id.to_string() {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!(
                "unexpected broker id {name:?}: this is broker {}",
                ctx.config.node_id
            ),
        ));
    }
    ctx.broker
        .update_broker_config(name, validate_only, change)
        .await
        .map_err(|e| {
            tracing::info!(broker = name, error = %e, "broker config change refused");
            match e {
                CoreError::NotDynamic(_) => {
                    Refusal::new(ResponseError::InvalidRequest, e.to_string())
                }
                other => Refusal::core(&other),
            }
        })
}

/// Every admin API of this family through the whole path (request encode → `decode_request` →
/// `handle` → `encode_response`) at every advertised version: a response field a version lacks
/// must stay at its default, or encoding fails.
#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use porter_core::{Broker, BrokerConfig};

    use super::*;
    use crate::api::{handle, supported_versions};
    use crate::config::KafkaConfig;
    use crate::frame::{decode_request, encode_response, ResponseKind};

    fn frame(api_key: ApiKey, version: i16, body: &impl Encodable) -> bytes::Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    async fn roundtrip(ctx: &Arc<Context>, api_key: ApiKey, body: impl Fn(i16) -> Vec<u8>) {
        let (min, max) = supported_versions(api_key).expect("advertised");
        for version in min..=max {
            let request = decode_request(bytes::Bytes::from(body(version)))
                .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
            let caller = crate::api::Caller {
                peer: "127.0.0.1:1".parse().unwrap(),
                principal: None,
            };
            let response: ResponseKind = handle(ctx, request, caller)
                .await
                .await
                .expect("a response");
            encode_response(api_key, version, 7, &response)
                .unwrap_or_else(|e| panic!("{api_key:?} v{version} response: {e:#}"));
        }
    }

    #[tokio::test]
    async fn every_advertised_version_encodes() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        })
        .unwrap();
        broker
            .create_topic("t", 1, porter_core::TopicConfig::default())
            .await
            .unwrap();
        let ctx = Arc::new(Context::new(broker, KafkaConfig::default()));
        let topic = || StrBytes::from_static_str("t");

        let describe = |v| {
            let resources = vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(topic()),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_BROKER)
                    .with_resource_name(StrBytes::from_static_str("0")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_static_str("missing")),
            ];
            let request = DescribeConfigsRequest::default()
                .with_resources(resources)
                .with_include_synonyms(true)
                .with_include_documentation(v >= 3);
            frame(ApiKey::DescribeConfigs, v, &request).to_vec()
        };
        roundtrip(&ctx, ApiKey::DescribeConfigs, describe).await;

        let alter = |v| {
            let config = alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("1000")));
            let resource = alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(topic())
                .with_configs(vec![config]);
            let request = AlterConfigsRequest::default().with_resources(vec![resource]);
            frame(ApiKey::AlterConfigs, v, &request).to_vec()
        };
        roundtrip(&ctx, ApiKey::AlterConfigs, alter).await;

        let incremental = |v| {
            let config = incremental_alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_config_operation(2)
                .with_value(Some(StrBytes::from_static_str("compact")));
            let resource = incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(topic())
                .with_configs(vec![config]);
            let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
            frame(ApiKey::IncrementalAlterConfigs, v, &request).to_vec()
        };
        roundtrip(&ctx, ApiKey::IncrementalAlterConfigs, incremental).await;
        let policy =
            ctx.broker.topic("t").unwrap().topic.config.overrides["cleanup.policy"].clone();
        assert_eq!(policy, "compact,delete");

        // Each version grows the topic by one more partition.
        let grow = |v: i16| {
            let request = CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(topic()))
                    .with_count(2 + v as i32)
                    .with_assignments(None),
            ]);
            frame(ApiKey::CreatePartitions, v, &request).to_vec()
        };
        roundtrip(&ctx, ApiKey::CreatePartitions, grow).await;
        assert_eq!(ctx.broker.topic("t").unwrap().partitions.len(), 5);

        let delete = |v| {
            let partition = delete_records_request::DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(0);
            let request = DeleteRecordsRequest::default().with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(TopicName(topic()))
                    .with_partitions(vec![partition]),
            ]);
            frame(ApiKey::DeleteRecords, v, &request).to_vec()
        };
        roundtrip(&ctx, ApiKey::DeleteRecords, delete).await;

        let cluster = |v| {
            let request =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            frame(ApiKey::DescribeCluster, v, &request).to_vec()
        };
        roundtrip(&ctx, ApiKey::DescribeCluster, cluster).await;

        let log_dirs = |v| {
            frame(
                ApiKey::DescribeLogDirs,
                v,
                &DescribeLogDirsRequest::default(),
            )
            .to_vec()
        };
        roundtrip(&ctx, ApiKey::DescribeLogDirs, log_dirs).await;
    }
}
