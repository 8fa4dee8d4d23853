//! `/api/overview`, `/api/vhosts[/{vhost}]`, `/api/whoami` and RabbitMQ's health checks.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::off_reactor;
use crate::paging::{JsonBody, ListQuery};
use crate::Management;
use porter_core::queue::state::MessageCounts;
use porter_gateway_kit::auth::Principal;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The RabbitMQ management API level these endpoints mirror. Tools read `rabbitmq_version` to
/// pick request shapes; `product_name` and `product_version` say what actually answers.
pub const RABBITMQ_API_VERSION: &str = "3.12.0";

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(vhosts))
        .route("/api/vhosts/", get(vhosts))
        .routes(routes!(vhost))
        .routes(routes!(whoami))
        .routes(routes!(healthy))
        .routes(routes!(alarms))
        .route("/api/health/checks/virtual-hosts", get(healthy))
}

/// This node's name, as RabbitMQ shows `rabbit@host`.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("porter@{host}")
}

#[utoipa::path(get, operation_id = "overview_overview", path = "/api/overview", tag = "overview", summary = "Broker totals, listeners, rates and resources (RabbitMQ's overview)", responses((status = 200, description = "the overview")))]
async fn overview(State(management): State<Arc<Management>>) -> ApiResult<Json<Value>> {
    // Sums over every queue: off the reactor, as listings are.
    crate::off_reactor(move || Ok(Json(overview_of(&management)))).await
}

fn overview_of(management: &Management) -> Value {
    let broker = &management.broker;
    let queues = broker.queue_snapshots(None);
    let ready: u64 = queues.iter().map(|q| q.ready).sum();
    let unacked: u64 = queues.iter().map(|q| q.unacked).sum();
    let consumers: u64 = queues.iter().map(|q| u64::from(q.consumers)).sum();
    let exchanges: usize = broker
        .vhost_names()
        .iter()
        .filter_map(|v| broker.routing_table(v).ok())
        .map(|table| table.exchanges().count())
        .sum();
    let counts = queues
        .iter()
        .fold(MessageCounts::default(), |sum, q| sum + q.counts);
    let (queue_rates, topic_rates) = management.rates.totals();
    let mut message_stats = crate::rates::message_stats(&counts, &queue_rates);
    // Porter's own: records appended to topics per second (Kafka, RocketMQ, bridges), and bytes
    // of topic batches read per second.
    message_stats["topic_append_details"] = json!({ "rate": topic_rates.messages_in });
    message_stats["topic_read_bytes_details"] = json!({ "rate": topic_rates.bytes_out });
    let alarms = *broker.alarms().borrow();
    let node = node_name();
    let listeners: Vec<Value> = management
        .listeners()
        .iter()
        .map(|l| {
            json!({"node": node, "protocol": l.protocol,
                   "ip_address": l.addr.ip().to_string(), "port": l.addr.port()})
        })
        .collect();
    json!({
        "management_version": RABBITMQ_API_VERSION,
        "rabbitmq_version": RABBITMQ_API_VERSION,
        "product_name": "Porter",
        "product_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": node,
        "node": node,
        "uptime_ms": management.started.elapsed().as_millis() as u64,
        "object_totals": {
            "connections": crate::connections::open_count(management),
            "queues": queues.len(),
            "exchanges": exchanges,
            "consumers": consumers,
            "topics": broker.topics().len(),
            "delayed_messages": broker.delayed().pending(),
        },
        "message_stats": message_stats,
        "queue_totals": {
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
        },
        "listeners": listeners,
        "resources": {
            "memory_bytes": porter_core::alarm::resident_bytes(),
            "disk_free_bytes": porter_core::alarm::free_disk_bytes(&broker.config().data_dir),
            "memory_alarm": alarms.memory,
            "disk_alarm": alarms.disk,
        },
    })
}

fn vhost_json(management: &Management, name: &str) -> Value {
    let queues = management.broker.queue_snapshots(Some(name));
    let ready: u64 = queues.iter().map(|q| q.ready).sum();
    let unacked: u64 = queues.iter().map(|q| q.unacked).sum();
    json!({
        "name": name,
        "description": "",
        "tracing": false,
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
    })
}

#[utoipa::path(get, operation_id = "overview_vhosts", path = "/api/vhosts", tag = "overview", summary = "Virtual hosts with their message counts", responses((status = 200, description = "virtual hosts")))]
async fn vhosts(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        let names = management.broker.vhost_names();
        query.apply(names, |n| n.as_str(), |n| vhost_json(&management, n))
    })
    .await
}

#[utoipa::path(get, operation_id = "overview_vhost", path = "/api/vhosts/{vhost}", tag = "overview", summary = "One virtual host", params(("vhost" = String, Path, description = "virtual host (/ is %2F)")), responses((status = 200, description = "the vhost"), (status = 404, description = "no such vhost")))]
async fn vhost(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !management.broker.vhost_names().contains(&name) {
        return Err(ApiError::not_found());
    }
    Ok(Json(vhost_json(&management, &name)))
}

#[utoipa::path(get, operation_id = "overview_whoami", path = "/api/whoami", tag = "overview", summary = "The logged-in user", responses((status = 200, description = "the caller")))]
/// The caller, as RabbitMQ's `/api/whoami` answers: name and tags.
async fn whoami(principal: Option<axum::Extension<Principal>>) -> Json<Value> {
    match principal {
        Some(axum::Extension(p)) => Json(json!({"name": p.user, "tags": p.tags})),
        // No authenticator (a test harness): anyone is an administrator.
        None => Json(json!({"name": "", "tags": ["administrator"]})),
    }
}

#[utoipa::path(get, operation_id = "overview_healthy", path = "/api/healthchecks/node", tag = "health", summary = "Node health check (RabbitMQ's)", responses((status = 200, description = "ok")))]
async fn healthy() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, operation_id = "overview_alarms", path = "/api/health/checks/alarms", tag = "health", summary = "Resource alarm check: 503 during a memory or disk alarm", responses((status = 200, description = "no alarm"), (status = 503, description = "an alarm blocks publishers")))]
/// 200 `{"status":"ok"}` without a resource alarm, 503 with the alarm's reason during one (as
/// RabbitMQ's `/api/health/checks/alarms`).
async fn alarms(State(management): State<Arc<Management>>) -> ApiResult<Json<Value>> {
    let state = *management.broker.alarms().borrow();
    if state.any() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("resource alarm in effect: {}", state.reason()),
        ));
    }
    Ok(Json(json!({"status": "ok"})))
}
