//! `/api/definitions`: the broker's definitions as one JSON document, in RabbitMQ's format
//! (`vhosts`, `queues`, `exchanges`, `bindings`, ...) plus Porter's `topics`, and importing such
//! a document, so a RabbitMQ export can be loaded into Porter and `rabbitmqadmin export` /
//! `import` work.
//!
//! Exported: durable, non-exclusive queues except the bridges' own; exchanges other than the default and `amq.*`;
//! bindings between exported objects; topics other than the broker's internal `__*` ones.
//! Import declares in dependency order (vhosts, topics, exchanges, queues, bindings) with the
//! same core calls as the API's PUTs, so it is idempotent: what exists equivalently is left
//! alone, and a document that fails halfway can be fixed and loaded again. Users come with their
//! SCRAM credentials (`password_hash`, Porter's own format) and permissions with them; a user
//! from RabbitMQ (whose salted SHA-256 hash cannot become SCRAM credentials) is imported without
//! a password and listed, as are policies and parameters, which are not imported: the answer
//! says what was skipped rather than pretending it was applied.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use porter_core::bridge::BRIDGE_QUEUE_PREFIX;
use porter_core::queue::QueueDefinition;
use porter_core::routing::exchange::{Exchange, DEFAULT_EXCHANGE};
use porter_core::routing::{Binding, Destination};
use porter_core::vhost::next_owner_id;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::fields;
use crate::overview::RABBITMQ_API_VERSION;
use crate::topics::{topic_config, topic_overrides};
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new().routes(routes!(export, import))
}

/// Exported by RabbitMQ's name for it, not by Porter: the broker's own exchanges.
fn is_builtin_exchange(name: &str) -> bool {
    name == DEFAULT_EXCHANGE || name.starts_with("amq.")
}

#[utoipa::path(get, operation_id = "definitions_export", path = "/api/definitions", tag = "definitions", summary = "Export definitions: RabbitMQ's format plus topics", responses((status = 200, description = "the definitions")))]
async fn export(State(management): State<Arc<Management>>) -> ApiResult<Json<Value>> {
    crate::off_reactor(move || definitions_of(&management).map(Json)).await
}

fn definitions_of(management: &Management) -> ApiResult<Value> {
    let broker = &management.broker;
    let mut vhosts = Vec::new();
    let mut exchanges = Vec::new();
    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    for vhost in broker.vhost_names() {
        vhosts.push(json!({"name": vhost}));
        let table = broker.routing_table(&vhost)?;
        let mut exported_exchanges: HashSet<String> = HashSet::new();
        for exchange in table.exchanges().filter(|e| !is_builtin_exchange(&e.name)) {
            if !exchange.durable {
                continue;
            }
            exported_exchanges.insert(exchange.name.clone());
            exchanges.push(json!({
                "name": exchange.name, "vhost": vhost, "type": exchange.type_name(),
                "durable": exchange.durable, "auto_delete": exchange.auto_delete,
                "internal": exchange.internal, "arguments": fields::to_json(&exchange.arguments),
            }));
        }
        let mut exported_queues: HashSet<String> = HashSet::new();
        for queue in broker.queue_snapshots(Some(&vhost)) {
            let definition = &queue.definition;
            // A bridge's queue belongs to the server's configuration, which makes it again.
            if !definition.durable
                || definition.exclusive_owner.is_some()
                || definition.name.starts_with(BRIDGE_QUEUE_PREFIX)
            {
                continue;
            }
            exported_queues.insert(definition.name.clone());
            queues.push(json!({
                "name": definition.name, "vhost": vhost, "durable": true,
                "auto_delete": definition.auto_delete,
                "arguments": fields::to_json(&definition.arguments),
            }));
        }
        for binding in table.bindings().filter(|b| !b.source.is_empty()) {
            let (kind, exported) = match &binding.destination {
                Destination::Queue(name) => ("queue", exported_queues.contains(name)),
                Destination::Exchange(name) => (
                    "exchange",
                    exported_exchanges.contains(name) || is_builtin_exchange(name),
                ),
            };
            if !exported {
                continue;
            }
            bindings.push(json!({
                "source": binding.source, "vhost": vhost,
                "destination": binding.destination.name(), "destination_type": kind,
                "routing_key": binding.routing_key,
                "arguments": fields::to_json(&binding.arguments),
            }));
        }
    }
    let mut topics: Vec<Value> = broker
        .topics()
        .iter()
        .filter(|t| !t.topic.name.starts_with("__"))
        .map(|t| {
            json!({"name": t.topic.name, "partitions": t.partitions.len(),
                   "config": topic_overrides(management, t)})
        })
        .collect();
    topics.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json!({
        "rabbit_version": RABBITMQ_API_VERSION,
        "rabbitmq_version": RABBITMQ_API_VERSION,
        "product_name": "Porter",
        "product_version": env!("CARGO_PKG_VERSION"),
        "users": management.broker.users().iter().map(crate::users::user_json).collect::<Vec<_>>(),
        "permissions": management
            .broker
            .permissions()
            .iter()
            .map(|(user, vhost, p)| crate::users::permission_json(user, vhost, p))
            .collect::<Vec<_>>(),
        "topic_permissions": crate::topic_permissions::topic_permissions_where(management, |_, _| true),
        "parameters": vhost_limit_parameters(management), "global_parameters": [], "policies": [],
        "vhosts": vhosts, "queues": queues, "exchanges": exchanges, "bindings": bindings,
        "topics": topics,
    }))
}

