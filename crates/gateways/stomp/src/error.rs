//! [`StompError`]: everything that ends in an ERROR frame, and the one place core errors are
//! mapped to what a STOMP client sees (RabbitMQ's `message` words: `not_found`,
//! `access_refused`, ...). STOMP has no error codes; every error closes the connection.

use porter_core::error::ErrorKind;
use porter_core::CoreError;

use crate::frame::FrameError;

#[derive(Debug, thiserror::Error)]
pub enum StompError {
    /// Bytes that are not a frame within the limits.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame that breaks the protocol (a missing header, an unknown subscription).
    #[error("{message}: {detail}")]
    Protocol {
        message: &'static str,
        detail: String,
    },
    /// A named limit of this gateway.
    #[error("{0}")]
    Limit(String),
    /// The broker refused the request.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl StompError {
    pub fn protocol(message: &'static str, detail: impl Into<String>) -> Self {
        StompError::Protocol {
            message,
            detail: detail.into(),
        }
    }

    pub fn missing(header: &'static str, command: &str) -> Self {
        StompError::protocol(
            "missing header",
            format!("the {command} frame needs a '{header}' header"),
        )
    }

    /// The ERROR frame's `message` header: short, as RabbitMQ's.
    pub fn message(&self) -> &'static str {
        match self {
            StompError::Frame(FrameError::UnknownCommand(_)) => "unknown command",
            StompError::Frame(FrameError::FrameTooLarge(_)) => "frame too large",
            StompError::Frame(FrameError::TooManyHeaders(_)) => "too many headers",
            StompError::Frame(FrameError::LineTooLong(_)) => "header too long",
            StompError::Frame(_) => "malformed frame",
            StompError::Protocol { message, .. } => message,
            StompError::Limit(_) => "limit reached",
            StompError::Core(e) => match e.kind() {
                ErrorKind::NotFound => "not_found",
                ErrorKind::Locked => "resource_locked",
                ErrorKind::Forbidden => "access_refused",
                ErrorKind::Invalid | ErrorKind::Precondition => "precondition_failed",
                ErrorKind::TooLarge => "frame too large",
                ErrorKind::Unavailable => "unavailable",
                _ => "internal_error",
            },
        }
    }

    /// Whether the client caused it (logged at info) or the broker failed (warn).
    pub fn is_client_error(&self) -> bool {
        match self {
            StompError::Core(e) => !matches!(
                e.kind(),
                ErrorKind::Internal | ErrorKind::Unavailable | ErrorKind::Corrupt
            ),
            _ => true,
        }
    }
}

pub type Result<T, E = StompError> = std::result::Result<T, E>;
