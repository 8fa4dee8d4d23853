//! A topic's records through the API: browse them (read-only, bounded), produce a test record,
//! and delete records below an offset. What `porter consume`/`porter produce` and the UI's topic
//! page call.
//!
//! - `GET /api/topics/{name}/messages?from=first&partition=0&limit=20&max_bytes=1048576`:
//!   records from a start position in each partition (`first`, `last`, `next`, `<offset>`,
//!   `-<n>` for n from the end, `timestamp=<ms>`), in partition then offset order, with each
//!   partition's `next_offsets` to continue from; `?key=k` instead answers the newest records
//!   with that key (a bounded backward scan). A browse never moves a group's offsets.
//! - `POST /api/topics/{name}/messages` with `{"records": [{"key": .., "value": .., "headers":
//!   {..}, "partition": ..}]}` (Confluent REST Proxy's shape): answers each record's partition
//!   and offset once committed. Keys are partitioned as Kafka clients do.
//! - `GET /api/topics/{name}/lookup?key=k` (or `message_id=`, with `begin`/`end` in ms): messages
//!   by key or id within a time range, as RocketMQ's query by key / id.
//! - `POST /api/topics/{name}/delete-records` with `{"partitions": [{"partition": 0, "offset":
//!   N}]}` (`kafka-delete-records`' shape; offset -1 means the high watermark).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use porter_core::broker::DELETE_RECORDS_TO_HIGH_WATERMARK;
use porter_core::history::{self, HISTORY_RESULTS_MAX};
use porter_core::topic_records::{self, browse, NewRecord, StartAt};
use porter_storage::records::LogRecord;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::payload;
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Records one browse answers at most.
pub const BROWSE_RECORDS_MAX: usize = HISTORY_RESULTS_MAX;
/// Records one browse answers unless asked.
pub const BROWSE_RECORDS_DEFAULT: usize = 20;
/// Bytes of keys, values and headers one browse holds at most (`max_bytes` may lower it): with
/// [`crate::API_REQUESTS_CONCURRENT_MAX`] requests, browses hold at most 4 × 4 MiB (×~1.4 as
/// base64 JSON).
pub const BROWSE_BYTES_MAX: usize = 4 << 20;
/// Records one produce request takes at most.
pub const PRODUCE_RECORDS_MAX: usize = 1000;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(browse_topic, produce))
        .routes(routes!(delete_records))
        .routes(routes!(lookup))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct BrowseQuery {
    /// Where to start in each partition: first (the default), last, next, an offset, -N (N
    /// before the end) or timestamp=<ms>.
    from: Option<String>,
    /// One partition only.
    partition: Option<i32>,
    /// Records at most (default 20, at most 500).
    limit: Option<usize>,
    /// Bytes of keys, values and headers at most (at most 4 MiB).
    max_bytes: Option<usize>,
    /// The newest records with this key, instead of a start position.
    key: Option<String>,
    /// "auto" (text when UTF-8, else base64; the default) or "base64".
    encoding: Option<String>,
}

