//! `/api/queues`: list, show, declare (PUT), delete and purge, as RabbitMQ's API does them.
//! Declares go through the same core call as AMQP's `queue.declare`, so the same names are
//! refused and a re-declare with other properties is refused the same way (400 with
//! RabbitMQ's PRECONDITION_FAILED text).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use porter_core::queue::QueueDefinition;
use porter_core::vhost::next_owner_id;
use porter_core::QueueSnapshot;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{declared, DeleteQuery};
use crate::error::{ApiError, ApiResult};
use crate::fields;
use crate::off_reactor;
use crate::overview::node_name;
use crate::paging::{JsonBody, ListQuery};
use crate::rates::{message_stats, Rates};
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_all))
        // RabbitMQ answers with a trailing slash too; Flower asks that way.
        .route("/api/queues/", get(list_all))
        .routes(routes!(list_vhost))
        .routes(routes!(show, declare, remove))
        .routes(routes!(purge))
}

/// A queue as RabbitMQ's API shows it, with its message rates at the last reading.
pub fn queue_json(rates: &Rates, queue: &QueueSnapshot) -> Value {
    let definition = &queue.definition;
    let now = rates.queue(&queue.vhost, &definition.name);
    json!({
        "name": definition.name,
        "vhost": queue.vhost,
        "durable": definition.durable,
        "auto_delete": definition.auto_delete,
        "exclusive": definition.exclusive_owner.is_some(),
        "arguments": fields::to_json(&definition.arguments),
        "messages": queue.messages(),
        "messages_ready": queue.ready,
        "messages_unacknowledged": queue.unacked,
        "consumers": queue.consumers,
        "message_stats": message_stats(&queue.counts, &now),
        "state": "running",
        "type": "classic",
        "node": node_name(),
    })
}

pub(crate) fn check_vhost(management: &Management, vhost: &str) -> ApiResult<()> {
    management.broker.routing_table(vhost)?;
    Ok(())
}

#[utoipa::path(get, operation_id = "queues_list_all", path = "/api/queues", tag = "queues", summary = "Every queue, with message counts and rates", params(ListQuery), responses((status = 200, description = "queues (a page with ?page=)")))]
async fn list_all(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        let queues = management.broker.queue_snapshots(None);
        query.apply(
            queues,
            |q| q.definition.name.as_str(),
            |q| queue_json(&management.rates, q),
        )
    })
    .await
}

#[utoipa::path(get, operation_id = "queues_list_vhost", path = "/api/queues/{vhost}", tag = "queues", summary = "The queues of one virtual host", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ListQuery), responses((status = 200, description = "queues"), (status = 404, description = "no such vhost")))]
async fn list_vhost(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        check_vhost(&management, &vhost)?;
        let queues = management.broker.queue_snapshots(Some(&vhost));
        query.apply(
            queues,
            |q| q.definition.name.as_str(),
            |q| queue_json(&management.rates, q),
        )
    })
    .await
}

#[utoipa::path(get, operation_id = "queues_show", path = "/api/queues/{vhost}/{name}", tag = "queues", summary = "One queue", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "queue")), responses((status = 200, description = "the queue"), (status = 404, description = "no such queue")))]
async fn show(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    check_vhost(&management, &vhost)?;
    let queue = management
        .broker
        .queue_snapshot(&vhost, &name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(queue_json(&management.rates, &queue)))
}

/// The body of a queue PUT (every field optional, RabbitMQ's defaults).
#[derive(Debug, Default, Deserialize)]
pub struct QueueBody {
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    pub durable: Option<bool>,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    pub auto_delete: Option<bool>,
    pub arguments: Option<Value>,
    /// Accepted and ignored: one node.
    pub node: Option<Value>,
}

#[utoipa::path(put, operation_id = "queues_declare", path = "/api/queues/{vhost}/{name}", tag = "queues", summary = "Declare a queue (durable, auto_delete, arguments)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "queue")), responses((status = 201, description = "created"), (status = 204, description = "an equivalent queue exists"), (status = 400, description = "inequivalent or invalid")))]
/// 201 when the queue was created, 204 when an equivalent one existed.
async fn declare(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let body: QueueBody = crate::body::parse(&body)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("a queue needs a name"));
    }
    let existed = management.broker.queue_snapshot(&vhost, &name).is_some();
    let definition = QueueDefinition {
        name: name.clone(),
        id: Default::default(),
        durable: body.durable.unwrap_or(true),
        exclusive_owner: None,
        auto_delete: body.auto_delete.unwrap_or(false),
        arguments: fields::from_json(body.arguments.as_ref())?,
    };
    let host = management.broker.vhost(&vhost)?;
    host.declare_queue(definition, false, next_owner_id())
        .await?;
    if !existed {
        tracing::info!(%vhost, queue = %name, "queue declared through the management API");
    }
    Ok(declared(existed))
}

#[utoipa::path(delete, operation_id = "queues_remove", path = "/api/queues/{vhost}/{name}", tag = "queues", summary = "Delete a queue (?if-unused, ?if-empty)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "queue"), DeleteQuery), responses((status = 204, description = "deleted"), (status = 400, description = "in use or not empty"), (status = 404, description = "no such queue")))]
async fn remove(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let host = management.broker.vhost(&vhost)?;
    if management.broker.queue_snapshot(&vhost, &name).is_none() {
        return Err(ApiError::not_found());
    }
    host.delete_queue(
        &name,
        query.if_unused.unwrap_or(false),
        query.if_empty.unwrap_or(false),
        next_owner_id(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, operation_id = "queues_purge", path = "/api/queues/{vhost}/{name}/contents", tag = "queues", summary = "Purge a queue's ready messages", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "queue")), responses((status = 204, description = "purged"), (status = 404, description = "no such queue")))]
async fn purge(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let host = management.broker.vhost(&vhost)?;
    let purged = host.purge_queue(&name, next_owner_id()).await?;
    tracing::info!(%vhost, queue = %name, purged, "queue purged through the management API");
    Ok(StatusCode::NO_CONTENT)
}
