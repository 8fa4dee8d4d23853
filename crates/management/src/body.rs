//! Request bodies: JSON parsed here rather than by axum's `Json` extractor, so a bad body is a
//! 400 in RabbitMQ's error shape (not axum's 422 text), a missing content type is accepted as
//! RabbitMQ accepts it, and booleans may come as strings (`rabbitmqadmin` sends
//! `"durable": "true"`).

use axum::body::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ApiResult};

/// A PUT's answer as RabbitMQ gives it: 201 when it made the object, 204 when an equivalent one
/// was there.
pub fn declared(existed: bool) -> axum::http::StatusCode {
    if existed {
        axum::http::StatusCode::NO_CONTENT
    } else {
        axum::http::StatusCode::CREATED
    }
}

/// A DELETE's conditions, as RabbitMQ's API spells them (`?if-unused=true&if-empty=true`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Only if it has no consumers (queues) or bindings from it (exchanges).
    #[serde(rename = "if-unused")]
    pub if_unused: Option<bool>,
    /// Only if it holds no messages (queues).
    #[serde(rename = "if-empty")]
    pub if_empty: Option<bool>,
}

/// The body as `T`; an empty body is `T::default()`.
pub fn parse<T: DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

/// `true`, `false`, `"true"` or `"false"`.
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(text)) => match text.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "expected true or false, got {other:?}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "lenient_bool")]
        durable: Option<bool>,
    }

    #[test]
    fn booleans_may_be_strings() {
        let parsed: Body = parse(&Bytes::from_static(br#"{"durable":"false"}"#)).unwrap();
        assert_eq!(parsed.durable, Some(false));
        let parsed: Body = parse(&Bytes::from_static(br#"{"durable":true}"#)).unwrap();
        assert_eq!(parsed.durable, Some(true));
        let parsed: Body = parse(&Bytes::from_static(b"")).unwrap();
        assert_eq!(parsed.durable, None);
        assert!(parse::<Body>(&Bytes::from_static(br#"{"durable":"maybe"}"#)).is_err());
        assert!(parse::<Body>(&Bytes::from_static(b"{not json")).is_err());
    }
}
