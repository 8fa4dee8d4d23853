//! The chat-room example page, embedded in the binary (no network at run time): plain HTML, CSS
//! and JavaScript under `/chat/`, with a vendored browser build of mqtt.js (see
//! `assets/chat/VENDORED.md`). It speaks MQTT over the `/mqtt` WebSocket endpoint.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/chat/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/chat/index.html"),
    },
    Asset {
        path: "/chat/chat.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/chat/chat.css"),
    },
    Asset {
        path: "/chat/chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/chat/chat.js"),
    },
    Asset {
        path: "/chat/mqtt.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/chat/mqtt.min.js"),
    },
];

/// The page's routes (`/chat` redirects to `/chat/` so relative asset paths resolve).
pub fn router() -> Router {
    let mut router = Router::new().route("/chat", get(|| async { Redirect::permanent("/chat/") }));
    for asset in ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response()
}
