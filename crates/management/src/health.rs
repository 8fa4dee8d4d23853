//! `/readyz`: 200 once the broker recovered its storage and bound every listener, 503 before
//! (and with the reason during a resource alarm, when publishers are blocked). `/healthz`
//! (process up) is the HTTP listener's own.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::Management;

pub(crate) fn routes() -> Router<Arc<Management>> {
    Router::new().route("/readyz", get(readyz))
}

async fn readyz(State(management): State<Arc<Management>>) -> (StatusCode, String) {
    if !management.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: listeners not bound yet\n".to_string(),
        );
    }
    let alarms = *management.broker.alarms().borrow();
    if alarms.any() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("resource alarm: {}\n", alarms.reason()),
        );
    }
    (StatusCode::OK, "ready\n".to_string())
}
