//! The one place a failure becomes an AMQP reply code, and the decision whether it closes the
//! channel or the whole connection (RabbitMQ's split: 403/404/405/406 are channel errors, the
//! 5xx codes connection errors).

use porter_core::error::ErrorKind;
use porter_core::queue::QueueError;
use porter_core::routing::RoutingError;
use porter_core::CoreError;

use crate::frame::FrameError;

pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;
pub const CONNECTION_FORCED: u16 = 320;
pub const FRAME_ERROR: u16 = 501;
pub const SYNTAX_ERROR: u16 = 502;
pub const COMMAND_INVALID: u16 = 503;
pub const CHANNEL_ERROR: u16 = 504;
pub const UNEXPECTED_FRAME: u16 = 505;
pub const NOT_ALLOWED: u16 = 530;
pub const NOT_IMPLEMENTED: u16 = 540;
pub const INTERNAL_ERROR: u16 = 541;

/// A protocol exception: what to put in `channel.close` / `connection.close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    pub code: u16,
    /// `NAME - detail`, as RabbitMQ words them.
    pub text: String,
    /// Closes the connection, not only the channel.
    pub connection: bool,
    /// The method that failed (0, 0 when none).
    pub class_id: u16,
    pub method_id: u16,
}

fn name(code: u16) -> &'static str {
    match code {
        ACCESS_REFUSED => "ACCESS_REFUSED",
        NOT_FOUND => "NOT_FOUND",
        RESOURCE_LOCKED => "RESOURCE_LOCKED",
        PRECONDITION_FAILED => "PRECONDITION_FAILED",
        CONNECTION_FORCED => "CONNECTION_FORCED",
        FRAME_ERROR => "FRAME_ERROR",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        COMMAND_INVALID => "COMMAND_INVALID",
        CHANNEL_ERROR => "CHANNEL_ERROR",
        UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        NOT_ALLOWED => "NOT_ALLOWED",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        _ => "INTERNAL_ERROR",
    }
}

impl AmqpError {
    pub fn channel(code: u16, detail: impl std::fmt::Display) -> Self {
        AmqpError {
            code,
            text: format!("{} - {detail}", name(code)),
            connection: false,
            class_id: 0,
            method_id: 0,
        }
    }

    pub fn connection(code: u16, detail: impl std::fmt::Display) -> Self {
        AmqpError {
            connection: true,
            ..AmqpError::channel(code, detail)
        }
    }

    /// Names the method that failed, for the close frame.
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// The error a core failure is, as seen from `vhost` (RabbitMQ names it in texts).
    pub fn from_core(error: &CoreError, vhost: &str) -> Self {
        use AmqpError as E;
        match error {
            CoreError::Routing(routing) => match routing {
                RoutingError::VhostNotFound(v) => {
                    E::connection(NOT_ALLOWED, format!("vhost {v} not found"))
                }
                RoutingError::ExchangeNotFound(x) => {
                    E::channel(NOT_FOUND, format!("no exchange '{x}' in vhost '{vhost}'"))
                }
                RoutingError::QueueNotFound(q) => {
                    E::channel(NOT_FOUND, format!("no queue '{q}' in vhost '{vhost}'"))
                }
                RoutingError::AccessRefused { name, reason } => E::channel(
                    ACCESS_REFUSED,
                    format!("operation not permitted on exchange '{name}': {reason}"),
                ),
                RoutingError::InternalExchange(x) => E::channel(
                    ACCESS_REFUSED,
                    format!("cannot publish to internal exchange '{x}' in vhost '{vhost}'"),
                ),
                RoutingError::Precondition { reason, .. } => {
                    E::channel(PRECONDITION_FAILED, reason)
                }
                RoutingError::Inequivalent(inequivalent) => {
                    E::channel(PRECONDITION_FAILED, inequivalent.in_vhost(vhost))
                }
                RoutingError::LimitExceeded { name, reason } => {
                    E::channel(PRECONDITION_FAILED, format!("{name}: {reason}"))
                }
                RoutingError::InvalidName { reason, .. } => {
                    E::channel(PRECONDITION_FAILED, format!("invalid name: {reason}"))
                }
                RoutingError::UnknownExchangeKind(kind) => {
                    E::connection(COMMAND_INVALID, format!("unknown exchange type '{kind}'"))
                }
            },
            CoreError::Queue(queue) => match queue {
                QueueError::UnknownDeliveryTag(tag) => {
                    E::channel(PRECONDITION_FAILED, format!("unknown delivery tag {tag}"))
                }
                QueueError::ConsumerTagInUse(tag) => E::connection(
                    NOT_ALLOWED,
                    format!("attempt to reuse consumer tag '{tag}'"),
                ),
                QueueError::UnknownConsumer(tag) => {
                    E::channel(NOT_FOUND, format!("no consumer '{tag}'"))
                }
                QueueError::LimitExceeded(limit) => {
                    E::channel(PRECONDITION_FAILED, format!("limit {limit} reached"))
                }
                QueueError::RecoverWithoutRequeue => E::connection(
                    NOT_IMPLEMENTED,
                    "basic.recover with requeue=false is not supported",
                ),
                QueueError::CorruptAckState { .. } => {
                    E::connection(INTERNAL_ERROR, error.to_string())
                }
            },
            CoreError::ShuttingDown => E::connection(CONNECTION_FORCED, "broker shutting down"),
            // Everything else by its neutral kind, with the core's own words as the detail.
            other => {
                let (code, connection) = match other.kind() {
                    ErrorKind::NotFound => (NOT_FOUND, false),
                    ErrorKind::Locked => (RESOURCE_LOCKED, false),
                    ErrorKind::Forbidden => (ACCESS_REFUSED, false),
                    ErrorKind::AlreadyExists
                    | ErrorKind::Invalid
                    | ErrorKind::Precondition
                    | ErrorKind::OutOfRange
                    | ErrorKind::TooLarge
                    | ErrorKind::Conflict => (PRECONDITION_FAILED, false),
                    ErrorKind::Unsupported => (NOT_IMPLEMENTED, true),
                    ErrorKind::Corrupt | ErrorKind::Unavailable | ErrorKind::Internal => {
                        (INTERNAL_ERROR, true)
                    }
                };
                if connection {
                    E::connection(code, other)
                } else {
                    E::channel(code, other)
                }
            }
        }
    }

