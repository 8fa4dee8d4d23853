//! OffsetCommit, OffsetFetch (single group, and KIP-709 batches), OffsetDelete.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::FutureExt;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use porter_core::group::{CommittedOffset, GroupError, OffsetCommit};

use super::{Context, Pending};
use crate::error::{error_code, group_code};
use crate::frame::ResponseKind;

/// OffsetCommit: applied in the ordered stage (a pipelined later commit must win), made
/// durable in the returned [`Pending`].
pub async fn commit(ctx: &Arc<Context>, request: OffsetCommitRequest) -> Pending {
    let commits: Vec<OffsetCommit> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let broker = ctx.broker.clone();
    let written = ctx
        .broker
        .groups()
        .commit_offsets(
            &request.group_id.0,
            request.generation_id_or_member_epoch,
            &request.member_id,
            instance_id.as_deref(),
            commits,
            |topic, partition| broker.partition(topic, partition).is_ok(),
        )
        .await;
    let ctx = ctx.clone();
    async move {
        let results = match written {
            Ok(written) => ctx.broker.groups().durable(written).await,
            Err(e) => Err(e),
        };
        let codes: Vec<i16> = match results {
            Ok(results) => results
                .into_iter()
                .map(|r| r.err().map_or(0, |e| group_code(e).code()))
                .collect(),
            Err(e) => {
                tracing::error!(group = %request.group_id.0, error = %e, "offset commit failed");
                let code = error_code(&e).code();
                vec![code; request.topics.iter().map(|t| t.partitions.len()).sum()]
            }
        };
        let mut codes = codes.into_iter();
        Some(ResponseKind::OffsetCommit(commit_response(
            &request.topics,
            || codes.next().unwrap_or(0),
        )))
    }
    .boxed()
}

/// An OffsetCommit answer naming every partition of `topics`, each with the next `code()`.
pub fn commit_response(
    topics: &[kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic],
    mut code: impl FnMut() -> i16,
) -> OffsetCommitResponse {
    let topics = topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's requested offsets: (topic, [(partition, committed)]).
type GroupOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

fn lookup(ctx: &Context, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> GroupOffsets {
    let groups = ctx.broker.groups();
    let wanted: Option<Vec<(String, i32)>> = topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect()
    });
    let mut out: GroupOffsets = Vec::new();
    for ((topic, partition), committed) in groups.fetch_offsets(group, wanted.as_deref()) {
        match out.last_mut() {
            Some((t, partitions)) if *t == topic => partitions.push((partition, committed)),
            _ => out.push((topic, vec![(partition, committed)])),
        }
    }
    out
}

pub fn fetch(ctx: &Arc<Context>, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let epoch = |c: &CommittedOffset| if version >= 5 { c.leader_epoch } else { -1 };
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = lookup(ctx, &g.group_id.0, topics)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, c)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(
                                                c.as_ref().map_or(-1, |c| c.offset),
                                            )
                                            .with_committed_leader_epoch(
                                                c.as_ref().map_or(-1, epoch),
                                            )
                                            .with_metadata(Some(StrBytes::from_string(
                                                c.and_then(|c| c.metadata).unwrap_or_default(),
                                            )))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = lookup(ctx, &request.group_id.0, topics)
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, c)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(c.as_ref().map_or(-1, |c| c.offset))
                                .with_committed_leader_epoch(c.as_ref().map_or(-1, epoch))
                                .with_metadata(Some(StrBytes::from_string(
                                    c.and_then(|c| c.metadata).unwrap_or_default(),
                                )))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// OffsetDelete: applied in the ordered stage, made durable in the returned [`Pending`].
pub async fn delete(ctx: &Arc<Context>, request: OffsetDeleteRequest) -> Pending {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let written = ctx
        .broker
        .groups()
        .delete_offsets(&request.group_id.0, &partitions, &subscribed_topics)
        .await;
    let ctx = ctx.clone();
    async move {
        let results = match written {
            Ok(written) => ctx.broker.groups().durable(written).await.map_err(|e| {
                tracing::error!(group = %request.group_id.0, error = %e, "offset delete failed");
                GroupError::CoordinatorNotAvailable
            }),
            Err(e) => Err(e),
        };
        let response = match results {
            Err(e) => OffsetDeleteResponse::default().with_error_code(group_code(e).code()),
            Ok(results) => {
                let mut codes = results
                    .into_iter()
                    .map(|r| r.err().map_or(0, |e| group_code(e).code()));
                OffsetDeleteResponse::default().with_topics(
                    request
                        .topics
                        .into_iter()
                        .map(|t| {
                            OffsetDeleteResponseTopic::default()
                                .with_name(t.name)
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            OffsetDeleteResponsePartition::default()
                                                .with_partition_index(p.partition_index)
                                                .with_error_code(codes.next().unwrap_or(0))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
            }
        };
        Some(ResponseKind::OffsetDelete(response))
    }
    .boxed()
}

/// The topics of a Kafka consumer's subscription (ConsumerProtocolSubscription, the metadata a
/// consumer joins its group with); None if it isn't one.
fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    if metadata.len() < 2 {
        return None;
    }
    let mut buf = metadata.clone();
    // Newer versions only add fields: read them as the newest this codec knows (Kafka's rule).
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version.min(3)).ok()?;
    Some(
        subscription
            .topics
            .into_iter()
            .map(|t| t.to_string())
            .collect(),
    )
}
