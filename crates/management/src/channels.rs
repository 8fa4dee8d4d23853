//! `/api/channels` and `/api/consumers`, as RabbitMQ's API lists them: AMQP channels with
//! their prefetch, unacknowledged deliveries, confirm and transaction modes, and the consumers
//! on them. Channel state lives in each connection's task, so a listing asks every AMQP
//! connection (the kit's [`Registry::channels`]); one that does not answer within
//! [`porter_gateway_kit::describe::DESCRIBE_TIMEOUT`] is left out rather than holding the
//! listing up.
//!
//! A channel's `name` is RabbitMQ's: `peer -> local (number)`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Json;
use porter_gateway_kit::{ChannelInfo, ConnectionInfo, ConsumerInfo, Registry};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::connections::connection_name;
use crate::error::{ApiError, ApiResult};
use crate::overview::node_name;
use crate::paging::{JsonBody, ListQuery};
use crate::{off_reactor, Management};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_channels))
        .route("/api/channels/", get(list_channels))
        .routes(routes!(show_channel))
        .routes(routes!(list_vhost_channels))
        .routes(routes!(connection_channels))
        .routes(routes!(list_consumers))
        .route("/api/consumers/", get(list_consumers))
        .routes(routes!(list_vhost_consumers))
}

/// A connection and one of its channels.
struct Described {
    connection: ConnectionInfo,
    channel: ChannelInfo,
}

impl Described {
    fn name(&self) -> String {
        format!(
            "{} ({})",
            connection_name(&self.connection),
            self.channel.number
        )
    }

    fn vhost(&self) -> &str {
        &self.channel.vhost
    }

    fn details(&self) -> Value {
        let c = &self.connection;
        json!({
            "name": self.name(),
            "number": self.channel.number,
            "connection_name": connection_name(c),
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
            "user": c.user.clone().unwrap_or_default(),
            "node": node_name(),
        })
    }

    fn channel_json(&self) -> Value {
        let c = &self.connection;
        let ch = &self.channel;
        json!({
            "name": self.name(),
            "node": node_name(),
            "number": ch.number,
            "user": c.user.clone().unwrap_or_default(),
            "vhost": self.vhost(),
            "connection_details": {
                "name": connection_name(c),
                "peer_host": c.peer.ip().to_string(),
                "peer_port": c.peer.port(),
            },
            "consumer_count": ch.consumers.len(),
            "messages_unacknowledged": ch.unacked,
            "prefetch_count": ch.prefetch,
            "confirm": ch.confirm,
            "transactional": ch.transactional,
            "state": "running",
        })
    }

    fn consumer_json(&self, consumer: &ConsumerInfo) -> Value {
        json!({
            "consumer_tag": consumer.tag,
            "queue": {"name": consumer.queue, "vhost": self.vhost()},
            "channel_details": self.details(),
            "ack_required": consumer.ack_required,
            "prefetch_count": consumer.prefetch,
            "exclusive": consumer.exclusive,
            "arguments": {},
            "active": true,
            "activity_status": "up",
        })
    }
}

/// Every channel of every connection that describes itself (AMQP), by connection then number.
async fn describe_all(management: &Management, only: Option<&str>) -> Vec<Described> {
    let mut asks = JoinSet::new();
    for registry in management.registries() {
        for connection in registry.list() {
            if only.is_some_and(|name| connection_name(&connection) != name) {
                continue;
            }
            let registry: Registry = registry.clone();
            asks.spawn(async move {
                let channels = registry.channels(connection.id).await;
                (connection, channels.unwrap_or_default())
            });
        }
    }
    let mut described = Vec::new();
    while let Some(answer) = asks.join_next().await {
        if let Ok((connection, channels)) = answer {
            described.extend(channels.into_iter().map(|channel| Described {
                connection: connection.clone(),
                channel,
            }));
        }
    }
    described.sort_by(|a, b| {
        (a.connection.id, a.channel.number).cmp(&(b.connection.id, b.channel.number))
    });
    described
}

fn channel_list(described: Vec<Described>, query: &ListQuery) -> ApiResult<JsonBody> {
    let named: Vec<(String, Described)> = described.into_iter().map(|d| (d.name(), d)).collect();
    query.apply(named, |(name, _)| name.as_str(), |(_, d)| d.channel_json())
}

#[utoipa::path(get, operation_id = "channels_list_channels", path = "/api/channels", tag = "connections", summary = "AMQP channels", params(ListQuery), responses((status = 200, description = "channels")))]
async fn list_channels(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    channel_list(describe_all(&management, None).await, &query)
}

