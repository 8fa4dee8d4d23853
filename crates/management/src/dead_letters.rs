//! Dead letters and their re-drive, as RocketMQ operators know them: a consumer group's
//! messages that ran out of delivery attempts wait in the group's dead-letter topic (`DLQ.g`;
//! RocketMQ clients name it `%DLQ%g`). `GET /api/dead-letters` lists those topics and what they
//! hold; `POST /api/dead-letters/{group}/redrive` publishes up to `limit` of them back to the
//! topic each came from (the `DLQ_ORIGIN_TOPIC` property the broker wrote), without the
//! dead-letter properties, then deletes them from the dead-letter topic.
//!
//! At least once: a crash between the publish and the delete re-drives those messages again
//! next time, never loses one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use porter_core::pop::{dead_letter_group, dead_letter_topic};
use porter_core::topic_message::TopicMessage;
use porter_core::topic_publish::{publish, PartitionChoice};
use porter_core::topic_records::browse;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::Management;

/// Messages one re-drive moves at most.
pub const REDRIVE_MESSAGES_MAX: usize = 1000;
/// Bytes one re-drive reads at most.
const REDRIVE_BYTES_MAX: usize = 16 << 20;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(redrive))
}

#[utoipa::path(get, operation_id = "dead_letters_list", path = "/api/dead-letters", tag = "topics", summary = "Consumer groups' dead-letter topics and the messages they hold", responses((status = 200, description = "dead-letter topics")))]
async fn list(State(management): State<Arc<Management>>) -> Json<Value> {
    let mut topics = management.broker.topics();
    topics.sort_by(|a, b| a.topic.name.cmp(&b.topic.name));
    Json(
        topics
            .iter()
            .filter_map(|t| Some((dead_letter_group(&t.topic.name)?, t)))
            .map(|(group, t)| {
                let messages: i64 = t
                    .partitions
                    .iter()
                    .map(|p| (p.high_watermark() - p.log_start_offset()).max(0))
                    .sum();
                json!({
                    "group": group,
                    "topic": t.topic.name,
                    "rocketmq_name": format!("%DLQ%{group}"),
                    "messages": messages,
                })
            })
            .collect(),
    )
}

#[derive(Debug, Default, Deserialize)]
struct RedriveBody {
    /// Messages to move (default and most: [`REDRIVE_MESSAGES_MAX`]).
    limit: Option<usize>,
}

#[utoipa::path(post, operation_id = "dead_letters_redrive", path = "/api/dead-letters/{group}/redrive", tag = "topics", summary = "Re-drive a group's dead letters to the topics they came from", params(("group" = String, Path, description = "consumer group")), responses((status = 200, description = "how many moved, per topic"), (status = 404, description = "the group has no dead letters")))]
async fn redrive(
    State(management): State<Arc<Management>>,
    Path(group): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: RedriveBody = parse(&body)?;
    let limit = body.limit.unwrap_or(REDRIVE_MESSAGES_MAX);
    if limit == 0 || limit > REDRIVE_MESSAGES_MAX {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {REDRIVE_MESSAGES_MAX}"
        )));
    }
    let broker = &management.broker;
    let name = dead_letter_topic(&group);
    let dlq = broker.topic(&name).ok_or_else(ApiError::not_found)?;
    let mut moved = serde_json::Map::new();
    let mut total = 0usize;
    // The first dead letter that could not go back, and why.
    let mut stuck: Option<Value> = None;
    for partition in &dlq.partitions {
        if total >= limit {
            break;
        }
        let page = browse(
            partition,
            partition.log_start_offset(),
            limit - total,
            REDRIVE_BYTES_MAX,
        )
        .await?;
        if page.records.is_empty() {
            continue;
        }
        // Where this partition's re-drive stopped: before a message that cannot go back.
        let mut stopped_at = page.next_offset;
        for record in &page.records {
            let mut message = TopicMessage::decode(record, partition.index()).message;
            let origin = message.property("DLQ_ORIGIN_TOPIC").map(String::from);
            let Some(target) = origin.as_deref().and_then(|o| broker.topic(o)) else {
                stuck = Some(json!({
                    "offset": record.offset,
                    "reason": match origin {
                        Some(o) => format!("it came from {o:?}, which no longer exists"),
                        None => "it has no DLQ_ORIGIN_TOPIC".to_string(),
                    },
                }));
                stopped_at = record.offset;
                break;
            };
            message.properties.retain(|(k, _)| !k.starts_with("DLQ_"));
            publish(&target, &[(PartitionChoice::Auto, message)]).await?;
            let count = moved.entry(target.topic.name.clone()).or_insert(json!(0));
            *count = json!(count.as_u64().unwrap_or(0) + 1);
            total += 1;
        }
        broker
            .delete_records(&name, partition.index(), stopped_at)
            .await?;
        if stuck.is_some() {
            break;
        }
    }
    tracing::info!(%group, moved = total, "dead letters re-driven through the management API");
    Ok(Json(
        json!({"group": group, "moved": total, "to": moved, "stuck": stuck}),
    ))
}
