//! The one place `CoreError` becomes a Kafka error code.

use kafka_protocol::error::ResponseError;
use porter_core::producer_state::SequenceError;
use porter_core::CoreError;
use porter_storage::StorageError;

pub fn error_code(error: &CoreError) -> ResponseError {
    match error {
        CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        CoreError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        CoreError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        CoreError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        CoreError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        CoreError::LimitExceeded(_) => ResponseError::PolicyViolation,
        CoreError::ShuttingDown => ResponseError::NotLeaderOrFollower,
        CoreError::Metadata(_) | CoreError::Io { .. } => ResponseError::KafkaStorageError,
        // Kafka requests never make routing changes; if one surfaces, it is a request error.
        CoreError::Routing(_)
        | CoreError::Queue(_)
        | CoreError::PreconditionFailed(_)
        | CoreError::ResourceLocked(_)
        | CoreError::AccessRefused(_) => ResponseError::InvalidRequest,
        CoreError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        CoreError::Sequence(SequenceError::FencedEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        CoreError::Storage(storage) => match storage {
            StorageError::CorruptBatch(_) => ResponseError::CorruptMessage,
            StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
            StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            StorageError::Closed => ResponseError::NotLeaderOrFollower,
            _ => ResponseError::KafkaStorageError,
        },
    }
}

/// The code of a result: 0 for success.
pub fn code_of<T>(result: &Result<T, CoreError>) -> i16 {
    match result {
        Ok(_) => 0,
        Err(e) => error_code(e).code(),
    }
}

/// The one place a group-protocol error becomes a Kafka error code.
pub fn group_code(error: porter_core::group::GroupError) -> ResponseError {
    use porter_core::group::GroupError as G;
    match error {
        G::UnknownMemberId => ResponseError::UnknownMemberId,
        G::IllegalGeneration => ResponseError::IllegalGeneration,
        G::RebalanceInProgress => ResponseError::RebalanceInProgress,
        G::MemberIdRequired => ResponseError::MemberIdRequired,
        G::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        G::FencedInstanceId => ResponseError::FencedInstanceId,
        G::GroupIdNotFound => ResponseError::GroupIdNotFound,
        G::NonEmptyGroup => ResponseError::NonEmptyGroup,
        G::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        G::InvalidGroupId => ResponseError::InvalidGroupId,
        G::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        G::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        G::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        G::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
    }
}
