//! The web UI, embedded in the binary (no network at run time): one HTML page, its CSS and its
//! JavaScript, at `/` (as RabbitMQ serves its UI at the root of 15672). The page logs in with a
//! broker user and reads and changes everything through the same `/api` the CLI uses.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../assets/ui/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../assets/ui/ui.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("../assets/ui/ui.css"),
};

/// `/`, `/ui/ui.js`, `/ui/ui.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/ui/ui.js", get(|| async { serve(&SCRIPT) }))
        .route("/ui/ui.css", get(|| async { serve(&STYLE) }))
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // The page loads nothing from elsewhere and is never framed.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        asset.body,
    )
        .into_response()
}
