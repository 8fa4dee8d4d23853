//! `/api/users` and `/api/permissions`, as RabbitMQ's API has them: users with their tags (and
//! their password credentials, for moving them to another broker), created or changed with a
//! PUT of a password or a hash, deleted; per-vhost permissions (configure, write, read regular
//! expressions) set and cleared. Administrators only ([`crate::auth`]).
//!
//! `password_hash` is Porter's own: base64 of the user's SCRAM credentials (salted, stretched;
//! never the password), `hashing_algorithm` `porter_scram_sha`. A hash made by RabbitMQ
//! (salted SHA-256) cannot become SCRAM credentials, so such a user needs its password given.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use base64::Engine;
use porter_core::broker::users::PasswordChange;
use porter_core::users::{PasswordCredentials, Permission, User};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::body::{declared, parse};
use crate::error::{ApiError, ApiResult};
use crate::paging::{JsonBody, ListQuery};
use crate::Management;

/// The `hashing_algorithm` of Porter's exported credentials.
pub const HASHING_ALGORITHM: &str = "porter_scram_sha";

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .route("/api/users/", get(list_users))
        .routes(routes!(show_user, put_user, delete_user))
        .routes(routes!(set_access_secret, clear_access_secret))
        .routes(routes!(user_permissions))
        .routes(routes!(list_permissions))
        .routes(routes!(vhost_permissions))
        .routes(routes!(show_permission, set_permission, clear_permission))
}

/// A user as RabbitMQ's API shows it.
pub fn user_json(user: &User) -> Value {
    let password_hash = user
        .credentials
        .as_ref()
        .map(|c| {
            let json = serde_json::to_vec(c).unwrap_or_default();
            base64::engine::general_purpose::STANDARD.encode(json)
        })
        .unwrap_or_default();
    json!({
        "name": user.name,
        "tags": user.tags,
        "password_hash": password_hash,
        "hashing_algorithm": HASHING_ALGORITHM,
        "limits": user.limits.as_map(),
        "loopback_only": user.loopback_only,
        "has_access_secret": user.access_secret.is_some(),
    })
}

pub fn permission_json(user: &str, vhost: &str, p: &Permission) -> Value {
    json!({"user": user, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

#[utoipa::path(get, operation_id = "users_list_users", path = "/api/users", tag = "users", summary = "Users with their tags", params(ListQuery), responses((status = 200, description = "users")))]
async fn list_users(
    State(management): State<Arc<Management>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<JsonBody> {
    query.apply(management.broker.users(), |u| u.name.as_str(), user_json)
}

#[utoipa::path(get, operation_id = "users_show_user", path = "/api/users/{name}", tag = "users", summary = "One user", params(("name" = String, Path, description = "user")), responses((status = 200, description = "the user"), (status = 404, description = "no such user")))]
async fn show_user(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = management
        .broker
        .user(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(&user)))
}

/// A user PUT, as RabbitMQ takes it.
#[derive(Debug, Default, Deserialize)]
pub struct UserBody {
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub hashing_algorithm: Option<String>,
    /// "administrator,monitoring" or ["administrator", "monitoring"].
    #[serde(default)]
    pub tags: Option<Value>,
    #[serde(default)]
    pub loopback_only: Option<bool>,
}

impl UserBody {
    /// The tags, from a comma-separated string or an array.
    pub fn tags(&self) -> ApiResult<Vec<String>> {
        match &self.tags {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(text)) => Ok(text
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(String::from)
                        .ok_or_else(|| ApiError::bad_request("tags must be strings"))
                })
                .collect(),
            Some(_) => Err(ApiError::bad_request(
                "tags: a comma-separated string or an array",
            )),
        }
    }

    /// What the PUT does to the password: RabbitMQ's rules (a password, or a hash, or
    /// `"password_hash": ""` for none; neither keeps an existing user's).
    pub fn password(&self) -> ApiResult<PasswordChange> {
        match (&self.password, &self.password_hash) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "give password or password_hash, not both",
            )),
            (Some(p), None) => Ok(PasswordChange::Set(p.clone())),
            (None, Some(h)) if h.is_empty() => Ok(PasswordChange::Clear),
            (None, Some(h)) => {
                let algorithm = self
                    .hashing_algorithm
                    .as_deref()
                    .unwrap_or(HASHING_ALGORITHM);
                if algorithm != HASHING_ALGORITHM {
                    return Err(ApiError::bad_request(format!(
                        "a {algorithm} hash cannot become SCRAM credentials: give the user's password"
                    )));
                }
                let json = base64::engine::general_purpose::STANDARD
                    .decode(h)
                    .map_err(|e| ApiError::bad_request(format!("password_hash: {e}")))?;
                let credentials: PasswordCredentials = serde_json::from_slice(&json)
                    .map_err(|e| ApiError::bad_request(format!("password_hash: {e}")))?;
                Ok(PasswordChange::Credentials(credentials))
            }
            (None, None) => Ok(PasswordChange::Keep),
        }
    }
}

#[utoipa::path(put, operation_id = "users_put_user", path = "/api/users/{name}", tag = "users", summary = "Create or change a user (password or password_hash, tags)", params(("name" = String, Path, description = "user")), responses((status = 201, description = "created"), (status = 204, description = "changed"), (status = 400, description = "bad name, tag or hash")))]
async fn put_user(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: UserBody = parse(&body)?;
    let existing = management.broker.user(&name);
    let loopback_only = body
        .loopback_only
        .unwrap_or_else(|| existing.as_ref().is_some_and(|u| u.loopback_only));
    let created = management
        .broker
        .put_user(&name, body.password()?, body.tags()?, loopback_only)
        .await?;
    Ok(declared(!created))
}

