//! `/api/tokens`: the calling user's bearer tokens for the API (see
//! [`porter_core::users::tokens`]). `POST` makes one (`{"name": "ci", "expires_in_secs": 86400}`)
//! and answers its text, the only time it is shown; `GET` lists names and dates; `DELETE
//! /api/tokens/{name}` revokes one. A token is made with a password login, never with another
//! token ([`crate::auth`]); a request with `Authorization: Bearer <token>` then acts as its
//! owner, with the owner's tags.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use porter_core::users::tokens::ApiToken;
use porter_gateway_kit::auth::Principal;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::body::parse;
use crate::error::{ApiError, ApiResult};
use crate::Management;

pub(crate) fn routes() -> OpenApiRouter<Arc<Management>> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
}

fn token_json(token: &ApiToken) -> Value {
    json!({"name": token.name, "created_ms": token.created_ms, "expires_ms": token.expires_ms})
}

/// A token POST.
#[derive(Debug, Default, Deserialize)]
pub struct TokenBody {
    #[serde(default)]
    pub name: String,
    /// Lifetime; absent: until deleted.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// The API's user (the broker's user store may be off: then there are no tokens).
fn caller(principal: Option<Extension<Principal>>) -> ApiResult<String> {
    principal
        .map(|Extension(p)| p.user)
        .ok_or_else(|| ApiError::bad_request("API tokens need the broker's user store"))
}

#[utoipa::path(get, operation_id = "tokens_list", path = "/api/tokens", tag = "users", summary = "The calling user's API tokens (names and dates, never the tokens)", responses((status = 200, description = "tokens")))]
async fn list_tokens(
    State(management): State<Arc<Management>>,
    principal: Option<Extension<Principal>>,
) -> ApiResult<Json<Value>> {
    let user = caller(principal)?;
    let tokens = management.broker.api_tokens(&user).unwrap_or_default();
    Ok(Json(tokens.iter().map(token_json).collect()))
}

#[utoipa::path(post, operation_id = "tokens_create", path = "/api/tokens", tag = "users", summary = "Make an API token for the calling user; the answer holds the token, shown this once", responses((status = 201, description = "the token"), (status = 400, description = "bad name, a name in use, or 20 tokens already")))]
async fn create_token(
    State(management): State<Arc<Management>>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user = caller(principal)?;
    let body: TokenBody = parse(&body)?;
    let ttl_ms = body.expires_in_secs.map(|s| s.saturating_mul(1000));
    let made = management
        .broker
        .create_api_token(&user, &body.name, ttl_ms)
        .await?;
    let mut answer = token_json(&made.record);
    answer["token"] = Value::String(made.token);
    answer["user"] = Value::String(user);
    Ok((StatusCode::CREATED, Json(answer)))
}

#[utoipa::path(delete, operation_id = "tokens_delete", path = "/api/tokens/{name}", tag = "users", summary = "Revoke one of the calling user's API tokens", params(("name" = String, Path, description = "the token's name")), responses((status = 204, description = "revoked"), (status = 404, description = "no such token")))]
async fn delete_token(
    State(management): State<Arc<Management>>,
    principal: Option<Extension<Principal>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let user = caller(principal)?;
    management.broker.delete_api_token(&user, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
