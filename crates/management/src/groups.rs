//! Changing consumer groups: `POST /api/groups/{id}/reset-offsets` (as `kafka-consumer-groups
//! --reset-offsets --execute`) and `DELETE /api/groups/{id}`. Both go through the group
//! coordinator's own calls (OffsetCommit from outside the group protocol, DeleteGroups), so they
//! are refused while the group has members, as Kafka refuses them, and answered once durable.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use porter_core::group::{GroupError, OffsetCommit};
use porter_core::topic_records::StartAt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(reset_offsets))
        .routes(routes!(delete_group))
}

fn group_error(error: GroupError) -> ApiError {
    let status = match error {
        GroupError::GroupIdNotFound => StatusCode::NOT_FOUND,
        GroupError::NonEmptyGroup
        | GroupError::UnknownMemberId
        | GroupError::IllegalGeneration
        | GroupError::RebalanceInProgress => StatusCode::CONFLICT,
        GroupError::UnknownTopicOrPartition
        | GroupError::InvalidGroupId
        | GroupError::OffsetMetadataTooLarge => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let reason = match error {
        GroupError::UnknownMemberId | GroupError::IllegalGeneration | GroupError::NonEmptyGroup => {
            "the group has active members: stop its consumers first".to_string()
        }
        other => other.to_string(),
    };
    ApiError::new(status, reason)
}

/// Where to move the group's offsets, as `kafka-consumer-groups` names it.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Target {
    Earliest,
    #[default]
    Latest,
    Offset,
    /// The first offset stored at or after `"timestamp"` (ms since the epoch), as
    /// `--to-datetime` moves it; the high watermark where nothing is that new.
    Timestamp,
}

#[derive(Debug, Default, Deserialize)]
struct ResetBody {
    topic: String,
    /// Partitions to move (all of the topic's when absent).
    partitions: Option<Vec<i32>>,
    #[serde(default)]
    to: Target,
    /// With `"to": "offset"`.
    offset: Option<i64>,
    /// With `"to": "timestamp"`, ms since the epoch.
    timestamp: Option<i64>,
}

#[utoipa::path(post, operation_id = "groups_reset_offsets", path = "/api/groups/{id}/reset-offsets", tag = "groups", summary = "Reset a group's offsets (earliest, latest, offset, timestamp)", params(("id" = String, Path, description = "group id")), responses((status = 200, description = "the new offsets"), (status = 409, description = "the group has members")))]
/// `{"topic": "t", "to": "earliest"}` (or `"latest"`, `"offset"` with `"offset": N`, or
/// `"timestamp"` with `"timestamp": ms`),
/// optionally `"partitions": [0, 1]`; answers the new offsets. An offset outside what a partition holds is
/// clamped to its log start or high watermark, as Kafka's tool does.
async fn reset_offsets(
    State(management): State<Arc<Management>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: ResetBody = parse(&body)?;
    if body.to == Target::Offset && body.offset.is_none() {
        return Err(ApiError::bad_request(
            "\"to\": \"offset\" needs \"offset\": N",
        ));
    }
    if body.to == Target::Timestamp && body.timestamp.is_none() {
        return Err(ApiError::bad_request(
            "\"to\": \"timestamp\" needs \"timestamp\": <ms since the epoch>",
        ));
    }
    let broker = &management.broker;
    let topic = broker.topic(&body.topic).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("no topic {:?}", body.topic))
    })?;
    let mut commits = Vec::new();
    let mut moved = Vec::new();
    for partition in &topic.partitions {
        if body
            .partitions
            .as_ref()
            .is_some_and(|wanted| !wanted.contains(&partition.index()))
        {
            continue;
        }
        let (start, end) = (partition.log_start_offset(), partition.high_watermark());
        let offset = match body.to {
            Target::Earliest => start,
            Target::Latest => end,
            Target::Offset => body.offset.unwrap_or(end).clamp(start, end),
            Target::Timestamp => {
                StartAt::Timestamp(body.timestamp.unwrap_or(i64::MAX))
                    .resolve(partition)
                    .await?
            }
        };
        moved.push(json!({"topic": body.topic, "partition": partition.index(), "offset": offset}));
        commits.push(OffsetCommit {
            topic: body.topic.clone(),
            partition: partition.index(),
            offset,
            leader_epoch: -1,
            metadata: None,
        });
    }
    if commits.is_empty() {
        return Err(ApiError::bad_request("none of those partitions exist"));
    }
    let groups = broker.groups();
    let written = groups
        .commit_offsets(&id, -1, "", None, commits, |topic, partition| {
            broker.partition(topic, partition).is_ok()
        })
        .await?;
    let results = groups.durable(written).await?;
    if let Some(error) = results.into_iter().find_map(Result::err) {
        return Err(group_error(error));
    }
    tracing::info!(group = %id, topic = %body.topic, "group offsets reset through the management API");
    Ok(Json(Value::Array(moved)))
}

#[utoipa::path(delete, operation_id = "groups_delete_group", path = "/api/groups/{id}", tag = "groups", summary = "Delete a group without members", params(("id" = String, Path, description = "group id")), responses((status = 204, description = "deleted"), (status = 404, description = "no such group"), (status = 409, description = "the group has members")))]
async fn delete_group(
    State(management): State<Arc<Management>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let groups = management.broker.groups();
    let written = groups.delete_group(&id).await.map_err(group_error)?;
    groups.durable(written).await?;
    tracing::info!(group = %id, "group deleted through the management API");
    Ok(StatusCode::NO_CONTENT)
}
