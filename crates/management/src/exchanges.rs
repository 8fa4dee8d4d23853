//! `/api/exchanges` (list, show, declare, delete) and `/api/bindings` (list, create, delete),
//! as RabbitMQ's API does them. The default exchange is listed as `""` (published to as
//! `amq.default`), with its implicit binding to every queue, as RabbitMQ shows it.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use porter_core::routing::exchange::{Exchange, ExchangeKind};
use porter_core::routing::{Binding, Destination, RoutingTable};
use porter_core::vhost::next_owner_id;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{declared, DeleteQuery};
use crate::error::{ApiError, ApiResult};
use crate::fields;
use crate::off_reactor;
use crate::paging::{JsonBody, ListQuery};
use crate::Management;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The default exchange's name in URLs, where an empty path segment cannot stand.
pub const DEFAULT_EXCHANGE_ALIAS: &str = "amq.default";

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_all))
        .route("/api/exchanges/", get(list_all))
        .routes(routes!(list_vhost))
        .routes(routes!(show, declare, remove))
        .routes(routes!(bindings_all))
        .route("/api/bindings/", get(bindings_all))
        .routes(routes!(bindings_vhost))
        .routes(routes!(bind, bindings_between))
        .routes(routes!(binding_show, unbind))
}

fn exchange_name(path_name: &str) -> &str {
    if path_name == DEFAULT_EXCHANGE_ALIAS {
        ""
    } else {
        path_name
    }
}

fn exchange_json(vhost: &str, exchange: &Exchange) -> Value {
    json!({
        "name": exchange.name,
        "vhost": vhost,
        "type": exchange.type_name(),
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": fields::to_json(&exchange.arguments),
    })
}

/// A vhost's exchanges, the default one first, then by name.
fn exchanges_of(management: &Management, vhost: &str) -> ApiResult<Vec<(String, Exchange)>> {
    let table = management.broker.routing_table(vhost)?;
    let mut exchanges: Vec<Exchange> = table.exchanges().cloned().collect();
    if !exchanges.iter().any(|e| e.name.is_empty()) {
        exchanges.push(Exchange::new("", ExchangeKind::Direct));
    }
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(exchanges
        .into_iter()
        .map(|e| (vhost.to_string(), e))
        .collect())
}

/// Objects with the vhost they belong to.
type InVhosts<T> = Vec<(String, T)>;

/// `of` for one vhost, or for every vhost in turn.
fn per_vhost<T>(
    management: &Management,
    vhost: Option<&str>,
    of: fn(&Management, &str) -> ApiResult<InVhosts<T>>,
) -> ApiResult<InVhosts<T>> {
    match vhost {
        Some(vhost) => of(management, vhost),
        None => {
            let mut all = Vec::new();
            for vhost in management.broker.vhost_names() {
                all.extend(of(management, &vhost)?);
            }
            Ok(all)
        }
    }
}

/// Exchanges of one vhost or all, listed.
async fn list_exchanges(
    management: Arc<Management>,
    vhost: Option<String>,
    query: ListQuery,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        let all = per_vhost(&management, vhost.as_deref(), exchanges_of)?;
        query.apply(all, |(_, e)| e.name.as_str(), |(v, e)| exchange_json(v, e))
    })
    .await
}

#[utoipa::path(get, operation_id = "exchanges_list_all", path = "/api/exchanges", tag = "exchanges", summary = "Every exchange", params(ListQuery), responses((status = 200, description = "exchanges")))]
async fn list_all(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    list_exchanges(management, None, query).await
}

#[utoipa::path(get, operation_id = "exchanges_list_vhost", path = "/api/exchanges/{vhost}", tag = "exchanges", summary = "The exchanges of one virtual host", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ListQuery), responses((status = 200, description = "exchanges")))]
async fn list_vhost(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    list_exchanges(management, Some(vhost), query).await
}

#[utoipa::path(get, operation_id = "exchanges_show", path = "/api/exchanges/{vhost}/{name}", tag = "exchanges", summary = "One exchange", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "exchange (amq.default for the default one)")), responses((status = 200, description = "the exchange"), (status = 404, description = "no such exchange")))]
async fn show(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let name = exchange_name(&name);
    exchanges_of(&management, &vhost)?
        .into_iter()
        .find(|(_, e)| e.name == name)
        .map(|(v, e)| Json(exchange_json(&v, &e)))
        .ok_or_else(ApiError::not_found)
}

/// The body of an exchange PUT.
#[derive(Debug, Default, Deserialize)]
pub struct ExchangeBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    pub durable: Option<bool>,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    pub auto_delete: Option<bool>,
    #[serde(default, deserialize_with = "crate::body::lenient_bool")]
    pub internal: Option<bool>,
    pub arguments: Option<Value>,
}

