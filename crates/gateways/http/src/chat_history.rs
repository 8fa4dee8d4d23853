//! `GET /chat/history/{room}?limit=N`: a chat room's last messages, read from the log.
//!
//! MQTT cannot read a topic's past, so the chat page asks here when it joins a room. The
//! server bridges `amq.topic`'s `chat.rooms.*` (MQTT `chat/rooms/<room>`) into a Kafka topic
//! (`[http] chat_history_topic`, default `porter.chat`), keyed by routing key; this reads the
//! room's newest records back with [`porter_core::history::newest`], bounded by count and by
//! bytes scanned. Any Kafka client can read the same topic.
//!
//! Answers: 200 `{"room", "messages": [{"offset", "timestamp", "payload"}], "truncated"}`
//! (oldest first; `payload` is the message body as UTF-8 text), 400 for a bad room name or
//! limit, 503 while the topic is missing or unreadable.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use porter_core::history::newest;
use porter_core::Broker;
use serde_json::json;

/// Messages returned when the request names no limit.
pub const HISTORY_DEFAULT: usize = 50;
/// Messages one request returns at most.
pub const HISTORY_MAX: usize = 200;
/// Longest room name (the chat page allows 32).
const ROOM_CHARS_MAX: usize = 64;

/// Where the history is read from.
struct ChatHistory {
    broker: Arc<Broker>,
    topic: String,
}

/// The route, reading `topic` of `broker`.
pub fn router(broker: Arc<Broker>, topic: String) -> Router {
    Router::new()
        .route("/chat/history/{room}", get(history))
        .with_state(Arc::new(ChatHistory { broker, topic }))
}

/// The routing key a room's messages carry: MQTT `chat/rooms/<room>` through `amq.topic`
/// (MQTT's `.` becomes `/` in a routing key, as RabbitMQ maps it).
fn room_key(room: &str) -> String {
    format!("chat.rooms.{}", room.replace('.', "/"))
}

async fn history(
    State(chat): State<Arc<ChatHistory>>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if !valid_room(&room) {
        return error(
            StatusCode::BAD_REQUEST,
            "a room is 1 to 64 letters, digits, '_', '-' or '.'",
        );
    }
    let limit = match limit_of(query.as_deref()) {
        Ok(limit) => limit,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(topic) = chat.broker.topic(&chat.topic) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the chat history topic does not exist (yet)",
        );
    };
    match newest(&topic, room_key(&room).as_bytes(), limit).await {
        Ok(found) => {
            let messages: Vec<_> = found
                .records
                .iter()
                .map(|r| {
                    json!({
                        "offset": r.offset,
                        "timestamp": r.timestamp,
                        "payload": String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()),
                    })
                })
                .collect();
            let body = json!({ "room": room, "messages": messages, "truncated": found.truncated });
            json_response(StatusCode::OK, &body)
        }
        Err(e) => {
            tracing::warn!(topic = %chat.topic, %room, error = %e, "reading chat history failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "reading the history failed",
            )
        }
    }
}

fn valid_room(room: &str) -> bool {
    (1..=ROOM_CHARS_MAX).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `limit=N` from the query string (1..=[`HISTORY_MAX`]); other parameters are ignored.
fn limit_of(query: Option<&str>) -> Result<usize, &'static str> {
    let Some(value) = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="))
    else {
        return Ok(HISTORY_DEFAULT);
    };
    match value.parse::<usize>() {
        Ok(n) if (1..=HISTORY_MAX).contains(&n) => Ok(n),
        _ => Err("limit must be a number from 1 to 200"),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_limits_and_keys() {
        assert!(valid_room("lobby") && valid_room("a.b-c_1"));
        for bad in ["", "a/b", "a+b", "#", "x y", &"r".repeat(65)] {
            assert!(!valid_room(bad), "{bad:?}");
        }
        assert_eq!(limit_of(None), Ok(HISTORY_DEFAULT));
        assert_eq!(limit_of(Some("x=1&limit=7")), Ok(7));
        for bad in ["limit=0", "limit=201", "limit=-1", "limit=ten"] {
            assert!(limit_of(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(room_key("a.b"), "chat.rooms.a/b");
    }
}
