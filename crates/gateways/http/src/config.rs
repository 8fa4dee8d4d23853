//! [`HttpConfig`]: what `[http]` in the TOML file and `--http-listen` set.

use std::net::SocketAddr;
use std::time::Duration;

use porter_gateway_kit::ListenerLimits;

use crate::limits;

/// Where the chat page's rooms are kept, unless `[http] chat_history_topic` says otherwise.
pub const CHAT_HISTORY_TOPIC: &str = "porter.chat";

/// The HTTP listener's address and limits (see [`crate::limits`] for what each bounds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Open plain-HTTP connections.
    pub connections_max: usize,
    /// Largest request head, bytes (at least 8 KiB).
    pub header_bytes_max: usize,
    /// Largest request body, bytes.
    pub body_bytes_max: usize,
    /// A connection with no complete request head for this long is closed.
    pub idle: Duration,
    pub websocket: WebSocketConfig,
    /// The Kafka topic the chat page's rooms are bridged into, for their history
    /// (`/chat/history/{room}`); `None`: no history (and no bridge).
    pub chat_history_topic: Option<String>,
}

/// Limits of each WebSocket endpoint (`/mqtt`, `/ws`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSocketConfig {
    /// Open connections per endpoint; past it an upgrade is answered 503.
    pub connections_max: usize,
    /// Largest frame accepted; larger closes the connection with 1009. Also the largest frame
    /// sent.
    pub frame_bytes_max: usize,
    /// Largest message (fragments joined) accepted.
    pub message_bytes_max: usize,
    /// Outbound bytes gathered before a write reaches the socket.
    pub write_buffer_bytes: usize,
    /// Bytes read from the socket at a time.
    pub read_buffer_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 15672)),
            connections_max: limits::CONNECTIONS_MAX,
            header_bytes_max: limits::HEADER_BYTES_MAX,
            body_bytes_max: limits::BODY_BYTES_MAX,
            idle: limits::IDLE,
            websocket: WebSocketConfig::default(),
            chat_history_topic: Some(CHAT_HISTORY_TOPIC.to_string()),
        }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            connections_max: limits::WEBSOCKET_CONNECTIONS_MAX,
            frame_bytes_max: limits::WEBSOCKET_FRAME_BYTES_MAX,
            message_bytes_max: limits::WEBSOCKET_MESSAGE_BYTES_MAX,
            write_buffer_bytes: limits::WEBSOCKET_WRITE_BUFFER_BYTES,
            read_buffer_bytes: limits::WEBSOCKET_READ_BUFFER_BYTES,
        }
    }
}

/// Limits that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("http header_bytes_max must be at least {min} bytes, not {given}")]
    HeaderTooSmall { given: usize, min: usize },
    #[error("websocket frame_bytes_max ({frame}) exceeds message_bytes_max ({message})")]
    FrameOverMessage { frame: usize, message: usize },
}

impl HttpConfig {
    /// Checks the limits can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.header_bytes_max < limits::HEADER_BYTES_MIN {
            return Err(ConfigError::HeaderTooSmall {
                given: self.header_bytes_max,
                min: limits::HEADER_BYTES_MIN,
            });
        }
        let ws = &self.websocket;
        for (value, name) in [
            (self.connections_max, "http connections_max"),
            (ws.connections_max, "websocket connections_max"),
            (ws.frame_bytes_max, "websocket frame_bytes_max"),
            (ws.read_buffer_bytes, "websocket read_buffer_bytes"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if ws.frame_bytes_max > ws.message_bytes_max {
            return Err(ConfigError::FrameOverMessage {
                frame: ws.frame_bytes_max,
                message: ws.message_bytes_max,
            });
        }
        Ok(())
    }

    /// The kit limits of the plain-HTTP listener: its connections, the idle deadline, `drain`.
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        let mut limits = ListenerLimits {
            connections_max: self.connections_max,
            drain,
            ..ListenerLimits::default()
        };
        limits.deadlines.idle = Some(self.idle);
        limits.deadlines.handshake = self.idle;
        limits
    }

    /// The kit limits of one WebSocket endpoint; its protocol's own limits (handshake, idle,
    /// memory) stay the kit's defaults unless `base` says otherwise.
    pub fn websocket_limits(&self, base: ListenerLimits) -> ListenerLimits {
        ListenerLimits {
            connections_max: self.websocket.connections_max,
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_limits_refused() {
        assert_eq!(HttpConfig::default().validate(), Ok(()));
        let small = HttpConfig {
            header_bytes_max: 100,
            ..HttpConfig::default()
        };
        assert!(matches!(
            small.validate(),
            Err(ConfigError::HeaderTooSmall { .. })
        ));
        let mut frame = HttpConfig::default();
        frame.websocket.frame_bytes_max = frame.websocket.message_bytes_max + 1;
        assert!(matches!(
            frame.validate(),
            Err(ConfigError::FrameOverMessage { .. })
        ));
    }
}