#[utoipa::path(put, operation_id = "exchanges_declare", path = "/api/exchanges/{vhost}/{name}", tag = "exchanges", summary = "Declare an exchange (type, durable, auto_delete, internal, arguments)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "exchange")), responses((status = 201, description = "created"), (status = 204, description = "an equivalent exchange exists"), (status = 400, description = "inequivalent or invalid"), (status = 403, description = "reserved amq. name")))]
async fn declare(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let body: ExchangeBody = crate::body::parse(&body)?;
    let kind_name = body
        .kind
        .ok_or_else(|| ApiError::bad_request("an exchange needs a type"))?;
    let arguments = fields::from_json(body.arguments.as_ref())?;
    let (kind, delayed) = Exchange::declared_kind(&name, &kind_name, &arguments)
        .map_err(porter_core::CoreError::from)?;
    let host = management.broker.vhost(&vhost)?;
    let existed = management
        .broker
        .routing_table(&vhost)?
        .exchange(&name)
        .is_some();
    host.declare_exchange(
        Exchange {
            name,
            kind,
            durable: body.durable.unwrap_or(true),
            auto_delete: body.auto_delete.unwrap_or(false),
            internal: body.internal.unwrap_or(false),
            arguments,
            delayed,
        },
        false,
    )
    .await?;
    Ok(declared(existed))
}

