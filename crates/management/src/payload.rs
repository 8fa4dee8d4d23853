//! Message bytes in JSON, as RabbitMQ's API carries them: a `"string"` when they are UTF-8 text,
//! else `"base64"`, with the encoding named beside them. One place for both directions, so a
//! queue's get, a topic's browse and both publishes agree.

use axum::body::Bytes;
use base64::Engine;

use crate::error::{ApiError, ApiResult};

/// `text` in `encoding` ("string", the default, or "base64") as bytes; `what` names the field in
/// the error ("payload", "value", "key").
pub fn decode(text: String, encoding: Option<&str>, what: &str) -> ApiResult<Bytes> {
    match encoding.unwrap_or("string") {
        "string" => Ok(Bytes::from(text.into_bytes())),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| ApiError::bad_request(format!("{what} is not base64: {e}"))),
        other => Err(ApiError::bad_request(format!(
            "{what}_encoding must be string or base64, not {other:?}"
        ))),
    }
}

/// A read's `encoding` parameter: "auto" (the default: text when UTF-8, else base64) or
/// "base64" (always); true for base64 always.
pub fn base64_always(encoding: Option<&str>) -> ApiResult<bool> {
    match encoding.unwrap_or("auto") {
        "auto" => Ok(false),
        "base64" => Ok(true),
        other => Err(ApiError::bad_request(format!(
            "encoding must be auto or base64, not {other:?}"
        ))),
    }
}

/// `bytes` as text with its encoding: UTF-8 as a string unless `base64_always`, else base64.
pub fn encode(bytes: &[u8], base64_always: bool) -> (String, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(text) if !base64_always => (text.to_string(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            "base64",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_binary_goes_base64() {
        assert_eq!(encode(b"hello", false), ("hello".to_string(), "string"));
        assert_eq!(encode(b"hello", true), ("aGVsbG8=".to_string(), "base64"));
        assert_eq!(encode(&[0xff, 0], false).1, "base64");
        let back = decode("aGVsbG8=".into(), Some("base64"), "value").unwrap();
        assert_eq!(&back[..], b"hello");
        assert!(decode("!".into(), Some("base64"), "value").is_err());
        assert!(decode("x".into(), Some("hex"), "value").is_err());
    }
}
