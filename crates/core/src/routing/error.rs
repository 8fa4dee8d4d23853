//! [`RoutingError`]: why a routing-model operation was refused. Each variant names the AMQP 0-9-1
//! reply code the AMQP gateway will send (all are channel errors except where noted); the gateway's
//! `error.rs` holds the actual mapping, this doc is the contract.

/// An operating error (a client asked for something the model refuses), never a broken invariant.
/// Every operation that returns one has left the [`RoutingTable`](super::RoutingTable) unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// 530 NOT_ALLOWED on connection.open: the virtual host does not exist.
    #[error("no virtual host {0:?}")]
    VhostNotFound(String),
    /// 404 NOT_FOUND: publish to, bind to/from, or passively declare an exchange that does not exist.
    #[error("no exchange {0:?}")]
    ExchangeNotFound(String),
    /// 404 NOT_FOUND: bind or unbind a queue that does not exist.
    #[error("no queue {0:?}")]
    QueueNotFound(String),
    /// 403 ACCESS_REFUSED: declaring a new `amq.*` exchange, deleting a predeclared one, or any
    /// declare/delete/bind on the default exchange `""`.
    #[error("access refused on exchange {name:?}: {reason}")]
    AccessRefused { name: String, reason: &'static str },
    /// 403 ACCESS_REFUSED: `basic.publish` to an exchange declared `internal`; internal exchanges
    /// only receive messages through exchange-to-exchange bindings.
    #[error("cannot publish to internal exchange {0:?}")]
    InternalExchange(String),
    /// 406 PRECONDITION_FAILED: re-declaring an exchange with different properties, deleting an
    /// exchange `if_unused` that still has bindings, or invalid arguments (`x-match`,
    /// `alternate-exchange` that is not a string).
    #[error("precondition failed on {name:?}: {reason}")]
    PreconditionFailed { name: String, reason: String },
    /// 406 PRECONDITION_FAILED (RabbitMQ also uses 406 for its per-vhost limits): a named limit in
    /// [`limits`](super::limits) would be exceeded.
    #[error("limit exceeded on {name:?}: {reason}")]
    LimitExceeded { name: String, reason: String },
    /// Not reachable from AMQP 0-9-1, where a name is a shortstr (≤ 255 bytes) the codec has
    /// already bounded; other gateways (HTTP, STOMP) send 406 PRECONDITION_FAILED or their
    /// equivalent of a bad request.
    #[error("invalid name ({len_bytes} bytes): {reason}")]
    InvalidName {
        len_bytes: usize,
        reason: &'static str,
    },
    /// 503 COMMAND_INVALID (a connection error, as RabbitMQ): `exchange.declare` with a type this
    /// broker does not know.
    #[error("unknown exchange type {0:?}")]
    UnknownExchangeKind(String),
}

impl RoutingError {
    pub(crate) fn precondition(name: &str, reason: impl Into<String>) -> Self {
        RoutingError::PreconditionFailed {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}
