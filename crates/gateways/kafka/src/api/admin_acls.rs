//! Kafka ACLs on the admin and offset-listing requests, checked before their handlers run, with
//! the operation Kafka names for each: CreatePartitions `Alter`, DeleteRecords `Delete` and
//! ListOffsets `Describe` on the topic; (Incremental)AlterConfigs `AlterConfigs` and
//! DescribeConfigs `DescribeConfigs` on the topic or the cluster; DeleteGroups and OffsetDelete
//! `Delete` on the group; DescribeProducers `Read` on the topic; DescribeCluster and
//! DescribeLogDirs `Describe` on the cluster.
//!
//! A request naming a resource the caller may not use is refused whole (each resource answered
//! with the authorisation error of its kind): admin clients send one resource per request, and
//! refusing more than asked never grants too much.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse as ProducersPartition, TopicResponse as ProducersTopic,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    AlterConfigsResponse, CreatePartitionsResponse, DeleteGroupsResponse, DeleteRecordsResponse,
    DescribeClusterResponse, DescribeConfigsResponse, DescribeLogDirsResponse,
    DescribeProducersResponse, IncrementalAlterConfigsResponse, ListOffsetsResponse,
    OffsetDeleteResponse,
};

use super::{Caller, Context};
use crate::authorize::{allowed, Operation, ResourceType, CLUSTER};
use crate::frame::{RequestKind, ResponseKind};

const TOPIC: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP: i16 = ResponseError::GroupAuthorizationFailed.code();
const CLUSTER_REFUSED: i16 = ResponseError::ClusterAuthorizationFailed.code();

/// A config resource (Kafka's type 2 topic, 4 broker, 8 broker logger) as an ACL resource, and
/// the error its refusal carries.
fn config_resource(resource_type: i8, name: &str) -> (ResourceType, String, i16) {
    match resource_type {
        2 => (ResourceType::Topic, name.to_string(), TOPIC),
        _ => (ResourceType::Cluster, CLUSTER.to_string(), CLUSTER_REFUSED),
    }
}

/// The refusal of `body`, if it names a resource the caller may not use this way.
pub fn refusal(ctx: &Context, body: &RequestKind, caller: &Caller) -> Option<ResponseKind> {
    if !ctx.config.acls {
        return None;
    }
    let topic = |op, name: &str| allowed(ctx, caller, op, ResourceType::Topic, name);
    let group = |op, name: &str| allowed(ctx, caller, op, ResourceType::Group, name);
    let config = |op, resource_type: i8, name: &str| {
        let (rt, name, _) = config_resource(resource_type, name);
        allowed(ctx, caller, op, rt, &name)
    };
    match body {
        RequestKind::CreatePartitions(r)
            if r.topics.iter().any(|t| !topic(Operation::Alter, &t.name)) =>
        {
            let results = r
                .topics
                .iter()
                .map(|t| {
                    CreatePartitionsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(TOPIC)
                })
                .collect();
            Some(ResponseKind::CreatePartitions(
                CreatePartitionsResponse::default().with_results(results),
            ))
        }
        RequestKind::DeleteRecords(r)
            if r.topics.iter().any(|t| !topic(Operation::Delete, &t.name)) =>
        {
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(TOPIC)
                        })
                        .collect();
                    DeleteRecordsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            Some(ResponseKind::DeleteRecords(
                DeleteRecordsResponse::default().with_topics(topics),
            ))
        }
        RequestKind::ListOffsets(r)
            if r.topics
                .iter()
                .any(|t| !topic(Operation::Describe, &t.name)) =>
        {
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_offset(-1)
                                .with_timestamp(-1)
                                .with_error_code(TOPIC)
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            Some(ResponseKind::ListOffsets(
                ListOffsetsResponse::default().with_topics(topics),
            ))
        }
        RequestKind::AlterConfigs(r)
            if r.resources
                .iter()
                .any(|c| !config(Operation::AlterConfigs, c.resource_type, &c.resource_name)) =>
        {
            let responses = r
                .resources
                .iter()
                .map(|c| {
                    AlterConfigsResourceResponse::default()
                        .with_resource_type(c.resource_type)
                        .with_resource_name(c.resource_name.clone())
                        .with_error_code(config_resource(c.resource_type, &c.resource_name).2)
                })
                .collect();
            Some(ResponseKind::AlterConfigs(
                AlterConfigsResponse::default().with_responses(responses),
            ))
        }
        RequestKind::IncrementalAlterConfigs(r)
            if r.resources
                .iter()
                .any(|c| !config(Operation::AlterConfigs, c.resource_type, &c.resource_name)) =>
        {
            let responses = r
                .resources
                .iter()
                .map(|c| {
                    IncrementalResult::default()
                        .with_resource_type(c.resource_type)
                        .with_resource_name(c.resource_name.clone())
                        .with_error_code(config_resource(c.resource_type, &c.resource_name).2)
                })
                .collect();
            Some(ResponseKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsResponse::default().with_responses(responses),
            ))
        }
        RequestKind::DescribeConfigs(r)
            if r.resources.iter().any(|c| {
                !config(
                    Operation::DescribeConfigs,
                    c.resource_type,
                    &c.resource_name,
                )
            }) =>
        {
            let results = r
                .resources
                .iter()
                .map(|c| {
                    DescribeConfigsResult::default()
                        .with_resource_type(c.resource_type)
                        .with_resource_name(c.resource_name.clone())
                        .with_error_code(config_resource(c.resource_type, &c.resource_name).2)
                })
                .collect();
            Some(ResponseKind::DescribeConfigs(
                DescribeConfigsResponse::default().with_results(results),
            ))
        }
        RequestKind::DeleteGroups(r)
            if r.groups_names.iter().any(|g| !group(Operation::Delete, g)) =>
        {
            let results = r
                .groups_names
                .iter()
                .map(|g| {
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(GROUP)
                })
                .collect();
            Some(ResponseKind::DeleteGroups(
                DeleteGroupsResponse::default().with_results(results),
            ))
        }
        RequestKind::OffsetDelete(r) if !group(Operation::Delete, &r.group_id) => Some(
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(GROUP)),
        ),
        // A topic's producers: `Read` on it, as Kafka asks.
        RequestKind::DescribeProducers(r)
            if r.topics.iter().any(|t| !topic(Operation::Read, &t.name)) =>
        {
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&i| {
                            ProducersPartition::default()
                                .with_partition_index(i)
                                .with_error_code(TOPIC)
                        })
                        .collect();
                    ProducersTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            Some(ResponseKind::DescribeProducers(
                DescribeProducersResponse::default().with_topics(topics),
            ))
        }
        // The cluster's description and its log directories: `Describe` on the cluster. A
        // refused DescribeLogDirs lists nothing (v3+ also carries the error, as Kafka's does).
        RequestKind::DescribeCluster(_) | RequestKind::DescribeLogDirs(_)
            if !allowed(
                ctx,
                caller,
                Operation::Describe,
                ResourceType::Cluster,
                CLUSTER,
            ) =>
        {
            Some(match body {
                RequestKind::DescribeCluster(_) => ResponseKind::DescribeCluster(
                    DescribeClusterResponse::default().with_error_code(CLUSTER_REFUSED),
                ),
                _ => ResponseKind::DescribeLogDirs(
                    DescribeLogDirsResponse::default().with_error_code(CLUSTER_REFUSED),
                ),
            })
        }
        _ => None,
    }
}