#[utoipa::path(get, operation_id = "channels_list_vhost_channels", path = "/api/vhosts/{vhost}/channels", tag = "connections", summary = "AMQP channels of one virtual host", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ListQuery), responses((status = 200, description = "channels")))]
async fn list_vhost_channels(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    crate::queues::check_vhost(&management, &vhost)?;
    let described = describe_all(&management, None).await;
    channel_list(
        described
            .into_iter()
            .filter(|d| d.vhost() == vhost)
            .collect(),
        &query,
    )
}

#[utoipa::path(get, operation_id = "channels_connection_channels", path = "/api/connections/{name}/channels", tag = "connections", summary = "The channels of one connection", params(("name" = String, Path, description = "peer -> local"), ListQuery), responses((status = 200, description = "channels"), (status = 404, description = "no such connection")))]
async fn connection_channels(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    let open = management
        .registries()
        .iter()
        .flat_map(Registry::list)
        .any(|c| connection_name(&c) == name);
    if !open {
        return Err(ApiError::not_found());
    }
    channel_list(describe_all(&management, Some(&name)).await, &query)
}

#[utoipa::path(get, operation_id = "channels_show_channel", path = "/api/channels/{name}", tag = "connections", summary = "One channel with its consumers", params(("name" = String, Path, description = "peer -> local (number)")), responses((status = 200, description = "the channel"), (status = 404, description = "no such channel")))]
async fn show_channel(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let connection = name
        .rsplit_once(" (")
        .map(|(connection, _)| connection)
        .ok_or_else(ApiError::not_found)?;
    let described = describe_all(&management, Some(connection)).await;
    let found = described
        .into_iter()
        .find(|d| d.name() == name)
        .ok_or_else(ApiError::not_found)?;
    let mut body = found.channel_json();
    body["consumer_details"] = found
        .channel
        .consumers
        .iter()
        .map(|c| found.consumer_json(c))
        .collect();
    Ok(Json(body))
}

/// AMQP consumers (with their channels, asked of the connections) and the MQTT and STOMP
/// subscriptions the queues know (protocols without channels: `channel_details` is empty).
fn consumer_list(management: &Management, described: &[Described], vhost: Option<&str>) -> Value {
    let amqp = described.iter().flat_map(|d| {
        d.channel
            .consumers
            .iter()
            .filter(move |_| vhost.is_none_or(|v| d.vhost() == v))
            .map(move |c| d.consumer_json(c))
    });
    let others = management
        .broker
        .queue_consumers()
        .into_iter()
        .filter(|(v, _, _)| vhost.is_none_or(|wanted| v == wanted))
        .filter_map(|(v, queue, c)| {
            let protocol = if c.tag.starts_with("mqtt:") {
                "MQTT"
            } else if c.tag.starts_with("stomp.") {
                "STOMP"
            } else {
                return None; // AMQP's, listed with their channels above
            };
            Some(json!({
                "consumer_tag": c.tag,
                "queue": {"name": queue, "vhost": v},
                "channel_details": {},
                "ack_required": c.ack_required,
                "prefetch_count": c.prefetch,
                "exclusive": c.exclusive,
                "arguments": {},
                "active": true,
                "activity_status": "up",
                "protocol": protocol,
                "messages_unacknowledged": c.unacked,
            }))
        })
        .collect::<Vec<_>>();
    amqp.chain(others).collect()
}

#[utoipa::path(get, operation_id = "channels_list_consumers", path = "/api/consumers", tag = "connections", summary = "Consumers: AMQP's with their channels, MQTT and STOMP subscriptions", responses((status = 200, description = "consumers")))]
async fn list_consumers(State(management): State<Arc<Management>>) -> ApiResult<Json<Value>> {
    let described = describe_all(&management, None).await;
    off_reactor(move || Ok(Json(consumer_list(&management, &described, None)))).await
}

#[utoipa::path(get, operation_id = "channels_list_vhost_consumers", path = "/api/consumers/{vhost}", tag = "connections", summary = "Consumers of one virtual host", params(("vhost" = String, Path, description = "virtual host (/ is %2F)")), responses((status = 200, description = "consumers")))]
async fn list_vhost_consumers(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::queues::check_vhost(&management, &vhost)?;
    let described = describe_all(&management, None).await;
    off_reactor(move || Ok(Json(consumer_list(&management, &described, Some(&vhost))))).await
}
