//! porter-storage: segmented, CRC-checked logs on disk, one `Log` per partition. Knows nothing
//! of network protocols; its record format is Kafka's RecordBatch v2.
//!
//! - `log`: a partition's `Log`, an ordered run of `Segment`s; append, sync, commit_to, read
//! - `segment`, `offset_index`, `time_index` (on `index_file`): one segment and its sparse indexes;
//!   `recent_batches`: where its last batches lie, for reads at the tail without disk I/O
//! - `record_batch`: the 61-byte batch header: parse, validate (CRC-32C), patch the base offset
//! - `records`: whole records in and out of batches, for writers that don't speak Kafka
//! - `recovery`: brings a `Log` back in named passes, cutting a torn tail after a crash
//! - `retention`: which old segments to delete (cleanup policy `delete`)
//! - `compaction`: the log cleaner (cleanup policy `compact`): last record per key, crash-safe
//!   segment swap
//! - `checkpoint`: the persisted log start offset
//! - `background`: the thread that runs a roll's fdatasyncs off the append path, and
//!   `spare`: the next segment's files, made there so a roll only renames them
//! - `file_cache`: an LRU of open file handles shared by all logs
//! - `config`, `error`, `limits`: knobs, the error type, named limits
//!
//! All `Log` methods but `read_region_cached` block on file I/O: async callers run them on blocking threads (porter-core
//! runs every write on its own writer threads, see `porter_core::commit`).

mod background;
mod checkpoint;
mod compaction;
pub mod config;
pub mod error;
pub mod file_cache;
mod index_file;
pub mod limits;
mod log;
mod log_state;
mod offset_index;
mod recent_batches;
pub mod record_batch;
pub mod records;
mod recovery;
mod retention;
mod segment;
mod spare;
mod time_index;

pub use compaction::{CleanerCrashPoint, CleanerLimits, CompactionStats};
pub use config::{CleanupPolicy, CompressionType, FlushMode, LogConfig, TimestampType};
pub use error::StorageError;
pub use file_cache::FileCache;
pub use log::{AppendInfo, Log, ReadRegion, ReadSlice};
pub use record_batch::BatchHeader;
pub use segment::FileRegion;

/// Position of a record in a partition's log.
pub type Offset = i64;
