//! [`QueueError`]: why a queue delivery-state operation was refused. Each variant says which
//! neutral [`ErrorKind`] it is; each gateway's `error.rs` maps variants to its protocol's codes.

use crate::error::ErrorKind;
use crate::Offset;

/// An operating error (a client or a persisted file asked for something impossible), never a
/// broken invariant. Every operation that returns one has left the `QueueState` unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Precondition: ack/nack/reject of a delivery tag that is not outstanding (never issued, already settled, or issued to a `no_ack` consumer).
    #[error("unknown delivery tag {0}")]
    UnknownDeliveryTag(u64),
    /// Already exists: a consumer with a tag already in use on this queue.
    #[error("consumer tag {0:?} already in use")]
    ConsumerTagInUse(String),
    /// Not found: cancelling a consumer tag the queue does not know (AMQP, for one, answers
    /// cancel-ok anyway).
    #[error("no consumer {0:?}")]
    UnknownConsumer(String),
    /// Precondition: a named limit in [`limits`](super::limits) would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// Unsupported: recovering unacked messages without requeueing them (RabbitMQ refuses it
    /// too).
    #[error("basic.recover with requeue=false is not implemented")]
    RecoverWithoutRequeue,
    /// Internal: persisted ack state that no run of `QueueState` could have written; the broker refuses to
    /// open the queue rather than guess.
    #[error("corrupt persisted ack state: {reason} (offset {offset})")]
    CorruptAckState {
        offset: Offset,
        reason: &'static str,
    },
}

impl QueueError {
    /// The neutral class of this refusal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueueError::UnknownDeliveryTag(_) | QueueError::LimitExceeded(_) => {
                ErrorKind::Precondition
            }
            QueueError::ConsumerTagInUse(_) => ErrorKind::AlreadyExists,
            QueueError::UnknownConsumer(_) => ErrorKind::NotFound,
            QueueError::RecoverWithoutRequeue => ErrorKind::Unsupported,
            QueueError::CorruptAckState { .. } => ErrorKind::Internal,
        }
    }
}
