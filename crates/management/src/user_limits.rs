//! `/api/user-limits`, as RabbitMQ's API has it: a user's `max-connections` (its client
//! connections on AMQP, MQTT, STOMP and Kafka at once), `{"user": "app", "value":
//! {"max-connections": 10}}`, set with a PUT of `{"value": N}` (negative: no limit) and removed
//! with a DELETE. Administrators only ([`crate::auth`]). A connection past the limit is refused
//! as RabbitMQ refuses it (AMQP 530, MQTT CONNACK not authorized, a STOMP ERROR, Kafka's SASL
//! failure).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::vhost_limits::LimitBody;
use crate::Management;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_user_limits))
        .routes(routes!(user_limits))
        .routes(routes!(set_user_limit, clear_user_limit))
}

fn limits_json(management: &Management, keep: impl Fn(&str) -> bool) -> Value {
    Value::Array(
        management
            .broker
            .users()
            .iter()
            .filter(|u| !u.limits.is_empty() && keep(&u.name))
            .map(|u| json!({"user": u.name, "value": u.limits.as_map()}))
            .collect(),
    )
}

#[utoipa::path(get, operation_id = "user_limits_list", path = "/api/user-limits", tag = "users", summary = "Every user's limits (max-connections)", responses((status = 200, description = "limits")))]
async fn list_user_limits(State(management): State<Arc<Management>>) -> Json<Value> {
    Json(limits_json(&management, |_| true))
}

#[utoipa::path(get, operation_id = "user_limits_of_user", path = "/api/user-limits/{user}", tag = "users", summary = "One user's limits", params(("user" = String, Path, description = "user")), responses((status = 200, description = "limits")))]
async fn user_limits(
    State(management): State<Arc<Management>>,
    Path(user): Path<String>,
) -> Json<Value> {
    Json(limits_json(&management, |u| u == user))
}

#[utoipa::path(put, operation_id = "user_limits_set", path = "/api/user-limits/{user}/{name}", tag = "users", summary = "Set a user limit: {\"value\": N}", params(("user" = String, Path, description = "user"), ("name" = String, Path, description = "max-connections")), responses((status = 204, description = "set"), (status = 400, description = "unknown limit or no value"), (status = 404, description = "no such user")))]
async fn set_user_limit(
    State(management): State<Arc<Management>>,
    Path((user, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let value = LimitBody::parse(&body)?;
    management
        .broker
        .set_user_limit(&user, &name, Some(value))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, operation_id = "user_limits_clear", path = "/api/user-limits/{user}/{name}", tag = "users", summary = "Remove a user limit", params(("user" = String, Path, description = "user"), ("name" = String, Path, description = "max-connections")), responses((status = 204, description = "removed"), (status = 404, description = "no such user")))]
async fn clear_user_limit(
    State(management): State<Arc<Management>>,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    management.broker.set_user_limit(&user, &name, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