    pub fn from_frame(error: &FrameError) -> Self {
        match error {
            FrameError::TooLarge { size, frame_max } => AmqpError::connection(
                FRAME_ERROR,
                format!("frame size {size} larger than negotiated maximum {frame_max}"),
            ),
            FrameError::BadFrameEnd(octet) => AmqpError::connection(
                FRAME_ERROR,
                format!("frame end octet 0x{octet:02x}, expected 0xce"),
            ),
            FrameError::UnknownType(kind) => {
                AmqpError::connection(FRAME_ERROR, format!("unknown frame type {kind}"))
            }
            FrameError::Syntax { channel, what } => AmqpError::connection(
                SYNTAX_ERROR,
                format!("{what} on channel {channel} does not decode"),
            ),
            FrameError::Io(e) => AmqpError::connection(INTERNAL_ERROR, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_errors_close_channels_and_the_rest_connections() {
        let missing = CoreError::Routing(RoutingError::QueueNotFound("q".into()));
        let e = AmqpError::from_core(&missing, "/");
        assert_eq!((e.code, e.connection), (404, false));
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        let tag = CoreError::Queue(QueueError::UnknownDeliveryTag(9));
        assert_eq!(AmqpError::from_core(&tag, "/").code, 406);
        let locked = CoreError::Locked("x".into());
        assert_eq!(AmqpError::from_core(&locked, "/").code, 405);
        let kind = CoreError::Routing(RoutingError::UnknownExchangeKind("x-foo".into()));
        let e = AmqpError::from_core(&kind, "/");
        assert_eq!((e.code, e.connection), (503, true));
        let reuse = CoreError::Queue(QueueError::ConsumerTagInUse("t".into()));
        assert_eq!(AmqpError::from_core(&reuse, "/").code, 530);
        let refused = CoreError::Forbidden("exclusive consumer".into());
        let e = AmqpError::from_core(&refused, "/");
        assert_eq!(e.text, "ACCESS_REFUSED - exclusive consumer");
        let disk = CoreError::Disk(std::io::Error::other("eio"));
        assert_eq!(AmqpError::from_core(&disk, "/").code, 541);
        let inequivalent = CoreError::Routing(RoutingError::Inequivalent(
            porter_core::routing::Inequivalent {
                kind: porter_core::routing::DeclaredKind::Queue,
                name: "q".into(),
                key: "x-message-ttl".into(),
                received: "'6000'".into(),
                current: "'5000'".into(),
            },
        ));
        let e = AmqpError::from_core(&inequivalent, "v");
        assert_eq!((e.code, e.connection), (406, false));
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost 'v': \
             received '6000' but current is '5000'"
        );
        let frame = AmqpError::from_frame(&FrameError::BadFrameEnd(0));
        assert_eq!((frame.code, frame.connection), (501, true));
    }
}
