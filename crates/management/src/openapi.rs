//! `/api/openapi.json`: the API described as OpenAPI 3.1, generated from the handlers. Each
//! handler carries a `#[utoipa::path]` attribute and is routed through utoipa-axum's `routes!`,
//! which takes the path from that attribute: a route and its description cannot drift apart.
//! The web UI's API page renders this document (no network needed: no Swagger UI from a CDN).
//! Aliases kept for RabbitMQ's tools (trailing slashes) are routed but not described.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

use crate::Management;

/// The document's frame: title, version, and what the tags group.
pub fn document() -> OpenApi {
    let mut document = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Porter management API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "RabbitMQ's management API where RabbitMQ has the endpoint (same paths, \
                     fields and status codes), and Porter's own for topics, consumer groups and \
                     records. HTTP basic authentication with a broker user. Errors are \
                     {\"error\": ..., \"reason\": ...}. Lists take page, page_size and name.",
                ))
                .build(),
        )
        .build();
    document.tags = Some(
        [
            ("overview", "The broker as a whole"),
            ("queues", "Queues (AMQP; MQTT sessions)"),
            ("exchanges", "Exchanges"),
            ("bindings", "Bindings between exchanges and queues"),
            ("messages", "Publishing and getting through the API"),
            (
                "topics",
                "Kafka and RocketMQ topics, their partitions and records",
            ),
            ("groups", "Consumer groups: lag, offsets"),
            (
                "connections",
                "Connections on every listener, AMQP channels and consumers",
            ),
            ("definitions", "Export and import of definitions"),
            (
                "users",
                "Users, their tags and per-vhost permissions (administrators only)",
            ),
            ("health", "Health checks"),
        ]
        .into_iter()
        .map(|(name, description)| {
            utoipa::openapi::tag::TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })
        .collect(),
    );
    document
}

/// Serves `document` (built once, at start).
pub(crate) fn routes(document: OpenApi) -> Router<Arc<Management>> {
    let document = Arc::new(document);
    Router::new().route(
        "/api/openapi.json",
        get(move || {
            let document = document.clone();
            async move { Json(document.as_ref().clone()) }
        }),
    )
}
