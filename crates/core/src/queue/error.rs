//! [`QueueError`]: why a queue delivery-state operation was refused. Each variant names the AMQP
//! 0-9-1 reply code the AMQP gateway will send; the gateway's `error.rs` holds the mapping, this
//! doc is the contract.

use porter_storage::Offset;

/// An operating error (a client or a persisted file asked for something impossible), never a
/// broken invariant. Every operation that returns one has left the `QueueState` unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// 406 PRECONDITION_FAILED, channel error "unknown delivery tag": ack/nack/reject of a tag that
    /// is not outstanding (never issued, already settled, or issued to a `no_ack` consumer).
    #[error("unknown delivery tag {0}")]
    UnknownDeliveryTag(u64),
    /// 530 NOT_ALLOWED, connection error: `basic.consume` with a consumer tag already in use.
    #[error("consumer tag {0:?} already in use")]
    ConsumerTagInUse(String),
    /// Not an error in AMQP: `basic.cancel` of an unknown tag replies cancel-ok anyway; the
    /// gateway ignores this variant there.
    #[error("no consumer {0:?}")]
    UnknownConsumer(String),
    /// 406 PRECONDITION_FAILED: a named limit in [`limits`](super::limits) would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// 540 NOT_IMPLEMENTED, as RabbitMQ: `basic.recover` with `requeue = false`.
    #[error("basic.recover with requeue=false is not implemented")]
    RecoverWithoutRequeue,
    /// Persisted ack state that no run of `QueueState` could have written; the broker refuses to
    /// open the queue rather than guess.
    #[error("corrupt persisted ack state: {reason} (offset {offset})")]
    CorruptAckState {
        offset: Offset,
        reason: &'static str,
    },
}