#[utoipa::path(get, operation_id = "topic_messages_browse_topic", path = "/api/topics/{name}/messages", tag = "topics", summary = "Browse records (read-only): from a position or the newest with a key", params(("name" = String, Path, description = "topic"), BrowseQuery), responses((status = 200, description = "records and where to continue"), (status = 400, description = "bad position, limit or partition"), (status = 404, description = "no such topic")))]
async fn browse_topic(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> ApiResult<Json<Value>> {
    let topic = management
        .broker
        .topic(&name)
        .ok_or_else(ApiError::not_found)?;
    let limit = query.limit.unwrap_or(BROWSE_RECORDS_DEFAULT);
    if limit == 0 || limit > BROWSE_RECORDS_MAX {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {BROWSE_RECORDS_MAX}"
        )));
    }
    let max_bytes = query
        .max_bytes
        .unwrap_or(BROWSE_BYTES_MAX)
        .clamp(1, BROWSE_BYTES_MAX);
    let base64_always = crate::payload::base64_always(query.encoding.as_deref())?;
    let partitions: Vec<_> = match query.partition {
        None => topic.partitions.iter().collect(),
        Some(p) => vec![topic
            .partitions
            .get(usize::try_from(p).unwrap_or(usize::MAX))
            .ok_or_else(|| ApiError::bad_request(format!("{name} has no partition {p}")))?],
    };

    if let Some(key) = &query.key {
        if query.from.is_some() {
            return Err(ApiError::bad_request("give key or from, not both"));
        }
        let found = history::newest(&topic, key.as_bytes(), limit).await?;
        let messages: Vec<Value> = found
            .records
            .iter()
            .zip(&found.partitions)
            .filter(|(_, &p)| query.partition.is_none_or(|wanted| wanted == p))
            .map(|(r, &p)| record_json(p, r, base64_always))
            .collect();
        return Ok(Json(json!({
            "topic": name,
            "messages": messages,
            "truncated": found.truncated,
        })));
    }

    let from = match &query.from {
        None => StartAt::First,
        Some(text) => StartAt::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "from {text:?}: use first, last, next, <offset>, -<n> (n from the end) or timestamp=<ms>"
            ))
        })?,
    };
    let mut messages = Vec::new();
    let mut next_offsets = Map::new();
    let mut budget = max_bytes;
    let mut more = false;
    for partition in partitions {
        let start = from.resolve(partition).await?;
        let room = limit - messages.len();
        if room == 0 || budget == 0 {
            more |= start < partition.high_watermark();
            next_offsets.insert(partition.index().to_string(), json!(start));
            continue;
        }
        let page = browse(partition, start, room, budget).await?;
        for record in &page.records {
            budget = budget.saturating_sub(topic_records::record_size(record));
            messages.push(record_json(partition.index(), record, base64_always));
        }
        more |= page.next_offset < page.high_watermark;
        next_offsets.insert(partition.index().to_string(), json!(page.next_offset));
    }
    Ok(Json(json!({
        "topic": name,
        "messages": messages,
        "next_offsets": next_offsets,
        "more": more,
    })))
}

fn record_json(partition: i32, record: &LogRecord, base64_always: bool) -> Value {
    let mut body = json!({
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
    });
    let mut put = |field: &str, bytes: &Option<Bytes>| match bytes {
        Some(bytes) => {
            let (text, encoding) = payload::encode(bytes, base64_always);
            body[field] = json!(text);
            body[format!("{field}_encoding")] = json!(encoding);
        }
        None => body[field] = Value::Null,
    };
    put("key", &record.key);
    put("value", &record.value);
    let headers: Map<String, Value> = record
        .headers
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Some(v) => json!(String::from_utf8_lossy(v)),
                None => Value::Null,
            };
            (name.clone(), value)
        })
        .collect();
    body["headers"] = Value::Object(headers);
    body
}

#[derive(Debug, Default, Deserialize)]
struct ProduceBody {
    #[serde(default)]
    records: Vec<ProduceRecord>,
}

#[derive(Debug, Default, Deserialize)]
struct ProduceRecord {
    key: Option<String>,
    key_encoding: Option<String>,
    value: Option<String>,
    value_encoding: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    partition: Option<i32>,
}

#[utoipa::path(post, operation_id = "topic_messages_produce", path = "/api/topics/{name}/messages", tag = "topics", summary = "Produce records ({\"records\": [{key, value, headers, partition}]})", params(("name" = String, Path, description = "topic")), responses((status = 200, description = "each record's partition and offset, once committed"), (status = 400, description = "bad records")))]
/// Produces the records in order, each to its partition, and answers once all are committed.
/// The topic is created if the broker auto-creates topics (as a Kafka producer would see it).
async fn produce(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: ProduceBody = parse(&body)?;
    if body.records.is_empty() || body.records.len() > PRODUCE_RECORDS_MAX {
        return Err(ApiError::bad_request(format!(
            "\"records\": 1 to {PRODUCE_RECORDS_MAX} records"
        )));
    }
    let mut records = Vec::with_capacity(body.records.len());
    for r in body.records {
        records.push(NewRecord {
            key: r
                .key
                .map(|k| payload::decode(k, r.key_encoding.as_deref(), "key"))
                .transpose()?,
            value: r
                .value
                .map(|v| payload::decode(v, r.value_encoding.as_deref(), "value"))
                .transpose()?,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k, Some(Bytes::from(v.into_bytes()))))
                .collect(),
            partition: r.partition,
        });
    }
    let topic = management.broker.topic_or_auto_create(&name).await?;
    let mut produced = Vec::with_capacity(records.len());
    for record in records {
        produced.push(topic_records::produce(&topic, record).await?);
    }
    let mut offsets = Vec::with_capacity(produced.len());
    for p in &produced {
        p.wait().await?;
        offsets.push(json!({"partition": p.partition.index(), "offset": p.offset}));
    }
    Ok(Json(json!({ "offsets": offsets })))
}

