//! The one mapping from core errors to RocketMQ status codes (`apache.rocketmq.v2.Code`), and
//! the status values every RPC answers with.

use porter_core::error::ErrorKind;
use porter_core::pop::PopError;
use porter_core::CoreError;

use crate::proto::{Code, Status};

pub fn ok() -> Status {
    status(Code::Ok, "OK")
}

pub fn status(code: Code, message: impl Into<String>) -> Status {
    Status {
        code: code as i32,
        message: message.into(),
    }
}

/// A gateway-level refusal with its code, before any core call.
#[derive(Debug)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> Status {
        status(self.code, self.message.clone())
    }
}

impl From<CoreError> for Refusal {
    fn from(error: CoreError) -> Self {
        Refusal::new(code_of(&error), error.to_string())
    }
}

/// The status code RocketMQ clients expect for a core error: specific codes where RocketMQ has
/// one, else by the error's neutral kind.
pub fn code_of(error: &CoreError) -> Code {
    match error {
        CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. } => Code::TopicNotFound,
        CoreError::InvalidTopicName { .. } => Code::IllegalTopic,
        CoreError::Pop(PopError::StaleReceipt(_) | PopError::InvalidReceipt(_)) => {
            Code::InvalidReceiptHandle
        }
        CoreError::TooLarge { .. } => Code::MessageBodyTooLarge,
        CoreError::LimitExceeded(_) => Code::TooManyRequests,
        _ => match error.kind() {
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::Invalid | ErrorKind::OutOfRange => Code::BadRequest,
            ErrorKind::Forbidden => Code::Forbidden,
            ErrorKind::Precondition | ErrorKind::Conflict | ErrorKind::Locked => {
                Code::PreconditionFailed
            }
            ErrorKind::TooLarge => Code::PayloadTooLarge,
            ErrorKind::Unsupported => Code::Unsupported,
            ErrorKind::AlreadyExists => Code::PreconditionFailed,
            ErrorKind::Corrupt | ErrorKind::Unavailable | ErrorKind::Internal => {
                Code::InternalServerError
            }
        },
    }
}
