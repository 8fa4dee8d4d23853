//! `/api/connections`: every open connection on every listener (Kafka, AMQP, RocketMQ, MQTT,
//! STOMP, and MQTT and STOMP over WebSocket), from the gateway kit's registries; and closing one,
//! which asks the connection to say goodbye in its own protocol (AMQP `connection.close` 320,
//! MQTT 5 DISCONNECT 0x98 "administrative action", STOMP ERROR) and logs who was closed.
//!
//! A connection's `name` is RabbitMQ's: `peer -> local`, unique while it is open.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use porter_gateway_kit::{CloseReason, ConnectionInfo, Registry};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::off_reactor;
use crate::overview::node_name;
use crate::paging::{JsonBody, ListQuery};
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .route("/api/connections/", get(list))
        .routes(routes!(show, close))
}

/// RabbitMQ's connection name.
pub fn connection_name(info: &ConnectionInfo) -> String {
    format!("{} -> {}", info.peer, info.local)
}

/// The protocol as RabbitMQ's API names it (Kafka and RocketMQ in the same style).
fn protocol_name(protocol: &str) -> &'static str {
    match protocol {
        "amqp" => "AMQP 0-9-1",
        "amqps" => "AMQP 0-9-1/TLS",
        "mqtts" => "MQTT/TLS",
        "stomps" => "STOMP/TLS",
        "mqtt" => "MQTT",
        "mqtt-ws" => "Web MQTT",
        "stomp" => "STOMP",
        "stomp-ws" => "Web STOMP",
        "kafka" => "Kafka",
        "rocketmq" => "RocketMQ 5 (gRPC)",
        _ => "unknown",
    }
}

fn connection_json(info: &ConnectionInfo) -> Value {
    let connected_at = info
        .connected_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "name": connection_name(info),
        "node": node_name(),
        "type": "network",
        "protocol": protocol_name(info.protocol),
        "user": info.user.clone().unwrap_or_default(),
        "host": info.local.ip().to_string(),
        "port": info.local.port(),
        "peer_host": info.peer.ip().to_string(),
        "peer_port": info.peer.port(),
        "connected_at": connected_at,
        "recv_oct": info.bytes_in,
        "send_oct": info.bytes_out,
        "state": "running",
        "porter_id": info.id.0,
    })
}

/// Every open connection, oldest first within each listener.
fn all(management: &Management) -> Vec<ConnectionInfo> {
    management
        .registries()
        .iter()
        .flat_map(Registry::list)
        .collect()
}

/// The registry holding connection `name`, and its snapshot.
fn find(management: &Management, name: &str) -> Option<(Registry, ConnectionInfo)> {
    management.registries().iter().find_map(|registry| {
        registry
            .list()
            .into_iter()
            .find(|info| connection_name(info) == name)
            .map(|info| (registry.clone(), info))
    })
}

/// Connections open now, all listeners.
pub fn open_count(management: &Management) -> usize {
    management.registries().iter().map(Registry::len).sum()
}

#[utoipa::path(get, operation_id = "connections_list", path = "/api/connections", tag = "connections", summary = "Open connections on every listener", params(ListQuery), responses((status = 200, description = "connections")))]
async fn list(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        let connections: Vec<(String, ConnectionInfo)> = all(&management)
            .into_iter()
            .map(|info| (connection_name(&info), info))
            .collect();
        query.apply(
            connections,
            |(name, _)| name.as_str(),
            |(_, info)| connection_json(info),
        )
    })
    .await
}

#[utoipa::path(get, operation_id = "connections_show", path = "/api/connections/{name}", tag = "connections", summary = "One connection", params(("name" = String, Path, description = "peer -> local")), responses((status = 200, description = "the connection"), (status = 404, description = "no such connection")))]
async fn show(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, info) = find(&management, &name).ok_or_else(ApiError::not_found)?;
    Ok(Json(connection_json(&info)))
}

#[utoipa::path(delete, operation_id = "connections_close", path = "/api/connections/{name}", tag = "connections", summary = "Close a connection the protocol's way", params(("name" = String, Path, description = "peer -> local")), responses((status = 204, description = "asked to close"), (status = 404, description = "no such connection")))]
/// 204 once the connection was asked to close (it says goodbye and goes within its drain).
async fn close(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let (registry, info) = find(&management, &name).ok_or_else(ApiError::not_found)?;
    let reason = CloseReason::local(320, "CONNECTION_FORCED - Closed via management plugin");
    if !registry.close(info.id, reason) {
        return Err(ApiError::not_found());
    }
    tracing::info!(connection = %name, protocol = info.protocol, user = info.user.as_deref().unwrap_or("-"), "connection closed through the management API");
    Ok(StatusCode::NO_CONTENT)
}
