//! Porter's own endpoints for what RabbitMQ's API has no word for: Kafka-style topics with their
//! partitions' offsets and sizes, and consumer groups with their members and lag per partition
//! (as `kafka-consumer-groups --describe` shows it: committed offset, log end, lag).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use porter_core::broker::TopicHandle;
use porter_core::config::ConfigSource;
use porter_core::topic::ConfigOp;
use porter_core::TopicConfig;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::off_reactor;
use crate::paging::{JsonBody, ListQuery};
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_topics))
        .routes(routes!(show_topic, create_topic, alter_topic, delete_topic))
        .routes(routes!(list_groups))
        .routes(routes!(show_group))
}

/// Messages a topic holds (high watermark minus log start, summed over partitions: a compacted
/// topic holds fewer) and its bytes on disk.
fn topic_totals(topic: &TopicHandle) -> (u64, u64) {
    topic
        .partitions
        .iter()
        .fold((0, 0), |(messages, bytes), p| {
            let held = (p.high_watermark() - p.log_start_offset()).max(0) as u64;
            (messages + held, bytes + p.size_bytes())
        })
}

fn topic_summary(management: &Management, topic: &TopicHandle) -> Value {
    let (messages, size_bytes) = topic_totals(topic);
    let rates = management.rates.topic(&topic.topic.name);
    json!({
        "messages_in_rate": rates.messages_in,
        "bytes_out_rate": rates.bytes_out,
        "name": topic.topic.name,
        "id": topic.topic.id.to_string(),
        "partitions": topic.partitions.len(),
        "message_type": topic.topic.config.message_type(),
        "messages": messages,
        "size_bytes": size_bytes,
    })
}

#[utoipa::path(get, operation_id = "topics_list_topics", path = "/api/topics", tag = "topics", summary = "Topics with partitions, messages held, size and append rate", params(ListQuery), responses((status = 200, description = "topics")))]
async fn list_topics(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        let mut topics = management.broker.topics();
        topics.sort_by(|a, b| a.topic.name.cmp(&b.topic.name));
        query.apply(
            topics,
            |t| t.topic.name.as_str(),
            |t| topic_summary(&management, t),
        )
    })
    .await
}

#[utoipa::path(get, operation_id = "topics_show_topic", path = "/api/topics/{name}", tag = "topics", summary = "One topic: partitions' offsets and sizes, config overrides", params(("name" = String, Path, description = "topic")), responses((status = 200, description = "the topic"), (status = 404, description = "no such topic")))]
async fn show_topic(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let broker = &management.broker;
    let topic = broker.topic(&name).ok_or_else(ApiError::not_found)?;
    let partitions: Vec<Value> = topic
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.index(),
                "log_start_offset": p.log_start_offset(),
                "high_watermark": p.high_watermark(),
                "log_end_offset": p.log_end_offset(),
                "size_bytes": p.size_bytes(),
                "segments": p.segment_count(),
            })
        })
        .collect();
    // Only the settings made on the topic: the rest are the broker's defaults.
    let overrides = topic_overrides(&management, &topic);
    let mut body = topic_summary(&management, &topic);
    body["partition_details"] = Value::Array(partitions);
    body["config"] = json!(overrides);
    Ok(Json(body))
}

/// The body of a topic PUT: partitions (default 1) and Kafka config overrides
/// (`{"retention.ms": "3600000"}`).
#[derive(Debug, Default, Deserialize)]
pub struct TopicBody {
    pub partitions: Option<u32>,
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
}

/// A topic's config overrides as strings (numbers may be sent as numbers).
pub fn topic_config(config: &BTreeMap<String, Value>) -> ApiResult<TopicConfig> {
    let pairs: Vec<(String, String)> = config
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(ApiError::bad_request(format!(
                "config {k}: a string or a number"
            ))),
        })
        .collect::<ApiResult<_>>()?;
    Ok(TopicConfig::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?)
}

#[utoipa::path(put, operation_id = "topics_create_topic", path = "/api/topics/{name}", tag = "topics", summary = "Create a topic (partitions, config)", params(("name" = String, Path, description = "topic")), responses((status = 201, description = "created"), (status = 400, description = "bad name, count or config"), (status = 409, description = "it exists")))]
/// 201 when created; 409 if it exists (Kafka's TOPIC_ALREADY_EXISTS), 400 for a bad name,
/// partition count or config.
async fn create_topic(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: TopicBody = crate::body::parse(&body)?;
    let config = topic_config(&body.config)?;
    management
        .broker
        .create_topic(&name, body.partitions.unwrap_or(1), config)
        .await?;
    tracing::info!(topic = %name, "topic created through the management API");
    Ok(StatusCode::CREATED)
}