/// RabbitMQ keeps vhost limits as a runtime parameter (component `vhost-limits`, name
/// `limits`) and exports them among `parameters`; Porter writes and reads them the same way, so
/// a RabbitMQ export brings its limits along.
const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";

fn vhost_limit_parameters(management: &Management) -> Vec<Value> {
    management
        .broker
        .vhost_limits()
        .iter()
        .filter(|(_, limits)| !limits.as_map().is_empty())
        .map(|(vhost, limits)| {
            json!({"vhost": vhost, "component": VHOST_LIMITS_COMPONENT, "name": "limits",
                   "value": limits.as_map()})
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
struct Definitions {
    #[serde(default)]
    vhosts: Vec<NamedObject>,
    #[serde(default)]
    queues: Vec<QueueDef>,
    #[serde(default)]
    exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    bindings: Vec<BindingDef>,
    #[serde(default)]
    topics: Vec<TopicDef>,
    #[serde(default)]
    users: Vec<Value>,
    #[serde(default)]
    permissions: Vec<Value>,
    #[serde(default)]
    topic_permissions: Vec<Value>,
    #[serde(default)]
    policies: Vec<Value>,
    #[serde(default)]
    parameters: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct NamedObject {
    name: String,
}

fn default_vhost() -> String {
    "/".to_string()
}

#[derive(Debug, Deserialize)]
struct QueueDef {
    name: String,
    #[serde(default = "default_vhost")]
    vhost: String,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    durable: Option<bool>,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    auto_delete: Option<bool>,
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ExchangeDef {
    name: String,
    #[serde(default = "default_vhost")]
    vhost: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    durable: Option<bool>,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    auto_delete: Option<bool>,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    internal: Option<bool>,
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct BindingDef {
    source: String,
    #[serde(default = "default_vhost")]
    vhost: String,
    destination: String,
    destination_type: String,
    #[serde(default)]
    routing_key: String,
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct TopicDef {
    name: String,
    partitions: Option<u32>,
    #[serde(default)]
    config: BTreeMap<String, Value>,
}

/// Names an object in an import error, so the operator knows where it stopped.
fn at<'a>(what: &'static str, name: &'a str) -> impl Fn(ApiError) -> ApiError + 'a {
    move |e| ApiError::new(e.status, format!("{what} {name}: {}", e.reason))
}

/// The parse an import starts with, for the fuzz targets (crates/fuzz-targets): arbitrary bytes
/// in, an answer (or a 400) out, nothing else.
#[doc(hidden)]
pub fn parse_for_fuzzing(body: &[u8]) {
    let _ = parse::<Definitions>(&Bytes::copy_from_slice(body));
}

#[utoipa::path(post, operation_id = "definitions_import", path = "/api/definitions", tag = "definitions", summary = "Import definitions (a Porter or RabbitMQ export), idempotently", responses((status = 200, description = "what was imported and skipped"), (status = 400, description = "not a definitions document")))]
async fn import(State(management): State<Arc<Management>>, body: Bytes) -> ApiResult<Json<Value>> {
    let definitions: Definitions = parse(&body)?;
    let broker = &management.broker;
    for vhost in &definitions.vhosts {
        broker
            .create_vhost(&vhost.name)
            .await
            .map_err(ApiError::from)
            .map_err(at("vhost", &vhost.name))?;
    }
    let mut topics_created = 0;
    for topic in &definitions.topics {
        if broker.topic(&topic.name).is_some() {
            continue;
        }
        let config = topic_config(&topic.config).map_err(at("topic", &topic.name))?;
        broker
            .create_topic(&topic.name, topic.partitions.unwrap_or(1), config)
            .await
            .map_err(ApiError::from)
            .map_err(at("topic", &topic.name))?;
        topics_created += 1;
    }
    for x in &definitions.exchanges {
        let arguments = fields::from_json(x.arguments.as_ref())?;
        let (kind, delayed) = Exchange::declared_kind(&x.name, &x.kind, &arguments)
            .map_err(porter_core::CoreError::from)
            .map_err(ApiError::from)
            .map_err(at("exchange", &x.name))?;
        let exchange = Exchange {
            name: x.name.clone(),
            kind,
            durable: x.durable.unwrap_or(true),
            auto_delete: x.auto_delete.unwrap_or(false),
            internal: x.internal.unwrap_or(false),
            arguments,
            delayed,
        };
        broker
            .vhost(&x.vhost)?
            .declare_exchange(exchange, false)
            .await
            .map_err(ApiError::from)
            .map_err(at("exchange", &x.name))?;
    }
    for q in &definitions.queues {
        let definition = QueueDefinition {
            name: q.name.clone(),
            id: Default::default(),
            durable: q.durable.unwrap_or(true),
            exclusive_owner: None,
            auto_delete: q.auto_delete.unwrap_or(false),
            arguments: fields::from_json(q.arguments.as_ref())?,
        };
        broker
            .vhost(&q.vhost)?
            .declare_queue(definition, false, next_owner_id())
            .await
            .map_err(ApiError::from)
            .map_err(at("queue", &q.name))?;
    }
    for b in &definitions.bindings {
        let destination = match b.destination_type.as_str() {
            "queue" => Destination::Queue(b.destination.clone()),
            "exchange" => Destination::Exchange(b.destination.clone()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "binding to {}: destination_type {other:?}",
                    b.destination
                )))
            }
        };
        let binding = Binding::new(b.source.clone(), destination, b.routing_key.clone())
            .with_arguments(fields::from_json(b.arguments.as_ref())?);
        broker
            .vhost(&b.vhost)?
            .bind(binding, next_owner_id())
            .await
            .map_err(ApiError::from)
            .map_err(at("binding from", &b.source))?;
    }
    let mut skipped = Vec::new();
    let users = import_users(broker, &definitions, &mut skipped).await?;
    let (vhost_limits, parameters): (Vec<&Value>, Vec<&Value>) = definitions
        .parameters
        .iter()
        .partition(|p| p["component"] == VHOST_LIMITS_COMPONENT);
    for parameter in vhost_limits {
        let vhost = parameter["vhost"].as_str().unwrap_or("/");
        for (name, value) in limits_of(&parameter["value"]).map_err(at("vhost", vhost))? {
            broker
                .set_vhost_limit(vhost, name, Some(value))
                .await
                .map_err(ApiError::from)
                .map_err(at("limits of vhost", vhost))?;
        }
    }
    for (what, count) in [
        ("policies", definitions.policies.len()),
        ("parameters", parameters.len()),
    ] {
        if count > 0 {
            skipped.push(format!(
                "{count} {what}: not imported (Porter has no {what} yet)"
            ));
        }
    }
    tracing::info!(
        vhosts = definitions.vhosts.len(),
        topics = topics_created,
        exchanges = definitions.exchanges.len(),
        queues = definitions.queues.len(),
        bindings = definitions.bindings.len(),
        skipped = skipped.len(),
        "definitions imported through the management API"
    );
    Ok(Json(json!({
        "imported": {
            "vhosts": definitions.vhosts.len(), "topics": topics_created,
            "exchanges": definitions.exchanges.len(), "queues": definitions.queues.len(),
            "bindings": definitions.bindings.len(), "users": users,
            "permissions": definitions.permissions.len(),
            "topic_permissions": definitions.topic_permissions.len(),
        },
        "skipped": skipped,
    })))
}

/// Puts the document's users and permissions; returns how many users. A user whose hash Porter
/// cannot use keeps its password if it exists here, else comes in without one; both are listed
/// in `skipped`.
async fn import_users(
    broker: &Arc<porter_core::Broker>,
    definitions: &Definitions,
    skipped: &mut Vec<String>,
) -> ApiResult<usize> {
    for value in &definitions.users {
        let name = value["name"].as_str().unwrap_or_default().to_string();
        let body: crate::users::UserBody = serde_json::from_value(value.clone())
            .map_err(|e| ApiError::bad_request(format!("user {name:?}: {e}")))?;
        let password = match body.password() {
            Ok(password) => password,
            Err(_) => {
                skipped.push(format!(
                    "the password of user {name:?}: its {} hash cannot become SCRAM credentials; \
                     set it with porter users set-password {name} PASSWORD",
                    body.hashing_algorithm.as_deref().unwrap_or("unknown")
                ));
                porter_core::broker::users::PasswordChange::Keep
            }
        };
        let loopback_only = body.loopback_only.unwrap_or(false);
        broker
            .put_user(&name, password, body.tags()?, loopback_only)
            .await
            .map_err(ApiError::from)
            .map_err(at("user", &name))?;
        for (limit, n) in limits_of(&value["limits"]).map_err(at("user", &name))? {
            broker
                .set_user_limit(&name, limit, Some(n))
                .await
                .map_err(ApiError::from)
                .map_err(at("limits of user", &name))?;
        }
    }
    for p in &definitions.permissions {
        let field = |key: &str| p[key].as_str().unwrap_or_default().to_string();
        let permission = porter_core::users::Permission {
            configure: field("configure"),
            write: field("write"),
            read: field("read"),
        };
        broker
            .set_permission(&field("user"), &field("vhost"), permission)
            .await
            .map_err(ApiError::from)
            .map_err(at("permission of", &field("user")))?;
    }
    for p in &definitions.topic_permissions {
        let field = |key: &str| p[key].as_str().unwrap_or_default().to_string();
        let permission = porter_core::users::TopicPermission {
            write: field("write"),
            read: field("read"),
        };
        broker
            .set_topic_permission(
                &field("user"),
                &field("vhost"),
                &field("exchange"),
                permission,
            )
            .await
            .map_err(ApiError::from)
            .map_err(at("topic permission of", &field("user")))?;
    }
    Ok(definitions.users.len())
}

/// The limits of a definitions object (`{"max-connections": 10}`; absent: none). A limit not
/// named is left as it is when they are set, so an import only adds.
fn limits_of(limits: &Value) -> ApiResult<Vec<(&str, i64)>> {
    let Some(limits) = limits.as_object() else {
        return Ok(Vec::new());
    };
    limits
        .iter()
        .map(|(name, value)| match value.as_i64() {
            Some(value) => Ok((name.as_str(), value)),
            None => Err(ApiError::bad_request(format!(
                "limit {name}: {value} is not a whole number"
            ))),
        })
        .collect()
}
