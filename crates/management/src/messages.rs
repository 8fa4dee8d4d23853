//! Publishing and getting messages through the API, as RabbitMQ's does it (for trying things
//! out and for operators, not for throughput): `POST /api/exchanges/{vhost}/{name}/publish` and
//! `POST /api/queues/{vhost}/{name}/get`, so `rabbitmqadmin publish` and `get` work.
//!
//! A publish goes through the core's one publish pipeline and is answered once durable, like a
//! confirmed AMQP publish. A get takes up to `count` messages with `basic.get`'s core call, then
//! settles them all by `ackmode`: `ack_requeue_true` (look without consuming: they go back,
//! marked redelivered), `ack_requeue_false` (consume), `reject_requeue_true`,
//! `reject_requeue_false` (dead-letter). Taken messages are settled even if the HTTP client goes
//! away mid-request (a drop guard), so a get never leaves a message unacknowledged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use porter_core::message::{Message, Properties};
use porter_core::queue::Queue;
use porter_core::vhost::next_owner_id;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::exchanges::DEFAULT_EXCHANGE_ALIAS;
use crate::fields;
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Most messages one get returns.
pub const GET_COUNT_MAX: usize = 1_000;
/// Largest payload a publish through the API takes (the HTTP listener's body limit applies
/// first; this bounds a decoded base64 payload too).
pub const PUBLISH_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(get))
}

#[derive(Debug, Default, Deserialize)]
struct PublishBody {
    routing_key: Option<String>,
    payload: Option<String>,
    /// "string" (default) or "base64".
    payload_encoding: Option<String>,
    properties: Option<Map<String, Value>>,
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn number(map: &Map<String, Value>, key: &str) -> Option<u64> {
    map.get(key).and_then(|v| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

/// AMQP basic properties from RabbitMQ's JSON names.
fn properties_from(map: &Map<String, Value>) -> ApiResult<Properties> {
    let small = |key: &str| -> ApiResult<Option<u8>> {
        number(map, key)
            .map(|n| u8::try_from(n).map_err(|_| ApiError::bad_request(format!("{key} too large"))))
            .transpose()
    };
    let headers = match map.get("headers") {
        Some(value @ Value::Object(_)) => Some(fields::from_json(Some(value))?),
        Some(Value::Null) | None => None,
        Some(_) => return Err(ApiError::bad_request("headers must be an object")),
    };
    let properties = Properties {
        content_type: text(map, "content_type"),
        content_encoding: text(map, "content_encoding"),
        headers,
        delivery_mode: small("delivery_mode")?,
        priority: small("priority")?,
        correlation_id: text(map, "correlation_id"),
        reply_to: text(map, "reply_to"),
        expiration: text(map, "expiration"),
        message_id: text(map, "message_id"),
        timestamp: number(map, "timestamp"),
        kind: text(map, "type"),
        user_id: text(map, "user_id"),
        app_id: text(map, "app_id"),
        cluster_id: text(map, "cluster_id"),
    };
    properties.validate().map_err(ApiError::bad_request)?;
    Ok(properties)
}

fn properties_json(properties: &Properties) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.to_string(), value);
        }
    };
    put(
        "content_type",
        properties.content_type.clone().map(Value::from),
    );
    put(
        "content_encoding",
        properties.content_encoding.clone().map(Value::from),
    );
    put("headers", properties.headers.as_ref().map(fields::to_json));
    put("delivery_mode", properties.delivery_mode.map(Value::from));
    put("priority", properties.priority.map(Value::from));
    put(
        "correlation_id",
        properties.correlation_id.clone().map(Value::from),
    );
    put("reply_to", properties.reply_to.clone().map(Value::from));
    put("expiration", properties.expiration.clone().map(Value::from));
    put("message_id", properties.message_id.clone().map(Value::from));
    put("timestamp", properties.timestamp.map(Value::from));
    put("type", properties.kind.clone().map(Value::from));
    put("user_id", properties.user_id.clone().map(Value::from));
    put("app_id", properties.app_id.clone().map(Value::from));
    put("cluster_id", properties.cluster_id.clone().map(Value::from));
    Value::Object(out)
}

