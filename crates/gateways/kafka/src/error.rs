//! The one place `CoreError` becomes a Kafka error code.

use kafka_protocol::error::ResponseError;
use porter_core::error::ErrorKind;
use porter_core::producer_state::SequenceError;
use porter_core::CoreError;

pub fn error_code(error: &CoreError) -> ResponseError {
    match error {
        CoreError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        CoreError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        CoreError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        CoreError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        CoreError::LimitExceeded(_) => ResponseError::PolicyViolation,
        CoreError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        CoreError::Sequence(SequenceError::FencedEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        // Retriable: the client refreshes metadata and tries again (or another broker).
        CoreError::Closed | CoreError::ShuttingDown => ResponseError::NotLeaderOrFollower,
        CoreError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        other => match other.kind() {
            ErrorKind::NotFound => ResponseError::UnknownTopicOrPartition,
            ErrorKind::OutOfRange => ResponseError::OffsetOutOfRange,
            ErrorKind::TooLarge => ResponseError::MessageTooLarge,
            ErrorKind::Corrupt => ResponseError::CorruptMessage,
            ErrorKind::Unavailable | ErrorKind::Internal => ResponseError::KafkaStorageError,
            ErrorKind::Unsupported => ResponseError::UnsupportedVersion,
            // Kafka requests never make routing or queue changes; if one surfaces, it is a
            // request the broker will not serve.
            ErrorKind::AlreadyExists
            | ErrorKind::Invalid
            | ErrorKind::Precondition
            | ErrorKind::Locked
            | ErrorKind::Forbidden
            | ErrorKind::Conflict => ResponseError::InvalidRequest,
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
        G::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        G::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        G::InvalidGroupId => ResponseError::InvalidGroupId,
        G::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        G::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        G::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        G::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_kinds_map_to_kafka_codes() {
        let cases = [
            (
                CoreError::UnknownTopic("t".into()),
                ResponseError::UnknownTopicOrPartition,
            ),
            (
                CoreError::OffsetOutOfRange {
                    requested: 5,
                    log_start: 0,
                    high_watermark: 1,
                },
                ResponseError::OffsetOutOfRange,
            ),
            (
                CoreError::TooLarge { size: 2, max: 1 },
                ResponseError::MessageTooLarge,
            ),
            (
                CoreError::Corrupt("crc".into()),
                ResponseError::CorruptMessage,
            ),
            (CoreError::Closed, ResponseError::NotLeaderOrFollower),
            (
                CoreError::Disk(std::io::Error::other("eio")),
                ResponseError::KafkaStorageError,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error_code(&error), code, "{error}");
        }
    }
}
