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
