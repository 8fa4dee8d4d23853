//! Why a connection ended, quinn-style: who closed it, a protocol code and a text. Every
//! connection produces exactly one [`CloseReason`], and the listener logs it once, with the
//! connection's counters, when the connection's task ends.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::registry::ConnectionInfo;

/// Which deadline expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// TLS plus the protocol's handshake took too long.
    Handshake,
    /// A write made no progress: the peer stopped reading.
    WriteStall,
    /// Nothing arrived and nothing was in flight for the idle period.
    Idle,
    /// A protocol-level liveness check (AMQP heartbeats, MQTT keep-alive) failed.
    Heartbeat,
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deadline::Handshake => "handshake",
            Deadline::WriteStall => "write stall",
            Deadline::Idle => "idle",
            Deadline::Heartbeat => "heartbeat",
        })
    }
}

/// Who decided the connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClosedBy {
    /// This side, for a reason that is not an error (a management close, a normal protocol
    /// close initiated by the broker).
    Local,
    /// The client: a protocol close, end of stream, or a reset.
    Peer,
    /// The broker is shutting down.
    Shutdown,
    /// A deadline expired.
    Deadline(Deadline),
    /// A named limit was exceeded (frame size, channels, connections).
    Limit,
    /// The client broke the protocol (bad framing, malformed request, unexpected method).
    ProtocolError,
}

impl ClosedBy {
    /// Every kind, in [`ClosedBy::index`] order, as `/metrics` labels them.
    pub const KINDS: [&'static str; 6] = [
        "local",
        "peer",
        "shutdown",
        "deadline",
        "limit",
        "protocol_error",
    ];

    /// This kind's place in [`ClosedBy::KINDS`].
    pub fn index(&self) -> usize {
        match self {
            ClosedBy::Local => 0,
            ClosedBy::Peer => 1,
            ClosedBy::Shutdown => 2,
            ClosedBy::Deadline(_) => 3,
            ClosedBy::Limit => 4,
            ClosedBy::ProtocolError => 5,
        }
    }
}

impl fmt::Display for ClosedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosedBy::Local => f.write_str("local"),
            ClosedBy::Peer => f.write_str("peer"),
            ClosedBy::Shutdown => f.write_str("shutdown"),
            ClosedBy::Deadline(d) => write!(f, "{d} deadline"),
            ClosedBy::Limit => f.write_str("limit"),
            ClosedBy::ProtocolError => f.write_str("protocol error"),
        }
    }
}

/// Why a connection ended. `code` is the protocol's own (AMQP reply code, MQTT reason code;
/// 0 where the protocol has none, as in Kafka).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    pub by: ClosedBy,
    pub code: u32,
    pub text: Cow<'static, str>,
}

impl CloseReason {
    /// A reason with every part given.
    pub fn new(by: ClosedBy, code: u32, text: impl Into<Cow<'static, str>>) -> Self {
        CloseReason {
            by,
            code,
            text: text.into(),
        }
    }

    /// The broker closed it, not because of an error.
    pub fn local(code: u32, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ClosedBy::Local, code, text)
    }

    /// The client closed it (or its end of the stream went away).
    pub fn peer(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ClosedBy::Peer, 0, text)
    }

    /// Broker shutdown.
    pub fn shutdown() -> Self {
        Self::new(ClosedBy::Shutdown, 0, "broker shutdown")
    }

    /// A deadline expired.
    pub fn deadline(which: Deadline, limit: Duration) -> Self {
        Self::new(
            ClosedBy::Deadline(which),
            0,
            format!("no progress within the {which} deadline of {limit:?}"),
        )
    }

    /// A named limit was exceeded.
    pub fn limit(code: u32, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ClosedBy::Limit, code, text)
    }

    /// The client broke the protocol.
    pub fn protocol(code: u32, text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ClosedBy::ProtocolError, code, text)
    }

    /// The same reason with the protocol code replaced (e.g. AMQP's 320 on shutdown).
    pub fn with_code(mut self, code: u32) -> Self {
        self.code = code;
        self
    }

    /// Whether the close is worth a warning: the client misbehaved or hit a limit, rather than
    /// leaving or the broker stopping.
    pub fn is_error(&self) -> bool {
        matches!(
            self.by,
            ClosedBy::Deadline(_) | ClosedBy::Limit | ClosedBy::ProtocolError
        )
    }

    /// Logs the close once: a warning for errors, debug otherwise. The listener calls this when
    /// a connection's task ends; gateways need not log closes themselves.
    pub fn log(&self, info: &ConnectionInfo) {
        let lived_ms = info
            .connected_at
            .elapsed()
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let user = info.user.as_deref().unwrap_or("-");
        if self.is_error() {
            tracing::warn!(
                protocol = info.protocol, id = info.id.0, peer = %info.peer, user,
                by = %self.by, code = self.code, lived_ms,
                bytes_in = info.bytes_in, bytes_out = info.bytes_out,
                "closing connection: {}", self.text
            );
        } else {
            tracing::debug!(
                protocol = info.protocol, id = info.id.0, peer = %info.peer, user,
                by = %self.by, code = self.code, lived_ms,
                bytes_in = info.bytes_in, bytes_out = info.bytes_out,
                "connection closed: {}", self.text
            );
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary: a protocol's close carries its
/// reason in a bounded field (AMQP's short string, 255 bytes; a WebSocket close frame's 123).
pub fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "closed by {} ({}): {}", self.by, self.code, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_keeps_whole_characters() {
        assert_eq!(truncated("h\u{e9}llo", 2), "h");
        assert_eq!(truncated("hello", 123), "hello");
    }

    #[test]
    fn errors_are_the_client_or_limit_ones() {
        assert!(CloseReason::protocol(505, "unexpected frame").is_error());
        assert!(CloseReason::deadline(Deadline::WriteStall, Duration::from_secs(1)).is_error());
        assert!(CloseReason::limit(0, "frame too large").is_error());
        assert!(!CloseReason::peer("end of stream").is_error());
        assert!(!CloseReason::shutdown().is_error());
        assert_eq!(CloseReason::shutdown().with_code(320).code, 320);
    }

    #[test]
    fn display_names_who_and_why() {
        let r = CloseReason::deadline(Deadline::Idle, Duration::from_secs(600));
        assert_eq!(
            r.to_string(),
            "closed by idle deadline (0): no progress within the idle deadline of 600s"
        );
    }
}