#[utoipa::path(delete, operation_id = "exchanges_remove", path = "/api/exchanges/{vhost}/{name}", tag = "exchanges", summary = "Delete an exchange (?if-unused)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "exchange"), DeleteQuery), responses((status = 204, description = "deleted"), (status = 404, description = "no such exchange")))]
async fn remove(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let host = management.broker.vhost(&vhost)?;
    if management
        .broker
        .routing_table(&vhost)?
        .exchange(&name)
        .is_none()
    {
        return Err(ApiError::not_found());
    }
    host.delete_exchange(&name, query.if_unused.unwrap_or(false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// RabbitMQ's `properties_key`: the routing key (`~` when empty) that names a binding in a
/// URL, plus `~` and a digest of the arguments when it has any.
pub fn properties_key(binding: &Binding) -> String {
    let key = if binding.routing_key.is_empty() {
        "~".to_string()
    } else {
        binding.routing_key.clone()
    };
    if binding.arguments.is_empty() {
        return key;
    }
    let digest = fields::to_json(&binding.arguments).to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in digest.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{key}~{hash:016x}")
}

fn binding_json(vhost: &str, binding: &Binding) -> Value {
    let (destination_type, destination) = match &binding.destination {
        Destination::Queue(name) => ("queue", name),
        Destination::Exchange(name) => ("exchange", name),
    };
    json!({
        "source": binding.source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": destination_type,
        "routing_key": binding.routing_key,
        "arguments": fields::to_json(&binding.arguments),
        "properties_key": properties_key(binding),
    })
}

/// A vhost's bindings: the default exchange's implicit one per queue first, then the declared.
fn bindings_of(management: &Management, vhost: &str) -> ApiResult<Vec<(String, Binding)>> {
    let table: Arc<RoutingTable> = management.broker.routing_table(vhost)?;
    let mut bindings: Vec<Binding> = management
        .broker
        .queue_snapshots(Some(vhost))
        .into_iter()
        .map(|q| {
            let name = q.definition.name;
            Binding::new("", Destination::Queue(name.clone()), name)
        })
        .collect();
    let mut declared: Vec<Binding> = table
        .bindings()
        .filter(|b| !b.source.is_empty())
        .cloned()
        .collect();
    declared.sort_by(|a, b| {
        (&a.source, &a.destination, &a.routing_key).cmp(&(
            &b.source,
            &b.destination,
            &b.routing_key,
        ))
    });
    bindings.extend(declared);
    Ok(bindings
        .into_iter()
        .map(|b| (vhost.to_string(), b))
        .collect())
}

/// Bindings of one vhost or all, listed.
async fn list_bindings(
    management: Arc<Management>,
    vhost: Option<String>,
    query: ListQuery,
) -> ApiResult<JsonBody> {
    off_reactor(move || {
        let all = per_vhost(&management, vhost.as_deref(), bindings_of)?;
        query.apply(all, |(_, b)| b.source.as_str(), |(v, b)| binding_json(v, b))
    })
    .await
}

#[utoipa::path(get, operation_id = "exchanges_bindings_all", path = "/api/bindings", tag = "bindings", summary = "Every binding, the default exchange's implicit ones included", params(ListQuery), responses((status = 200, description = "bindings")))]
async fn bindings_all(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    list_bindings(management, None, query).await
}

#[utoipa::path(get, operation_id = "exchanges_bindings_vhost", path = "/api/bindings/{vhost}", tag = "bindings", summary = "The bindings of one virtual host", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ListQuery), responses((status = 200, description = "bindings")))]
async fn bindings_vhost(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    list_bindings(management, Some(vhost), query).await
}

/// `q` or `e` in a binding URL.
fn destination(kind: &str, name: String) -> ApiResult<Destination> {
    match kind {
        "q" => Ok(Destination::Queue(name)),
        "e" => Ok(Destination::Exchange(name)),
        _ => Err(ApiError::not_found()),
    }
}

fn between(
    management: &Management,
    vhost: &str,
    source: &str,
    to: &Destination,
) -> ApiResult<Vec<(String, Binding)>> {
    Ok(bindings_of(management, vhost)?
        .into_iter()
        .filter(|(_, b)| b.source == source && &b.destination == to)
        .collect())
}

#[utoipa::path(get, operation_id = "exchanges_bindings_between", path = "/api/bindings/{vhost}/e/{source}/{kind}/{destination}", tag = "bindings", summary = "Bindings between an exchange and a queue or exchange", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("source" = String, Path, description = "source exchange"), ("kind" = String, Path, description = "q (queue) or e (exchange)"), ("destination" = String, Path, description = "destination queue or exchange")), responses((status = 200, description = "bindings")))]
async fn bindings_between(
    State(management): State<Arc<Management>>,
    Path((vhost, source, kind, name)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let to = destination(&kind, name)?;
    let found = between(&management, &vhost, exchange_name(&source), &to)?;
    Ok(Json(Value::Array(
        found.iter().map(|(v, b)| binding_json(v, b)).collect(),
    )))
}

#[utoipa::path(get, operation_id = "exchanges_binding_show", path = "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}", tag = "bindings", summary = "One binding", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("source" = String, Path, description = "source exchange"), ("kind" = String, Path, description = "q or e"), ("destination" = String, Path, description = "destination"), ("props" = String, Path, description = "properties_key: the routing key (~ when empty)")), responses((status = 200, description = "the binding"), (status = 404, description = "no such binding")))]
async fn binding_show(
    State(management): State<Arc<Management>>,
    Path((vhost, source, kind, name, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let to = destination(&kind, name)?;
    between(&management, &vhost, exchange_name(&source), &to)?
        .into_iter()
        .find(|(_, b)| properties_key(b) == props)
        .map(|(v, b)| Json(binding_json(&v, &b)))
        .ok_or_else(ApiError::not_found)
}

/// The body of a binding POST.
#[derive(Debug, Default, Deserialize)]
pub struct BindingBody {
    pub routing_key: Option<String>,
    pub arguments: Option<Value>,
}

#[utoipa::path(post, operation_id = "exchanges_bind", path = "/api/bindings/{vhost}/e/{source}/{kind}/{destination}", tag = "bindings", summary = "Create a binding (routing_key, arguments)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("source" = String, Path, description = "source exchange"), ("kind" = String, Path, description = "q (queue) or e (exchange)"), ("destination" = String, Path, description = "destination queue or exchange")), responses((status = 201, description = "created, with its Location"), (status = 404, description = "no such exchange or queue")))]
/// 201 with a `Location` naming the binding, as RabbitMQ answers.
async fn bind(
    State(management): State<Arc<Management>>,
    Path((vhost, source, kind, name)): Path<(String, String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let body: BindingBody = crate::body::parse(&body)?;
    let source = exchange_name(&source).to_string();
    if source.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the default exchange's bindings are implicit",
        ));
    }
    let binding = Binding::new(
        source,
        destination(&kind, name)?,
        body.routing_key.unwrap_or_default(),
    )
    .with_arguments(fields::from_json(body.arguments.as_ref())?);
    let location = properties_key(&binding);
    management
        .broker
        .vhost(&vhost)?
        .bind(binding, next_owner_id())
        .await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

#[utoipa::path(delete, operation_id = "exchanges_unbind", path = "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}", tag = "bindings", summary = "Delete a binding", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("source" = String, Path, description = "source exchange"), ("kind" = String, Path, description = "q or e"), ("destination" = String, Path, description = "destination"), ("props" = String, Path, description = "properties_key: the routing key (~ when empty)")), responses((status = 204, description = "deleted"), (status = 404, description = "no such binding")))]
async fn unbind(
    State(management): State<Arc<Management>>,
    Path((vhost, source, kind, name, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let to = destination(&kind, name)?;
    let binding = between(&management, &vhost, exchange_name(&source), &to)?
        .into_iter()
        .map(|(_, b)| b)
        .find(|b| properties_key(b) == props)
        .ok_or_else(ApiError::not_found)?;
    management
        .broker
        .vhost(&vhost)?
        .unbind(binding, next_owner_id())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
