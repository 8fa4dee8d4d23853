//! porter-management: the HTTP management API, served on the HTTP listener (default
//! 0.0.0.0:15672) beside the WebSocket endpoints.
//!
//! Where RabbitMQ's management API has an endpoint, this one has the same path, methods, JSON
//! field names and status codes, so `rabbitmqadmin`, Flower and scripts written for RabbitMQ
//! work unchanged. Porter's own endpoints (`/api/topics`, `/api/groups`) cover what RabbitMQ
//! does not have. Every list pages and filters the same way ([`paging`]); every error is
//! RabbitMQ's JSON shape ([`error`]).
//!
//! One concept per module:
//! - [`auth`]: HTTP basic authentication against the broker's users (as RabbitMQ requires);
//! - [`overview`]: `/api/overview`, `/api/vhosts`, `/api/healthchecks/...`;
//! - [`queues`]: `/api/queues`, declare, delete, purge;
//! - [`exchanges`]: `/api/exchanges`, declare, delete, and `/api/bindings`;
//! - [`connections`]: `/api/connections` on every listener, and closing one;
//! - [`channels`]: `/api/channels` and `/api/consumers` (AMQP), asked of each connection;
//! - [`messages`]: publish to an exchange and get from a queue, as RabbitMQ's API does;
//! - [`topics`]: `/api/topics` (also create, delete) and `/api/groups` (offsets, sizes, lag);
//! - [`topic_messages`]: browsing a topic's records, producing to it, deleting records;
//! - [`dead_letters`]: consumer groups' dead letters and their re-drive;
//! - [`groups`]: resetting a group's offsets and deleting a group;
//! - [`users`]: `/api/users` and `/api/permissions` (administrators only);
//! - [`definitions`]: `/api/definitions` export and import, RabbitMQ's format plus topics;
//! - [`rates`]: message rates per queue and topic, from counts read every 5 s;
//! - [`metrics`]: `/metrics` in Prometheus's text format, and [`health`]: `/readyz`;
//! - [`openapi`]: `/api/openapi.json`, the OpenAPI document generated from the handlers'
//!   `#[utoipa::path]` attributes as they are routed (utoipa-axum's `routes!`);
//! - [`ui`]: the web UI at `/`, embedded in the binary;
//! - [`body`], [`fields`], [`paging`], [`payload`], [`error`]: request bodies, JSON arguments,
//!   lists, message bytes in JSON, errors.
//!
//! Reads never hold a broker lock while they serialise (see `porter_core`'s `inventory`).

pub mod auth;
pub mod body;
pub mod channels;
pub mod connections;
pub mod dead_letters;
pub mod definitions;
pub mod error;
pub mod exchanges;
pub mod fields;
pub mod groups;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod overview;
pub mod paging;
pub mod payload;
pub mod queues;
pub mod rates;
pub mod tokens;
pub mod topic_messages;
pub mod topic_permissions;
pub mod topics;
pub mod ui;
pub mod user_limits;
pub mod users;
pub mod vhost_limits;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::middleware::from_fn_with_state;
use axum::Router;
use porter_core::Broker;
use porter_gateway_kit::auth::Authenticator;
use porter_gateway_kit::Registry;
use utoipa_axum::router::OpenApiRouter;

/// One listener as `/api/overview` lists it.
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    /// RabbitMQ's protocol names: "amqp", "mqtt", "stomp", "http", and "kafka", "rocketmq".
    pub protocol: &'static str,
    pub addr: std::net::SocketAddr,
}

/// API requests served at once; more wait (their connections are not read meanwhile). A listing
/// of 100k queues is ~23 MB of JSON built in memory, so this bounds what listings can hold
/// together: `API_REQUESTS_CONCURRENT_MAX` × the largest listing (~92 MB at 100k queues).
pub const API_REQUESTS_CONCURRENT_MAX: usize = 4;

/// What the API reads and changes.
pub struct Management {
    pub broker: Arc<Broker>,
    /// Who may call the API; `None` lets anyone (tests, or a listener bound to loopback only).
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Every bound listener, known once all are bound.
    listeners: OnceLock<Vec<ListenerInfo>>,
    /// Their connections (one registry per listener or WebSocket endpoint).
    registries: OnceLock<Vec<Registry>>,
    pub started: Instant,
    /// Set once every listener is bound (`/readyz`).
    ready: AtomicBool,
    /// Message rates from the sampler ([`rates::Rates::spawn_sampler`]).
    pub rates: rates::Rates,
}

impl Management {
    pub fn new(broker: Arc<Broker>, authenticator: Option<Arc<dyn Authenticator>>) -> Self {
        Management {
            broker,
            authenticator,
            listeners: OnceLock::new(),
            registries: OnceLock::new(),
            started: Instant::now(),
            ready: AtomicBool::new(false),
            rates: rates::Rates::default(),
        }
    }

    /// Every listener is bound: `/readyz` answers 200 from now on.
    pub fn mark_ready(&self, listeners: Vec<ListenerInfo>, registries: Vec<Registry>) {
        let _ = self.listeners.set(listeners);
        let _ = self.registries.set(registries);
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn listeners(&self) -> &[ListenerInfo] {
        self.listeners.get().map(Vec::as_slice).unwrap_or_default()
    }

    pub fn registries(&self) -> &[Registry] {
        self.registries.get().map(Vec::as_slice).unwrap_or_default()
    }
}

/// The API's routes: `/api/...` behind basic authentication; `/metrics` and `/readyz` open (as
/// Prometheus and load balancers call them; they carry counts, not messages).
pub fn router(management: Arc<Management>) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(openapi::document())
        .merge(overview::routes())
        .merge(vhost_limits::routes())
        .merge(user_limits::routes())
        .merge(tokens::routes())
        .merge(queues::routes())
        .merge(exchanges::routes())
        .merge(topics::routes())
        .merge(topic_messages::routes())
        .merge(groups::routes())
        .merge(connections::routes())
        .merge(channels::routes())
        .merge(messages::routes())
        .merge(definitions::routes())
        .merge(users::routes())
        .merge(topic_permissions::routes())
        .merge(dead_letters::routes())
        .split_for_parts();
    let api = api
        .merge(openapi::routes(openapi))
        .route_layer(from_fn_with_state(management.clone(), auth::require_user))
        // One semaphore for every route (ConcurrencyLimitLayer would make one per route).
        .route_layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            API_REQUESTS_CONCURRENT_MAX,
        ))
        .with_state(management.clone());
    Router::new()
        .merge(api)
        .merge(metrics::routes().with_state(management.clone()))
        .merge(health::routes().with_state(management))
        .merge(ui::routes())
}

/// Runs `work` (a snapshot of many objects and its serialisation: ~1 s for 100k queues) on
/// tokio's blocking pool, not on a reactor thread, where it stalled other connections' tasks
/// (a publisher's confirm waited 780 ms behind one listing, BENCHMARKS.md).
pub(crate) async fn off_reactor<R: Send + 'static>(
    work: impl FnOnce() -> error::ApiResult<R> + Send + 'static,
) -> error::ApiResult<R> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        error::ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?
}
