//! The core's error type. Each gateway maps it to its protocol's codes in exactly one place.

use porter_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid partition count {0}")]
    InvalidPartitions(i64),
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// AMQP 406 PRECONDITION_FAILED (channel): an inequivalent re-declare, a bad argument,
    /// `if-unused`/`if-empty` not met, an invalid property.
    #[error("PRECONDITION_FAILED - {0}")]
    PreconditionFailed(String),
    /// AMQP 405 RESOURCE_LOCKED (channel): another connection's exclusive queue.
    #[error("RESOURCE_LOCKED - {0}")]
    ResourceLocked(String),
    /// AMQP 403 ACCESS_REFUSED (channel): e.g. consuming a queue an exclusive consumer holds.
    #[error("ACCESS_REFUSED - {0}")]
    AccessRefused(String),
    #[error("broker is shutting down")]
    ShuttingDown,
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("metadata: {0}")]
    Metadata(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Routing(#[from] crate::routing::RoutingError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error(transparent)]
    Sequence(#[from] crate::producer_state::SequenceError),
}

impl CoreError {
    pub(crate) fn metadata(e: impl std::fmt::Display) -> Self {
        CoreError::Metadata(e.to_string())
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