#[derive(Debug, Default, Deserialize)]
struct DeleteRecordsBody {
    #[serde(default)]
    partitions: Vec<DeleteBefore>,
}

#[derive(Debug, Deserialize)]
struct DeleteBefore {
    partition: i32,
    /// Records below this offset go; -1 means all committed ones.
    offset: i64,
}

#[utoipa::path(post, operation_id = "topic_messages_delete_records", path = "/api/topics/{name}/delete-records", tag = "topics", summary = "Delete records below an offset per partition", params(("name" = String, Path, description = "topic")), responses((status = 200, description = "the new low watermarks"), (status = 404, description = "no such topic")))]
/// Moves each named partition's log start up (Kafka's DeleteRecords); answers the new low
/// watermarks.
async fn delete_records(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: DeleteRecordsBody = parse(&body)?;
    if management.broker.topic(&name).is_none() {
        return Err(ApiError::not_found());
    }
    if body.partitions.is_empty() {
        return Err(ApiError::bad_request(
            "\"partitions\": [{\"partition\": 0, \"offset\": N}]",
        ));
    }
    let mut results = Vec::new();
    for p in &body.partitions {
        if p.offset < DELETE_RECORDS_TO_HIGH_WATERMARK {
            return Err(ApiError::bad_request(format!(
                "offset {} (use -1 for all committed records)",
                p.offset
            )));
        }
        let low = management
            .broker
            .delete_records(&name, p.partition, p.offset)
            .await?;
        results.push(json!({"partition": p.partition, "low_watermark": low}));
    }
    tracing::info!(topic = %name, "records deleted through the management API");
    Ok((StatusCode::OK, Json(json!({ "partitions": results }))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LookupQuery {
    /// A lookup key (RocketMQ's KEYS; a Kafka record's key).
    key: Option<String>,
    /// A message id (RocketMQ's UNIQ_KEY, or the id Porter made for a Kafka record).
    message_id: Option<String>,
    /// From this time (ms since the epoch; default 0).
    begin: Option<i64>,
    /// To this time (ms since the epoch; default now).
    end: Option<i64>,
    /// Messages at most (default and most: 64).
    limit: Option<usize>,
}

#[utoipa::path(get, operation_id = "topic_messages_lookup", path = "/api/topics/{name}/lookup", tag = "topics", summary = "Find messages by key or message id within a time range (RocketMQ's query by key / id)", params(("name" = String, Path, description = "topic"), LookupQuery), responses((status = 200, description = "the messages found, and whether the scan stopped at its bound"), (status = 400, description = "neither or both of key and message_id"), (status = 404, description = "no such topic")))]
async fn lookup(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    Query(query): Query<LookupQuery>,
) -> ApiResult<Json<Value>> {
    use porter_core::lookup::{lookup, LookupBy, LOOKUP_RESULTS_MAX};
    let topic = management
        .broker
        .topic(&name)
        .ok_or_else(ApiError::not_found)?;
    let by = match (query.key, query.message_id) {
        (Some(key), None) => LookupBy::Key(key),
        (None, Some(id)) => LookupBy::MessageId(id),
        _ => return Err(ApiError::bad_request("give key or message_id")),
    };
    let begin = query.begin.unwrap_or(0);
    let end = query.end.unwrap_or_else(porter_core::partition::now_ms);
    let limit = query.limit.unwrap_or(LOOKUP_RESULTS_MAX);
    let found = lookup(&topic, &by, begin, end, limit).await?;
    let messages: Vec<Value> = found
        .messages
        .iter()
        .map(|m| {
            let (body, encoding) = payload::encode(&m.message.body, false);
            json!({
                "message_id": m.message.message_id,
                "partition": m.partition,
                "offset": m.offset,
                "stored_ms": m.stored_ms,
                "born_ms": m.message.born_ms,
                "tag": m.message.tag,
                "keys": m.message.keys,
                "message_group": m.message.message_group,
                "properties": m.message.properties.iter().cloned().collect::<BTreeMap<_, _>>(),
                "body": body,
                "body_encoding": encoding,
            })
        })
        .collect();
    Ok(Json(
        json!({"messages": messages, "truncated": found.truncated}),
    ))
}