#[utoipa::path(delete, operation_id = "users_delete_user", path = "/api/users/{name}", tag = "users", summary = "Delete a user and its permissions", params(("name" = String, Path, description = "user")), responses((status = 204, description = "deleted"), (status = 404, description = "no such user")))]
async fn delete_user(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if management.broker.user(&name).is_none() {
        return Err(ApiError::not_found());
    }
    management.broker.delete_user(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn permissions_where(management: &Management, keep: impl Fn(&str, &str) -> bool) -> Value {
    management
        .broker
        .permissions()
        .iter()
        .filter(|(user, vhost, _)| keep(user, vhost))
        .map(|(user, vhost, p)| permission_json(user, vhost, p))
        .collect()
}

#[utoipa::path(get, operation_id = "users_user_permissions", path = "/api/users/{name}/permissions", tag = "users", summary = "A user's permissions in every vhost", params(("name" = String, Path, description = "user")), responses((status = 200, description = "permissions"), (status = 404, description = "no such user")))]
async fn user_permissions(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if management.broker.user(&name).is_none() {
        return Err(ApiError::not_found());
    }
    Ok(Json(permissions_where(&management, |u, _| u == name)))
}

#[utoipa::path(get, operation_id = "users_list_permissions", path = "/api/permissions", tag = "users", summary = "Every permission", responses((status = 200, description = "permissions")))]
async fn list_permissions(State(management): State<Arc<Management>>) -> Json<Value> {
    Json(permissions_where(&management, |_, _| true))
}

#[utoipa::path(get, operation_id = "users_vhost_permissions", path = "/api/vhosts/{vhost}/permissions", tag = "users", summary = "The permissions in one vhost", params(("vhost" = String, Path, description = "virtual host (/ is %2F)")), responses((status = 200, description = "permissions"), (status = 404, description = "no such vhost")))]
async fn vhost_permissions(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    crate::queues::check_vhost(&management, &vhost)?;
    Ok(Json(permissions_where(&management, |_, v| v == vhost)))
}

#[utoipa::path(get, operation_id = "users_show_permission", path = "/api/permissions/{vhost}/{user}", tag = "users", summary = "One user's permission in one vhost", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("user" = String, Path, description = "user")), responses((status = 200, description = "the permission"), (status = 404, description = "none")))]
async fn show_permission(
    State(management): State<Arc<Management>>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let permission = management
        .broker
        .permission(&user, &vhost)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(permission_json(&user, &vhost, &permission)))
}

/// A permission PUT: RabbitMQ's three regular expressions.
#[derive(Debug, Default, Deserialize)]
pub struct PermissionBody {
    #[serde(default)]
    pub configure: String,
    #[serde(default)]
    pub write: String,
    #[serde(default)]
    pub read: String,
}

#[utoipa::path(put, operation_id = "users_set_permission", path = "/api/permissions/{vhost}/{user}", tag = "users", summary = "Set a user's permission in a vhost (configure, write, read)", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("user" = String, Path, description = "user")), responses((status = 201, description = "set"), (status = 204, description = "replaced"), (status = 400, description = "not a regular expression"), (status = 404, description = "no such user or vhost")))]
async fn set_permission(
    State(management): State<Arc<Management>>,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: PermissionBody = parse(&body)?;
    if management.broker.user(&user).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no user {user:?}"),
        ));
    }
    let existed = management.broker.permission(&user, &vhost).is_some();
    let permission = Permission {
        configure: body.configure,
        write: body.write,
        read: body.read,
    };
    management
        .broker
        .set_permission(&user, &vhost, permission)
        .await?;
    Ok(declared(existed))
}

#[utoipa::path(delete, operation_id = "users_clear_permission", path = "/api/permissions/{vhost}/{user}", tag = "users", summary = "Clear a user's permission in a vhost", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("user" = String, Path, description = "user")), responses((status = 204, description = "cleared"), (status = 404, description = "none")))]
async fn clear_permission(
    State(management): State<Arc<Management>>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    management.broker.clear_permission(&user, &vhost).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An access secret PUT: the secret to set, or none to have one made.
#[derive(Debug, Default, Deserialize)]
pub struct AccessSecretBody {
    #[serde(default)]
    pub secret: Option<String>,
}

#[utoipa::path(put, operation_id = "users_set_access_secret", path = "/api/users/{name}/access-secret", tag = "users", summary = "Set a user's access secret (RocketMQ's SecretKey; its AccessKey is the user name); without one in the body, a random one is made. Answers the pair, the only time the secret is shown", params(("name" = String, Path, description = "user")), responses((status = 200, description = "the access key and secret"), (status = 400, description = "empty secret"), (status = 404, description = "no such user")))]
async fn set_access_secret(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: AccessSecretBody = if body.is_empty() {
        AccessSecretBody::default()
    } else {
        parse(&body)?
    };
    let secret = match body.secret {
        Some(s) if s.is_empty() => return Err(ApiError::bad_request("an empty access secret")),
        Some(s) => s,
        None => porter_core::users::new_access_secret(),
    };
    management
        .broker
        .set_access_secret(&name, Some(secret.clone()))
        .await?;
    Ok(Json(json!({"access_key": name, "secret_key": secret})))
}

#[utoipa::path(delete, operation_id = "users_clear_access_secret", path = "/api/users/{name}/access-secret", tag = "users", summary = "Remove a user's access secret: its signed RocketMQ requests are refused", params(("name" = String, Path, description = "user")), responses((status = 204, description = "removed"), (status = 404, description = "no such user")))]
async fn clear_access_secret(
    State(management): State<Arc<Management>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    management.broker.set_access_secret(&name, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
