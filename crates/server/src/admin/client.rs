//! A blocking client of the broker's management API (ureq), and what each failure means for
//! the exit status, so scripts can tell "not there" from "not allowed" from "broker down".

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::args::ApiArgs;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Exit statuses of the management commands (2 is clap's, for bad usage).
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const BAD_REQUEST: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const REFUSED: u8 = 5;
    pub const UNREACHABLE: u8 = 6;
}

/// A failed command: what to print and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub status: u8,
}

impl Failure {
    pub fn new(status: u8, message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            status,
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    authorization: String,
}

impl Client {
    pub fn new(args: &ApiArgs) -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build();
        let credentials = format!("{}:{}", args.user, args.password);
        Client {
            agent: ureq::Agent::new_with_config(config),
            base: args.url.trim_end_matches('/').to_string(),
            authorization: match &args.token {
                Some(token) => format!("Bearer {token}"),
                None => format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                ),
            },
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.request("GET", path, None)
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.request("PUT", path, Some(body))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.request("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.request("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.request("DELETE", path, None)
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{}", self.base, path);
        let auth = self.authorization.as_str();
        let sent = match body {
            None => {
                let request = ureq::http::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header("Authorization", auth)
                    .body(());
                request
                    .map_err(ureq::Error::from)
                    .and_then(|r| self.agent.run(r))
            }
            Some(body) => {
                let request = ureq::http::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header("Authorization", auth)
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
                request
                    .map_err(ureq::Error::from)
                    .and_then(|r| self.agent.run(r))
            }
        };
        let mut response = sent.map_err(|e| {
            Failure::new(
                exit::UNREACHABLE,
                format!(
                    "cannot reach the broker's management API at {}: {e}",
                    self.base
                ),
            )
        })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let reason = match (&json, json.get("reason").and_then(Value::as_str)) {
            (_, Some(reason)) => reason.to_string(),
            (Value::Null, None) => response
                .status()
                .canonical_reason()
                .unwrap_or("error")
                .to_string(),
            (other, None) => other.to_string(),
        };
        let code = match status {
            400 | 409 | 413 => exit::BAD_REQUEST,
            401 | 403 => exit::REFUSED,
            404 => exit::NOT_FOUND,
            _ => exit::FAILED,
        };
        Err(Failure::new(
            code,
            format!("{method} {path}: {status}: {reason}"),
        ))
    }
}

/// A path segment, percent-encoded as RabbitMQ's API wants it (`/` is `%2F`).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn segments_encode_what_a_path_cannot_hold() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("a.b-c_d"), "a.b-c_d");
        assert_eq!(segment("1.2.3.4:5 -> 6"), "1.2.3.4%3A5%20-%3E%206");
    }
}