#[utoipa::path(post, operation_id = "messages_publish", path = "/api/exchanges/{vhost}/{name}/publish", tag = "messages", summary = "Publish a message (routing_key, payload, payload_encoding, properties)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "exchange (amq.default for the default one)")), responses((status = 200, description = "{\"routed\": bool}, once durable"), (status = 404, description = "no such exchange")))]
/// `{"routed": bool}` once the message is durable where it was routed.
async fn publish(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: PublishBody = parse(&body)?;
    let exchange = if name == DEFAULT_EXCHANGE_ALIAS {
        String::new()
    } else {
        name
    };
    let payload = body.payload.unwrap_or_default();
    let payload = crate::payload::decode(payload, body.payload_encoding.as_deref(), "payload")?;
    if payload.len() > PUBLISH_PAYLOAD_BYTES_MAX {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("payload over {PUBLISH_PAYLOAD_BYTES_MAX} bytes"),
        ));
    }
    let properties = properties_from(&body.properties.unwrap_or_default())?;
    let message = Message {
        exchange: exchange.clone(),
        routing_key: body.routing_key.unwrap_or_default(),
        properties,
        body: payload,
    };
    let host = management.broker.vhost(&vhost)?;
    let outcome = host.publish(&exchange, message).await?;
    let routed = outcome.routed && !outcome.rejected;
    outcome.durable.wait().await?;
    Ok(Json(json!({ "routed": routed })))
}

#[derive(Debug, Default, Deserialize)]
struct GetBody {
    count: Option<Value>,
    ackmode: Option<String>,
    /// "auto" (text when the payload is UTF-8, else base64) or "base64".
    encoding: Option<String>,
    /// Payload bytes shown at most (the message itself is not changed).
    truncate: Option<Value>,
}

/// Settles what a get took, by its ackmode, even when the request is dropped midway.
struct Taken {
    queue: Arc<Queue>,
    tags: Vec<u64>,
    /// Whether the messages go back (`*_requeue_true`) or are acked/dead-lettered.
    requeue: bool,
    /// `ack_requeue_false` took them with no_ack: nothing left to settle.
    settled: bool,
}

impl Drop for Taken {
    fn drop(&mut self) {
        if self.settled || self.tags.is_empty() {
            return;
        }
        if let Err(error) = self.queue.nack(&self.tags, self.requeue) {
            tracing::warn!(queue = %self.queue.name(), %error, "settling messages taken by an API get failed");
        }
    }
}

fn count_of(value: Option<&Value>, default: usize) -> ApiResult<usize> {
    match value {
        None => Some(default),
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| ApiError::bad_request("count and truncate must be whole numbers"))
}

#[utoipa::path(post, operation_id = "messages_get", path = "/api/queues/{vhost}/{name}/get", tag = "messages", summary = "Get messages (count, ackmode, encoding, truncate)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "queue")), responses((status = 200, description = "the messages taken"), (status = 404, description = "no such queue")))]
async fn get(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: GetBody = parse(&body)?;
    let count = count_of(body.count.as_ref(), 1)?;
    if count == 0 || count > GET_COUNT_MAX {
        return Err(ApiError::bad_request(format!(
            "count must be 1 to {GET_COUNT_MAX}"
        )));
    }
    let truncate = count_of(body.truncate.as_ref(), usize::MAX)?;
    let (requeue, no_ack) = match body.ackmode.as_deref().unwrap_or("ack_requeue_true") {
        "ack_requeue_true" | "reject_requeue_true" => (true, false),
        "ack_requeue_false" => (false, true),
        "reject_requeue_false" => (false, false),
        other => return Err(ApiError::bad_request(format!("unknown ackmode {other:?}"))),
    };
    let base64_always = crate::payload::base64_always(body.encoding.as_deref())?;
    let queue = management
        .broker
        .vhost(&vhost)?
        .queue(&name, next_owner_id())?;
    let mut taken = Taken {
        queue: queue.clone(),
        tags: Vec::new(),
        requeue,
        settled: no_ack,
    };
    let mut messages = Vec::new();
    for _ in 0..count {
        let Some(delivery) = queue.get(no_ack).await? else {
            break;
        };
        taken.tags.push(delivery.queue_tag);
        let message = &delivery.message;
        let shown = &message.body[..message.body.len().min(truncate)];
        let (payload, encoding) = crate::payload::encode(shown, base64_always);
        messages.push(json!({
            "payload_bytes": message.body.len(),
            "redelivered": delivery.redelivered,
            "exchange": message.exchange,
            "routing_key": message.routing_key,
            "message_count": delivery.remaining,
            "properties": properties_json(&message.properties),
            "payload": payload,
            "payload_encoding": encoding,
        }));
    }
    drop(taken);
    Ok(Json(Value::Array(messages)))
}
