//! The core's error type, in the core's own words. Each gateway maps it to its protocol's codes
//! and texts in exactly one place (`error.rs` of each gateway); nothing here knows a wire format,
//! and no storage type leaks through: storage failures are translated at the boundary
//! (`From<StorageError>`) into the neutral variants below.
//!
//! Every variant belongs to one [`ErrorKind`], the coarse class a gateway needs to pick a code
//! ("not found", "precondition", "locked", ...). A gateway that only needs the class matches on
//! [`CoreError::kind`]; one that has finer codes (Kafka's `TOPIC_ALREADY_EXISTS`, AMQP's 530 for
//! a reused consumer tag) matches on the variant, and still falls back to the kind.

use porter_storage::StorageError;

use crate::Offset;

/// The neutral class of a [`CoreError`]: what a client did wrong, or what the broker cannot do
/// now. Protocols agree on these classes even where their codes differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named thing (topic, partition, queue, exchange, virtual host, consumer, delivery) does
    /// not exist.
    NotFound,
    /// Creating something that already exists, where that is an error.
    AlreadyExists,
    /// A malformed name, configuration value or argument: the request can never succeed as sent.
    Invalid,
    /// The request is well-formed but the current state refuses it (an inequivalent re-declare,
    /// `if-unused` not met, a named limit reached).
    Precondition,
    /// Another owner holds the resource exclusively (another connection's exclusive queue).
    Locked,
    /// Not permitted (an internal exchange, a reserved name, an exclusive consumer).
    Forbidden,
    /// An offset outside what the log holds.
    OutOfRange,
    /// A message or batch larger than the configured maximum.
    TooLarge,
    /// Data that fails its checks (CRC, framing, a record count), from a client or from disk.
    Corrupt,
    /// A sequence or epoch conflict (idempotent producers): a retry came out of order or from a
    /// fenced producer.
    Conflict,
    /// Not now: the broker is stopping, the resource was closed under the caller, or the disk
    /// failed. The same request may succeed later or elsewhere.
    Unavailable,
    /// The broker's own state is inconsistent (a metadata journal or ack file it cannot read).
    Internal,
    /// A feature the broker does not have.
    Unsupported,
}