#[utoipa::path(patch, operation_id = "topics_alter_topic", path = "/api/topics/{name}", tag = "topics", summary = "Alter a topic: set or remove config overrides, grow partitions", params(("name" = String, Path, description = "topic")), responses((status = 200, description = "the topic as it is now"), (status = 400, description = "bad config or fewer partitions"), (status = 404, description = "no such topic")))]
/// `PATCH /api/topics/{name}` with `{"config": {"retention.ms": "60000", "cleanup.policy":
/// null}, "partitions": 6}`: sets the named overrides (null removes one, so the broker's default
/// applies again; the rest stay, as `kafka-configs --alter` does) and grows the topic to
/// `partitions`. Answers the topic as `GET` shows it.
async fn alter_topic(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: TopicBody = crate::body::parse(&body)?;
    let broker = &management.broker;
    let topic = broker.topic(&name).ok_or_else(ApiError::not_found)?;
    if let Some(partitions) = body.partitions {
        if partitions < topic.topic.partitions {
            return Err(ApiError::bad_request(format!(
                "{name} has {} partitions: they can grow, not shrink",
                topic.topic.partitions
            )));
        }
        if partitions > topic.topic.partitions {
            broker.create_partitions(&name, partitions).await?;
        }
    }
    if !body.config.is_empty() {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        for (key, value) in &body.config {
            if value.is_null() {
                removes.push(key.clone());
            } else {
                let one = BTreeMap::from([(key.clone(), value.clone())]);
                sets.extend(topic_config(&one)?.overrides);
            }
        }
        broker
            .update_topic_config(&name, false, move |current, defaults| {
                let mut config = current.clone();
                for key in &removes {
                    config.alter(key, ConfigOp::Delete, defaults)?;
                }
                for (key, value) in &sets {
                    config.set(key, value)?;
                }
                Ok(config)
            })
            .await?;
    }
    tracing::info!(topic = %name, "topic altered through the management API");
    show_topic(State(management), Path(name)).await
}

#[utoipa::path(delete, operation_id = "topics_delete_topic", path = "/api/topics/{name}", tag = "topics", summary = "Delete a topic and its records", params(("name" = String, Path, description = "topic")), responses((status = 204, description = "deleted"), (status = 404, description = "no such topic")))]
async fn delete_topic(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if management.broker.topic(&name).is_none() {
        return Err(ApiError::not_found());
    }
    management.broker.delete_topic(&name).await?;
    tracing::info!(topic = %name, "topic deleted through the management API");
    Ok(StatusCode::NO_CONTENT)
}

/// A topic's own config settings (not the broker's defaults).
pub fn topic_overrides(management: &Management, topic: &TopicHandle) -> BTreeMap<String, String> {
    management
        .broker
        .describe_topic_config(&topic.topic.config)
        .into_iter()
        .filter(|entry| entry.source == ConfigSource::TopicOverride)
        .map(|entry| (entry.name, entry.value))
        .collect()
}

#[utoipa::path(get, operation_id = "topics_list_groups", path = "/api/groups", tag = "groups", summary = "Consumer groups", params(ListQuery), responses((status = 200, description = "groups")))]
async fn list_groups(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        let groups = management.broker.groups().group_ids();
        query.apply(
        groups,
        |(id, _, _)| id.as_str(),
        |(id, protocol_type, state)| {
            json!({"group_id": id, "protocol_type": protocol_type, "state": state})
        },
    )
    })
    .await
}

/// The partitions a Kafka consumer group's leader assigned to a member: Kafka's
/// ConsumerProtocolAssignment (every version: `version: i16`, then `[topic: string, [partition:
/// i32]]`, then user data, which is not read). `None` for bytes that are not one.
pub fn consumer_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let slice = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(slice)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut assigned = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let topic = String::from_utf8(take(usize::try_from(len).ok()?)?.to_vec()).ok()?;
        let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
        // Each partition is 4 bytes: a count past what is left is a bad assignment, not a
        // reason to allocate.
        let mut partitions = Vec::with_capacity(usize::try_from(count).ok()?.min(bytes.len() / 4));
        for _ in 0..count.max(0) {
            partitions.push(i32::from_be_bytes(take(4)?.try_into().ok()?));
        }
        assigned.push((topic, partitions));
    }
    Some(assigned)
}

#[utoipa::path(get, operation_id = "topics_show_group", path = "/api/groups/{id}", tag = "groups", summary = "A group's members and lag per partition", params(("id" = String, Path, description = "group id")), responses((status = 200, description = "the group"), (status = 404, description = "no such group")))]
/// A group's members and, per partition it committed, the committed offset, the partition's
/// high watermark and the lag between them (what the group has yet to read).
async fn show_group(
    State(management): State<Arc<Management>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let broker = &management.broker;
    let groups = broker.groups();
    let description = groups.describe(&id).ok_or_else(ApiError::not_found)?;
    let members: Vec<Value> = description
        .members
        .iter()
        .map(|m| {
            let assignment: Vec<Value> = (description.protocol_type == "consumer")
                .then(|| consumer_assignment(&m.assignment))
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partitions)| json!({"topic": topic, "partitions": partitions}))
                .collect();
            json!({
                "member_id": m.member_id,
                "group_instance_id": m.instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": assignment,
            })
        })
        .collect();
    let mut total_lag: i64 = 0;
    let offsets: Vec<Value> = groups
        .fetch_offsets(&id, None)
        .into_iter()
        .filter_map(|((topic, partition), committed)| {
            let committed = committed?;
            let end = broker
                .partition(&topic, partition)
                .ok()
                .map(|p| p.high_watermark());
            let lag = end.map(|end| (end - committed.offset).max(0));
            total_lag += lag.unwrap_or(0);
            Some(json!({
                "topic": topic,
                "partition": partition,
                "committed_offset": committed.offset,
                "log_end_offset": end,
                "lag": lag,
                "metadata": committed.metadata,
            }))
        })
        .collect();
    Ok(Json(json!({
        "group_id": description.group_id,
        "state": description.state,
        "protocol_type": description.protocol_type,
        "protocol": description.protocol,
        "members": members,
        "offsets": offsets,
        "lag": total_lag,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_assignments_decode_and_garbage_does_not() {
        // v0: one topic "t" with partitions 0 and 2, then empty user data.
        let mut bytes = vec![0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2];
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            consumer_assignment(&bytes),
            Some(vec![("t".to_string(), vec![0, 2])])
        );
        assert_eq!(consumer_assignment(&[0, 0]), None);
        assert_eq!(
            consumer_assignment(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff]),
            None,
            "a partition count past the bytes"
        );
    }
}
