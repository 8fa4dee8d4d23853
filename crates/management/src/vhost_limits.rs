//! `/api/vhost-limits`, as RabbitMQ's API has it: each vhost's `max-connections` and
//! `max-queues` (`{"vhost": "/", "value": {"max-queues": 10}}`), set with a PUT of
//! `{"value": N}` (negative: no limit) and removed with a DELETE. Changes need an administrator
//! ([`crate::auth`]). The core enforces them: a declare past `max-queues` is refused 406, a
//! connection past `max-connections` 530.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::Management;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_limits))
        .routes(routes!(vhost_limits))
        .routes(routes!(set_limit, clear_limit))
}

fn limits_json(management: &Management, keep: impl Fn(&str) -> bool) -> Value {
    let limits = management.broker.vhost_limits();
    Value::Array(
        limits
            .iter()
            .filter(|(vhost, _)| keep(vhost))
            .map(|(vhost, l)| json!({"vhost": vhost, "value": l.as_map()}))
            .collect(),
    )
}

#[utoipa::path(get, operation_id = "vhost_limits_list_limits", path = "/api/vhost-limits", tag = "vhosts", summary = "Every vhost's limits (max-connections, max-queues)", responses((status = 200, description = "limits")))]
async fn list_limits(State(management): State<Arc<Management>>) -> ApiResult<Json<Value>> {
    Ok(Json(limits_json(&management, |_| true)))
}

#[utoipa::path(get, operation_id = "vhost_limits_vhost_limits", path = "/api/vhost-limits/{vhost}", tag = "vhosts", summary = "One vhost's limits", params(("vhost" = String, Path, description = "virtual host (/ is %2F)")), responses((status = 200, description = "limits")))]
async fn vhost_limits(
    State(management): State<Arc<Management>>,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(limits_json(&management, |v| v == vhost)))
}

/// A limit PUT, RabbitMQ's body: `{"value": N}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LimitBody {
    value: Option<i64>,
}

impl LimitBody {
    /// The value a PUT must carry.
    pub(crate) fn parse(body: &Bytes) -> ApiResult<i64> {
        let body: LimitBody = parse(body)?;
        body.value
            .ok_or_else(|| ApiError::bad_request("the body needs a numeric \"value\""))
    }
}

#[utoipa::path(put, operation_id = "vhost_limits_set_limit", path = "/api/vhost-limits/{vhost}/{name}", tag = "vhosts", summary = "Set a vhost limit: {\"value\": N}", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "max-connections or max-queues")), responses((status = 204, description = "set"), (status = 400, description = "unknown limit or no value"), (status = 404, description = "no such vhost")))]
async fn set_limit(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let value = LimitBody::parse(&body)?;
    management
        .broker
        .set_vhost_limit(&vhost, &name, Some(value))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, operation_id = "vhost_limits_clear_limit", path = "/api/vhost-limits/{vhost}/{name}", tag = "vhosts", summary = "Remove a vhost limit", params(("vhost" = String, Path, description = "virtual host (/ is %2F)"), ("name" = String, Path, description = "max-connections or max-queues")), responses((status = 204, description = "removed")))]
async fn clear_limit(
    State(management): State<Arc<Management>>,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    management
        .broker
        .set_vhost_limit(&vhost, &name, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
