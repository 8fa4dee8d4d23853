//! `/api/topic-permissions`, as RabbitMQ's API has them: per user, vhost and topic exchange, the
//! routing keys the user may publish with (`write`) and bind with (`read`), as regular
//! expressions (see [`porter_core::users::topic_access`]). Administrators only ([`crate::auth`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use porter_core::users::TopicPermission;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::Management;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_topic_permissions))
        .routes(routes!(user_topic_permissions))
        .routes(routes!(vhost_topic_permissions))
        .routes(routes!(
            show_topic_permissions,
            set_topic_permission,
            clear_topic_permissions
        ))
        .routes(routes!(clear_topic_permission))
}

pub fn topic_permission_json(
    user: &str,
    vhost: &str,
    exchange: &str,
    p: &TopicPermission,
) -> Value {
    json!({"user": user, "vhost": vhost, "exchange": exchange, "write": p.write, "read": p.read})
}

/// The topic permissions `keep(user, vhost)` selects.
pub(crate) fn topic_permissions_where(
    management: &Management,
    keep: impl Fn(&str, &str) -> bool,
) -> Vec<Value> {
    management
        .broker
        .topic_permissions()
        .iter()
        .filter(|(user, vhost, _, _)| keep(user, vhost))
        .map(|(user, vhost, exchange, p)| topic_permission_json(user, vhost, exchange, p))
        .collect()
}

#[utoipa::path(get, operation_id = "topic_permissions_list", path = "/api/topic-permissions", tag = "users", summary = "Every topic permission", responses((status = 200, description = "topic permissions")))]
async fn list_topic_permissions(State(management): State<Arc<Management>>) -> Json<Value> {
    Json(topic_permissions_where(&management, |_, _| true).into())
}

#[utoipa::path(get, operation_id = "topic_permissions_of_user", path = "/api/users/{name}/topic-permissions", tag = "users", summary = "A user's topic permissions in every vhost", params(("name" = String, Path, description = "user")), responses((status = 200, description = "topic permissions"), (status = 404, description = "no such user")))]
async fn user_topic_permissions(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if management.broker.user(&name).is_none() {
        return Err(ApiError::not_found());
    }
    Ok(Json(
        topic_permissions_where(&management, |u, _| u == name).into(),
    ))
}

#[utoipa::path(get, operation_id = "topic_permissions_of_vhost", path = "/api/vhosts/{vhost}/topic-permissions", tag = "users", summary = "The topic permissions in one vhost", params(("vhost" = String, Path, description = "virtual host (/ is %2F)")), responses((status = 200, description = "topic permissions"), (status = 404, description = "no such vhost")))]
async fn vhost_topic_permissions(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::queues::check_vhost(&management, &vhost)?;
    Ok(Json(
        topic_permissions_where(&management, |_, v| v == vhost).into(),
    ))
}

#[utoipa::path(get, operation_id = "topic_permissions_show", path = "/api/topic-permissions/{vhost}/{user}", tag = "users", summary = "One user's topic permissions in one vhost, one per exchange", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("user" = String, Path, description = "user")), responses((status = 200, description = "topic permissions"), (status = 404, description = "none")))]
async fn show_topic_permissions(
    State(management): State<Arc<Management>>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let found = topic_permissions_where(&management, |u, v| u == user && v == vhost);
    if found.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(found.into()))
}

/// A topic permission PUT, RabbitMQ's body.
#[derive(Debug, Default, Deserialize)]
pub struct TopicPermissionBody {
    #[serde(default)]
    pub exchange: String,
    #[serde(default)]
    pub write: String,
    #[serde(default)]
    pub read: String,
}

impl TopicPermissionBody {
    pub fn permission(&self) -> TopicPermission {
        TopicPermission {
            write: self.write.clone(),
            read: self.read.clone(),
        }
    }
}

#[utoipa::path(put, operation_id = "topic_permissions_set", path = "/api/topic-permissions/{vhost}/{user}", tag = "users", summary = "Set a user's topic permission on one exchange (exchange, write, read)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("user" = String, Path, description = "user")), responses((status = 201, description = "set"), (status = 400, description = "no exchange, or not a regular expression"), (status = 404, description = "no such user or vhost")))]
async fn set_topic_permission(
    State(management): State<Arc<Management>>,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: TopicPermissionBody = parse(&body)?;
    if body.exchange.is_empty() {
        return Err(ApiError::bad_request(
            "a topic permission names its exchange",
        ));
    }
    management
        .broker
        .set_topic_permission(&user, &vhost, &body.exchange, body.permission())
        .await?;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(delete, operation_id = "topic_permissions_clear", path = "/api/topic-permissions/{vhost}/{user}", tag = "users", summary = "Clear a user's topic permissions in a vhost", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("user" = String, Path, description = "user")), responses((status = 204, description = "cleared"), (status = 404, description = "none")))]
async fn clear_topic_permissions(
    State(management): State<Arc<Management>>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    management
        .broker
        .clear_topic_permission(&user, &vhost, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, operation_id = "topic_permissions_clear_exchange", path = "/api/topic-permissions/{vhost}/{user}/{exchange}", tag = "users", summary = "Clear a user's topic permission on one exchange", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("user" = String, Path, description = "user"), ("exchange" = String, Path, description = "exchange")), responses((status = 204, description = "cleared"), (status = 404, description = "none")))]
async fn clear_topic_permission(
    State(management): State<Arc<Management>>,
    Path((vhost, user, exchange)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    management
        .broker
        .clear_topic_permission(&user, &vhost, Some(&exchange))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
