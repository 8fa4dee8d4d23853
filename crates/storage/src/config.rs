//! Per-log configuration. Mirrors Kafka's topic configs so the core can map them one to one.

use serde::{Deserialize, Serialize};

use crate::limits;

/// When data reaches the disk, and so what the high watermark means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// Group commit: the high watermark is the fdatasync'ed end, readers never see data a power
    /// loss could take back. The core commits once its writer thread's fdatasync covered the data.
    #[default]
    Group,
    /// The high watermark follows appends; the caller calls `Log::flush` every
    /// `flush_interval_ms`.
    Interval,
    /// Never fdatasync explicitly; the OS writes back when it likes.
    Never,
}

/// What happens to old data (Kafka's `cleanup.policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CleanupPolicy {
    /// Whole old segments are deleted by time/size retention.
    #[default]
    #[serde(rename = "delete")]
    Delete,
    /// Old segments are compacted (`Log::compact`): the last record per key survives.
    /// Time/size retention does not apply.
    #[serde(rename = "compact")]
    Compact,
    /// Both: compacted, and whole segments still deleted by retention.
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// True when time/size retention applies.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// True when `Log::compact` does anything.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// Which timestamp records carry (Kafka's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampType {
    /// The producer's timestamps are stored as sent.
    #[default]
    CreateTime,
    /// `append` stamps each batch with the broker's clock (attribute bit 3 and `maxTimestamp`).
    LogAppendTime,
}

/// The codec a log stores its batches in (Kafka's `compression.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionType {
    /// Batches are stored as the producer sent them.
    #[default]
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    /// The codec number of a record batch's attributes; None for `Producer` (keep whatever came).
    pub fn codec(self) -> Option<u8> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(0),
            CompressionType::Gzip => Some(1),
            CompressionType::Snappy => Some(2),
            CompressionType::Lz4 => Some(3),
            CompressionType::Zstd => Some(4),
        }
    }
}

/// Configuration of one `Log`. Can be changed at run time with `Log::set_config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// Roll the active segment when the next batch would make it larger than this.
    /// Clamped to `limits::SEGMENT_BYTES_MAX` because index positions are u32.
    pub segment_bytes: u64,
    /// Roll a non-empty active segment whose first append is older than this.
    pub segment_ms: u64,
    /// Delete non-active segments whose newest record is older than this; `None` keeps forever.
    pub retention_ms: Option<u64>,
    /// Delete the oldest non-active segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// Larger batches are rejected with `StorageError::BatchTooLarge`.
    pub max_batch_bytes: u32,
    /// Bytes of log data between two sparse index entries.
    pub index_interval_bytes: u32,
    pub flush: FlushMode,
    /// Period of the caller's flush timer under `FlushMode::Interval`.
    pub flush_interval_ms: u64,
    pub cleanup_policy: CleanupPolicy,
    /// Records younger than this (by timestamp) are never compacted away.
    pub min_compaction_lag_ms: u64,
    /// How long a tombstone (null value) survives compaction: counted from its timestamp.
    pub delete_retention_ms: u64,
    pub timestamp_type: TimestampType,
    /// Compact only once this share of the log (bytes) is dirty: written since the last pass.
    pub min_cleanable_dirty_ratio: f64,
    /// Compact whatever the dirty ratio once a dirty record is this old.
    pub max_compaction_lag_ms: u64,
    /// Roll a segment up to this much before `segment_ms` (a per-segment amount below it), so
    /// logs created together don't all roll at once.
    pub segment_jitter_ms: u64,
    /// Batches are stored in this codec (recompressed on append when it differs).
    pub compression: CompressionType,
    /// A CreateTime record may be at most this much older than the broker's clock.
    pub timestamp_before_max_ms: u64,
    /// A CreateTime record may be at most this much ahead of the broker's clock.
    pub timestamp_after_max_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: limits::SEGMENT_BYTES_DEFAULT,
            segment_ms: limits::SEGMENT_MS_DEFAULT,
            retention_ms: Some(limits::RETENTION_MS_DEFAULT),
            retention_bytes: None,
            max_batch_bytes: limits::BATCH_BYTES_MAX_DEFAULT,
            index_interval_bytes: limits::INDEX_INTERVAL_BYTES_DEFAULT,
            flush: FlushMode::Group,
            flush_interval_ms: limits::FLUSH_INTERVAL_MS_DEFAULT,
            cleanup_policy: CleanupPolicy::Delete,
            min_compaction_lag_ms: 0,
            delete_retention_ms: limits::DELETE_RETENTION_MS_DEFAULT,
            timestamp_type: TimestampType::CreateTime,
            min_cleanable_dirty_ratio: limits::MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            max_compaction_lag_ms: i64::MAX as u64,
            segment_jitter_ms: 0,
            compression: CompressionType::Producer,
            timestamp_before_max_ms: i64::MAX as u64,
            timestamp_after_max_ms: i64::MAX as u64,
        }
    }
}

impl LogConfig {
    /// The roll size actually used: never above what a u32 position can address.
    pub fn segment_bytes_effective(&self) -> u64 {
        self.segment_bytes.clamp(1, limits::SEGMENT_BYTES_MAX)
    }

    /// The age at which the segment starting at `base_offset` rolls: `segment_ms` less a
    /// jitter below `segment_jitter_ms` that depends only on the segment (as Kafka picks one per
    /// segment), so the logs of one topic don't roll in the same instant.
    pub fn segment_ms_for(&self, base_offset: i64) -> u64 {
        if self.segment_jitter_ms == 0 {
            return self.segment_ms;
        }
        // SplitMix64 of the base offset: cheap, stable, well spread.
        let mut z = (base_offset as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let jitter = z % self.segment_jitter_ms.min(self.segment_ms);
        self.segment_ms - jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_and_defaults() {
        let config: LogConfig = serde_json::from_str(r#"{"flush":"interval"}"#).unwrap();
        assert_eq!(config.flush, FlushMode::Interval);
        assert_eq!(config.segment_bytes, limits::SEGMENT_BYTES_DEFAULT);
        assert_eq!(
            serde_json::to_string(&FlushMode::Never).unwrap(),
            r#""never""#
        );
        assert_eq!(FlushMode::default(), FlushMode::Group);
        let config: LogConfig = serde_json::from_str(
            r#"{"cleanup_policy":"compact,delete","timestamp_type":"LogAppendTime"}"#,
        )
        .unwrap();
        assert_eq!(config.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(config.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(config.delete_retention_ms, 86_400_000);
        assert_eq!(config.min_compaction_lag_ms, 0);
        assert_eq!(
            serde_json::to_string(&CleanupPolicy::Compact).unwrap(),
            r#""compact""#
        );
        assert_eq!(
            serde_json::to_string(&TimestampType::CreateTime).unwrap(),
            r#""CreateTime""#
        );
        let default = LogConfig::default();
        assert_eq!(default.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(default.timestamp_type, TimestampType::CreateTime);
    }
}
