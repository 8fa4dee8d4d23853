//! HTTP basic authentication of API requests against the broker's users, as RabbitMQ's API
//! requires (`rabbitmqadmin -u guest -p guest`). The same authenticator as the AMQP and STOMP
//! listeners decides, so `guest` is accepted from loopback only. Then the user's tags decide
//! what it may do, as RabbitMQ's do: without a management tag (`administrator`, `monitoring`,
//! `management`, `policymaker`) nothing; with one, read; changes, and anything about users,
//! permissions or definitions (which carry password credentials), only as `administrator`.
//! A bearer API token, or over HTTPS with mutual TLS the client certificate, logs in too.
//! Before any of that, a request that changes something and comes from another site's page is
//! refused 403: the browser would add a certificate or cached credentials on its own
//! (`porter_gateway_http::cross_origin`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use porter_gateway_http::cross_origin::is_cross_origin;
use porter_gateway_http::PeerAddrs;
use porter_gateway_kit::auth::{Credentials, Principal};

use crate::error::ApiError;
use crate::Management;

/// How a request logged in (a request extension beside its [`Principal`]).
#[derive(Clone, Copy, Debug)]
pub struct LoggedIn {
    pub via_token: bool,
}

/// `Authorization: Bearer <token>`.
fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// Lets the request through if its `Authorization: Basic` names a broker user, its
/// `Authorization: Bearer` carries one's API token, or (HTTPS with mutual TLS, no
/// `Authorization`) its client certificate names one; 401 with `WWW-Authenticate` otherwise.
pub async fn require_user(
    State(management): State<Arc<Management>>,
    request: Request,
    next: Next,
) -> Response {
    if changes_something(request.method()) && is_cross_origin(request.headers()) {
        // Another site's page, riding on what the browser holds for this origin (a client
        // certificate, cached basic credentials): see `porter_gateway_http::cross_origin`.
        let origin = request.headers().get(header::ORIGIN).cloned();
        tracing::warn!(?origin, path = %request.uri().path(), "management API: cross-origin request refused");
        return ApiError::new(StatusCode::FORBIDDEN, "cross-origin request refused")
            .into_response();
    }
    let Some(authenticator) = management.authenticator.as_ref() else {
        return next.run(request).await;
    };
    // The web UI asks with X-Requested-With and shows its own login form: no browser prompt.
    let prompt = !request.headers().contains_key("x-requested-with");
    let addrs = request.extensions().get::<PeerAddrs>();
    let peer = addrs
        .map(|addrs| addrs.peer)
        .unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
    let certificate = addrs.and_then(|addrs| addrs.client_login.clone());
    let (user, outcome, via_token) = match (
        bearer_token(request.headers()),
        basic_credentials(request.headers()),
        certificate,
    ) {
        (Some(token), _, _) => {
            let outcome = authenticator.authenticate_token(token, peer).await;
            ("(token)".to_string(), outcome, true)
        }
        (None, Some((user, password)), _) => {
            let credentials = Credentials {
                mechanism: "PLAIN",
                user: &user,
                secret: password.as_bytes(),
                peer,
            };
            let outcome = authenticator.authenticate(credentials).await;
            (user, outcome, false)
        }
        // HTTPS with mutual TLS and no credentials: the certificate's user, as AMQP's
        // EXTERNAL and MQTT's certificate logins have it.
        (None, None, Some(user)) => {
            let outcome = authenticator.authenticate_certificate(&user, peer).await;
            (user.to_string(), outcome, false)
        }
        (None, None, None) => {
            return refused(
                "this API needs HTTP basic authentication with a broker user, a bearer token or a client certificate",
                prompt,
            )
        }
    };
    match outcome {
        Ok(principal) => {
            if let Err(reason) = allowed(&principal, &request, via_token) {
                tracing::warn!(%peer, user = %principal.user, path = %request.uri().path(), reason, "management API request refused");
                return refused(reason, false);
            }
            let mut request = request;
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(LoggedIn { via_token });
            next.run(request).await
        }
        Err(error) => {
            if error.is_throttled() {
                tracing::debug!(%peer, user = %user, %error, "management API login refused");
            } else {
                tracing::warn!(%peer, user = %user, %error, "management API login refused");
            }
            refused("Not_Authorized", prompt)
        }
    }
}

/// Whether a request with this method may change something (GET, HEAD and OPTIONS only read).
fn changes_something(method: &Method) -> bool {
    ![Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

/// What the user's tags let it do with `request`: RabbitMQ's reasons when not.
fn allowed(principal: &Principal, request: &Request, via_token: bool) -> Result<(), &'static str> {
    let has = |tag: &str| principal.tags.iter().any(|t| t == tag);
    let path = request.uri().path();
    // Any user may ask who it is (the UI does, to say why a client-only user cannot log in).
    if path == "/api/whoami" {
        return Ok(());
    }
    if !["administrator", "monitoring", "management", "policymaker"]
        .iter()
        .any(|t| has(t))
    {
        return Err("Not management user");
    }
    // A user's own tokens: made with its password only, so a leaked token cannot mint more.
    if path == "/api/tokens" || path.starts_with("/api/tokens/") {
        let makes = request.method() == Method::POST;
        return match makes && via_token {
            true => Err("API tokens are made with a password login, not a token"),
            false => Ok(()),
        };
    }
    let about_users = [
        "/api/users",
        "/api/permissions",
        "/api/topic-permissions",
        "/api/user-limits",
        "/api/definitions",
    ]
    .iter()
    .any(|p| path.starts_with(p))
        || path.ends_with("/permissions")
        || path.ends_with("/topic-permissions");
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if (about_users || !reads) && !has("administrator") {
        return Err("Not administrator user");
    }
    Ok(())
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
