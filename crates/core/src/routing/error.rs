//! [`RoutingError`]: why a routing-model operation was refused. Each variant says which neutral
//! [`ErrorKind`] it is; each gateway's `error.rs` maps variants to its protocol's codes (the AMQP
//! gateway, for one, keeps RabbitMQ's codes and texts there).

use super::equivalence::Inequivalent;
use crate::error::ErrorKind;

/// An operating error (a client asked for something the model refuses), never a broken invariant.
/// Every operation that returns one has left the [`RoutingTable`](super::RoutingTable) unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// Not found: the virtual host does not exist.
    #[error("no virtual host {0:?}")]
    VhostNotFound(String),
    /// Not found: publish to, bind to/from, or passively declare an exchange that does not exist.
    #[error("no exchange {0:?}")]
    ExchangeNotFound(String),
    /// Not found: bind or unbind a queue that does not exist.
    #[error("no queue {0:?}")]
    QueueNotFound(String),
    /// Forbidden: declaring a new `amq.*` exchange, deleting a predeclared one, or any
    /// declare/delete/bind on the default exchange `""`.
    #[error("access refused on exchange {name:?}: {reason}")]
    AccessRefused { name: String, reason: &'static str },
    /// Forbidden: publishing to an exchange declared `internal`; internal exchanges
    /// only receive messages through exchange-to-exchange bindings.
    #[error("cannot publish to internal exchange {0:?}")]
    InternalExchange(String),
    /// Precondition: deleting an
    /// exchange `if_unused` that still has bindings, or invalid arguments (`x-match`,
    /// `alternate-exchange` that is not a string).
    #[error("precondition failed on {name:?}: {reason}")]
    Precondition { name: String, reason: String },
    /// Precondition: a re-declare of an exchange (or queue) with different properties or
    /// compared arguments; RabbitMQ's "inequivalent arg" (406).
    #[error(transparent)]
    Inequivalent(#[from] Inequivalent),
    /// Precondition: a named limit in
    /// [`limits`](super::limits) would be exceeded.
    #[error("limit exceeded on {name:?}: {reason}")]
    LimitExceeded { name: String, reason: String },
    /// Invalid: a name too long or otherwise unusable. Not reachable from AMQP 0-9-1, where a
    /// name is a shortstr (≤ 255 bytes) the codec has already bounded.
    #[error("invalid name ({len_bytes} bytes): {reason}")]
    InvalidName {
        len_bytes: usize,
        reason: &'static str,
    },
    /// Unsupported: declaring an exchange of a type this broker does not know.
    #[error("unknown exchange type {0:?}")]
    UnknownExchangeKind(String),
}

impl RoutingError {
    /// The neutral class of this refusal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RoutingError::VhostNotFound(_)
            | RoutingError::ExchangeNotFound(_)
            | RoutingError::QueueNotFound(_) => ErrorKind::NotFound,
            RoutingError::AccessRefused { .. } | RoutingError::InternalExchange(_) => {
                ErrorKind::Forbidden
            }
            RoutingError::Precondition { .. }
            | RoutingError::Inequivalent(_)
            | RoutingError::LimitExceeded { .. } => ErrorKind::Precondition,
            RoutingError::InvalidName { .. } => ErrorKind::Invalid,
            RoutingError::UnknownExchangeKind(_) => ErrorKind::Unsupported,
        }
    }

    pub(crate) fn precondition(name: &str, reason: impl Into<String>) -> Self {
        RoutingError::Precondition {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}