/// What is wrong with a refused record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    /// A compacted log keeps the latest record per key, so a keyless one has nothing to be kept
    /// by.
    #[error("a compacted topic cannot accept a record without a key")]
    NoKey,
    /// A CreateTime timestamp further from the broker's clock than the topic allows
    /// (`message.timestamp.before.max.ms` / `after.max.ms`).
    #[error("the record's timestamp is out of the topic's allowed range")]
    TimestampOutOfRange,
}

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
    /// A named object that is not there: a user, a user's permission in a vhost.
    #[error("{0}")]
    NotFound(String),
    /// A broker-wide named limit (topics, partitions, queues) would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The state refuses the request: an inequivalent re-declare, a bad argument, `if-unused` /
    /// `if-empty` not met, an invalid property.
    #[error("{0}")]
    Precondition(String),
    /// A request the protocol allowed but the core cannot take: a bad argument, a reserved
    /// name, a receipt handle that names no delivery.
    #[error("{0}")]
    InvalidRequest(String),
    /// Another owner's exclusive resource.
    #[error("{0}")]
    Locked(String),
    /// Not permitted: e.g. consuming a queue an exclusive consumer holds.
    #[error("{0}")]
    Forbidden(String),
    #[error("offset {requested} out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        high_watermark: Offset,
    },
    #[error("{size} bytes exceed the maximum of {max} bytes")]
    TooLarge { size: usize, max: u64 },
    /// A record batch or stored record that fails its checks.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Records a topic's configuration refuses (their positions in the batch); the whole batch
    /// is refused.
    #[error(
        "topic {topic:?} partition {partition} refuses records {records:?} of the batch: {fault}"
    )]
    InvalidRecords {
        topic: String,
        partition: i32,
        records: Vec<i32>,
        fault: RecordFault,
    },
    /// A write that must reach `required` in-sync replicas, with fewer in sync.
    #[error(
        "topic {topic:?} needs {required} in-sync replicas (min.insync.replicas) but has {in_sync}"
    )]
    NotEnoughReplicas {
        topic: String,
        required: u32,
        in_sync: u32,
    },
    /// A broker config that can't change while the broker runs (or that Porter doesn't know).
    #[error("cannot update this config dynamically: {0} (set it in the config file, environment or flags and restart)")]
    NotDynamic(String),
    /// The log or queue was closed (deleted, or the broker is stopping) under the caller.
    #[error("closed")]
    Closed,
    #[error("broker is shutting down")]
    ShuttingDown,
    /// A file operation on a named path failed.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The data directory can't be used (a file is in the way, no permission, another porter
    /// holds it). `reason` is a sentence fragment: the OS error is already in it, once.
    #[error("cannot use data directory {}: {reason}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        reason: String,
    },
    /// Disk I/O inside a log failed.
    #[error("disk I/O failed: {0}")]
    Disk(#[source] std::io::Error),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error(transparent)]
    Routing(#[from] crate::routing::RoutingError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error(transparent)]
    Sequence(#[from] crate::producer_state::SequenceError),
    #[error(transparent)]
    Pop(#[from] crate::pop::PopError),
}

impl CoreError {
    pub(crate) fn metadata(e: impl std::fmt::Display) -> Self {
        CoreError::Metadata(e.to_string())
    }

    /// The neutral class of this error.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            CoreError::UnknownTopic(_)
            | CoreError::UnknownPartition { .. }
            | CoreError::NotFound(_) => K::NotFound,
            CoreError::TopicExists(_) => K::AlreadyExists,
            CoreError::InvalidTopicName { .. }
            | CoreError::InvalidPartitions(_)
            | CoreError::InvalidConfig { .. }
            | CoreError::InvalidRecords { .. }
            | CoreError::InvalidRequest(_) => K::Invalid,
            CoreError::LimitExceeded(_) | CoreError::Precondition(_) | CoreError::NotDynamic(_) => {
                K::Precondition
            }
            CoreError::Locked(_) => K::Locked,
            CoreError::Forbidden(_) => K::Forbidden,
            CoreError::OffsetOutOfRange { .. } => K::OutOfRange,
            CoreError::TooLarge { .. } => K::TooLarge,
            CoreError::Corrupt(_) => K::Corrupt,
            CoreError::Closed | CoreError::ShuttingDown | CoreError::NotEnoughReplicas { .. } => {
                K::Unavailable
            }
            CoreError::Io { .. } | CoreError::Disk(_) | CoreError::DataDir { .. } => K::Unavailable,
            CoreError::Metadata(_) => K::Internal,
            CoreError::Routing(e) => e.kind(),
            CoreError::Queue(e) => e.kind(),
            CoreError::Sequence(_) => K::Conflict,
            CoreError::Pop(_) => K::Invalid,
        }
    }
}

/// The storage boundary: storage's error becomes the core's, so no caller of the core ever sees
/// a storage type.
impl From<StorageError> for CoreError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Io(source) => CoreError::Disk(source),
            StorageError::CorruptBatch(reason) => CoreError::Corrupt(reason),
            StorageError::BatchTooLarge { size, max } => CoreError::TooLarge {
                size,
                max: u64::from(max),
            },
            StorageError::OffsetOutOfRange {
                requested,
                log_start,
                high_watermark,
            } => CoreError::OffsetOutOfRange {
                requested,
                log_start,
                high_watermark,
            },
            StorageError::Closed => CoreError::Closed,
            StorageError::CorruptFile { path, reason } => {
                CoreError::Corrupt(format!("{}: {reason}", path.display()))
            }
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_become_neutral_kinds() {
        let cases = [
            (
                StorageError::Io(std::io::Error::other("eio")),
                ErrorKind::Unavailable,
            ),
            (StorageError::CorruptBatch("crc".into()), ErrorKind::Corrupt),
            (
                StorageError::BatchTooLarge { size: 10, max: 5 },
                ErrorKind::TooLarge,
            ),
            (
                StorageError::OffsetOutOfRange {
                    requested: 9,
                    log_start: 0,
                    high_watermark: 3,
                },
                ErrorKind::OutOfRange,
            ),
            (StorageError::Closed, ErrorKind::Unavailable),
        ];
        for (storage, kind) in cases {
            assert_eq!(CoreError::from(storage).kind(), kind);
        }
    }

    #[test]
    fn texts_carry_no_protocol_words() {
        let e = CoreError::Precondition("inequivalent arg 'durable'".into());
        assert_eq!(e.to_string(), "inequivalent arg 'durable'");
        assert_eq!(e.kind(), ErrorKind::Precondition);
        assert_eq!(CoreError::Locked("q".into()).kind(), ErrorKind::Locked);
        assert_eq!(
            CoreError::Forbidden("q".into()).kind(),
            ErrorKind::Forbidden
        );
    }
}
