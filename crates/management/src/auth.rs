//! HTTP basic authentication of API requests against the broker's users, as RabbitMQ's API
//! requires (`rabbitmqadmin -u guest -p guest`). The same authenticator as the AMQP and STOMP
//! listeners decides, so `guest` is accepted from loopback only. Issue 18 adds tags
//! (administrator, monitoring) and tokens; until then any broker user may use the API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use porter_gateway_http::PeerAddrs;
use porter_gateway_kit::auth::Credentials;

use crate::error::ApiError;
use crate::Management;

/// Lets the request through if its `Authorization: Basic` names a broker user; 401 with
/// `WWW-Authenticate` otherwise.
pub async fn require_user(
    State(management): State<Arc<Management>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(authenticator) = management.authenticator.as_ref() else {
        return next.run(request).await;
    };
    // The web UI asks with X-Requested-With and shows its own login form: no browser prompt.
    let prompt = !request.headers().contains_key("x-requested-with");
    let Some((user, password)) = basic_credentials(request.headers()) else {
        return refused(
            "this API needs HTTP basic authentication with a broker user",
            prompt,
        );
    };
    let peer = request
        .extensions()
        .get::<PeerAddrs>()
        .map(|addrs| addrs.peer)
        .unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
    let credentials = Credentials {
        mechanism: "PLAIN",
        user: &user,
        secret: password.as_bytes(),
        peer,
    };
    match authenticator.authenticate(credentials).await {
        Ok(_) => next.run(request).await,
        Err(error) => {
            tracing::warn!(%peer, user = %user, %error, "management API login refused");
            refused("Not_Authorized", prompt)
        }
    }
}

fn refused(reason: &str, prompt: bool) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, reason).into_response();
    if prompt {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"Porter Management\""),
        );
    }
    response
}

/// (user, password) from `Authorization: Basic base64(user:password)`.
pub(crate) fn basic_credentials(headers: &header::HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
