//! The one error type of the storage layer. Sources are kept so the core can log the cause.

use crate::Offset;

#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Bad length, magic, CRC or record count, from a client or from disk.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    BatchTooLarge { size: usize, max: u32 },
    #[error("offset {requested} out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        high_watermark: Offset,
    },
    /// The log was closed or deleted; callers should drop their handle.
    #[error("log is closed")]
    Closed,
    /// A file in the log directory that storage cannot make sense of (e.g. a bad checkpoint).
    #[error("corrupt log file {path}: {reason}")]
    CorruptFile {
        path: std::path::PathBuf,
        reason: String,
    },
}
