//! Every topic config Kafka defines (3.7: 31 keys) plus Porter's own `flush`: its type, its
//! broker-wide synonym, what it does in Porter, how a value is checked and stored.
//!
//! Two kinds of key. A [`Held::Log`] key is a storage setting: its value lives in the log's
//! [`LogConfig`] and is rendered back from it, so what DescribeConfigs reports is what the log
//! runs with. A [`Held::Topic`] key is kept as the topic's own (canonical) string, with a built-in
//! default: replication settings that matter once the cluster lands, settings of features Porter
//! does not have, and `min.insync.replicas` and `message.timestamp.difference.max.ms`, which the
//! core applies itself. None is silently dropped: each says in `effect` what Porter does with it
//! (docs/kafka.md shows the same table).

use porter_storage::{CleanupPolicy, CompressionType, FlushMode, LogConfig, TimestampType};

use crate::config::ConfigKind;
use crate::error::{CoreError, Result};

/// Where a key's value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// In the log's storage settings.
    Log,
    /// In the topic's overrides, with this built-in default.
    Topic { default: &'static str },
}

/// One topic config.
#[derive(Clone, Copy, Debug)]
pub struct TopicConfigKey {
    pub name: &'static str,
    /// The broker-wide setting (Kafka's name) a topic override replaces; reported as a synonym.
    pub broker_name: &'static str,
    pub kind: ConfigKind,
    pub doc: &'static str,
    /// What Porter does with it, for docs and admins.
    pub effect: &'static str,
    pub held: Held,
}

const fn log(
    name: &'static str,
    broker_name: &'static str,
    kind: ConfigKind,
    doc: &'static str,
    effect: &'static str,
) -> TopicConfigKey {
    TopicConfigKey {
        name,
        broker_name,
        kind,
        doc,
        effect,
        held: Held::Log,
    }
}

const fn kept(
    name: &'static str,
    broker_name: &'static str,
    kind: ConfigKind,
    default: &'static str,
    doc: &'static str,
    effect: &'static str,
) -> TopicConfigKey {
    TopicConfigKey {
        name,
        broker_name,
        kind,
        doc,
        effect,
        held: Held::Topic { default },
    }
}

const LONG_MAX: &str = "9223372036854775807";
const HONOURED: &str = "honoured";
const ONE_BROKER: &str =
    "stored and reported; no effect on a single broker (replication arrives with the cluster)";

/// The topic configs, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIGS: &[TopicConfigKey] = &[
    log("cleanup.policy", "log.cleanup.policy", ConfigKind::List,
        "delete (old segments are removed by retention), compact (the last record per key is kept) or both",
        HONOURED),
    log("compression.type", "compression.type", ConfigKind::String,
        "The codec batches are stored in: producer (as sent), uncompressed, gzip, snappy, lz4 or zstd",
        "honoured: batches in another codec are recompressed on append"),
    log("delete.retention.ms", "log.cleaner.delete.retention.ms", ConfigKind::Long,
        "How long a tombstone survives compaction, from its timestamp", HONOURED),
    kept("file.delete.delay.ms", "log.segment.delete.delay.ms", ConfigKind::Long, "60000",
        "How long a deleted segment's file is kept before removal",
        "stored and reported; Porter removes a deleted segment's files once no reader holds them"),
    log("flush", "log.flush", ConfigKind::String,
        "Durability of an acknowledged produce: group (fdatasync'ed), interval or never",
        "Porter's own: honoured"),
    kept("flush.messages", "log.flush.interval.messages", ConfigKind::Long, LONG_MAX,
        "fsync after this many messages",
        "stored and reported; Porter's `flush` decides when data is fdatasync'ed"),
    log("flush.ms", "log.flush.interval.ms", ConfigKind::Long,
        "fdatasync period under flush=interval", HONOURED),
    kept("follower.replication.throttled.replicas", "follower.replication.throttled.replicas",
        ConfigKind::List, "", "Replicas whose replication is throttled on the follower side", ONE_BROKER),
    log("index.interval.bytes", "log.index.interval.bytes", ConfigKind::Int,
        "Bytes of log between two offset-index entries", HONOURED),
    kept("leader.replication.throttled.replicas", "leader.replication.throttled.replicas",
        ConfigKind::List, "", "Replicas whose replication is throttled on the leader side", ONE_BROKER),
    kept("local.retention.bytes", "log.local.retention.bytes", ConfigKind::Long, "-2",
        "Tiered storage: local bytes to keep (-2: as retention.bytes)",
        "stored and reported; Porter has no tiered storage, so all data is local"),
    kept("local.retention.ms", "log.local.retention.ms", ConfigKind::Long, "-2",
        "Tiered storage: local time to keep (-2: as retention.ms)",
        "stored and reported; Porter has no tiered storage, so all data is local"),
    log("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", ConfigKind::Long,
        "Compact, whatever the dirty ratio, once a record has waited this long",
        "honoured, checked at every cleaner pass (storage.compaction_interval_ms)"),
    log("max.message.bytes", "message.max.bytes", ConfigKind::Int,
        "Largest record batch accepted", HONOURED),
    kept("message.downconversion.enable", "log.message.downconversion.enable", ConfigKind::Boolean,
        "true", "Whether old fetch versions may get down-converted records",
        "stored and reported; Porter serves Fetch v4+ only, which needs no down-conversion"),
    kept("message.format.version", "log.message.format.version", ConfigKind::String, "3.0-IV1",
        "Deprecated: the record format version",
        "stored and reported; Porter always stores record batch v2"),
    log("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", ConfigKind::Long,
        "How far ahead of the broker's clock a CreateTime record may be",
        "honoured: a record further ahead is refused with INVALID_TIMESTAMP"),
    log("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", ConfigKind::Long,
        "How far behind the broker's clock a CreateTime record may be",
        "honoured: a record further behind is refused with INVALID_TIMESTAMP"),
    kept("message.timestamp.difference.max.ms", "log.message.timestamp.difference.max.ms",
        ConfigKind::Long, LONG_MAX,
        "Deprecated: how far from the broker's clock a CreateTime record may be, either way",
        "honoured: bounds both of the two keys above"),
    kept("message.type", "message.type", ConfigKind::String, "MIXED",
        "Porter's own (RocketMQ's topic message type): NORMAL, FIFO, DELAY, TRANSACTION or MIXED",
        "honoured for RocketMQ producers: a message of another type is refused with MESSAGE_PROPERTY_CONFLICT_WITH_TYPE; MIXED takes every type"),
    log("message.timestamp.type", "log.message.timestamp.type", ConfigKind::String,
        "CreateTime (the producer's timestamps) or LogAppendTime (the broker's clock at append)",
        HONOURED),
    log("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", ConfigKind::Double,
        "Compact once this share of the log was written since the last pass",
        "honoured (the share is counted from the last pass since the broker started)"),
    log("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", ConfigKind::Long,
        "Records younger than this are never compacted away", HONOURED),
    kept("min.insync.replicas", "min.insync.replicas", ConfigKind::Int, "1",
        "Replicas that must have a write for acks=all to succeed",
        "honoured: with one broker there is one replica, so above 1 an acks=all produce gets NOT_ENOUGH_REPLICAS, as on Kafka"),
    kept("preallocate", "log.preallocate", ConfigKind::Boolean, "false",
        "Preallocate a new segment's file",
        "stored and reported; Porter's segments grow as written"),
    kept("remote.storage.enable", "remote.log.storage.system.enable", ConfigKind::Boolean, "false",
        "Tiered storage for this topic",
        "only false: Porter has no tiered storage, so true is refused with INVALID_CONFIG (as Kafka without it)"),
    log("retention.bytes", "log.retention.bytes", ConfigKind::Long,
        "Delete the oldest segments while a partition is larger than this; -1: no limit", HONOURED),
    log("retention.ms", "log.retention.ms", ConfigKind::Long,
        "Delete segments whose newest record is older than this; -1: keep forever", HONOURED),
    log("segment.bytes", "log.segment.bytes", ConfigKind::Int,
        "Roll the active segment at this size", HONOURED),
    kept("segment.index.bytes", "log.index.size.max.bytes", ConfigKind::Int, "10485760",
        "Size of a segment's offset index file",
        "stored and reported; Porter's index files grow as needed"),
    log("segment.jitter.ms", "log.roll.jitter.ms", ConfigKind::Long,
        "Roll a segment up to this much before segment.ms", HONOURED),
    log("segment.ms", "log.roll.ms", ConfigKind::Long,
        "Roll a non-empty active segment at this age", HONOURED),
    kept("unclean.leader.election.enable", "unclean.leader.election.enable", ConfigKind::Boolean,
        "false", "Whether an out-of-sync replica may become leader", ONE_BROKER),
];

/// The description of a topic config key, or None when Kafka has no such key.
pub fn topic_config_key(name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIGS.iter().find(|k| k.name == name)
}

/// The items of a comma-separated list value, trimmed, empty ones dropped.
pub(crate) fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks `value` for `key` and returns it in canonical form (`" 100"` → `"100"`,
/// `delete,compact` → `compact,delete`), the form stored and reported.
pub fn canonical(key: &str, value: &str) -> Result<String> {
    let spec = topic_config_key(key).ok_or_else(|| invalid(key, value, "unknown topic config"))?;
    match spec.held {
        Held::Log => {
            let mut log = LogConfig::default();
            apply(&mut log, key, value)?;
            Ok(config_value(&log, key).expect("a key apply accepted"))
        }
        Held::Topic { .. } => check_kept(key, value),
    }
}

/// The value of `spec` when the topic doesn't override it, given the broker's log defaults.
pub fn default_value(spec: &TopicConfigKey, defaults: &LogConfig) -> String {
    match spec.held {
        Held::Log => config_value(defaults, spec.name).expect("a log key"),
        Held::Topic { default } => default.to_string(),
    }
}

fn check_kept(key: &str, value: &str) -> Result<String> {
    let bad = |reason: &str| invalid(key, value, reason);
    let v = value.trim();
    let long_at_least = |min: i64| -> Result<String> {
        match v.parse::<i64>() {
            Ok(n) if n >= min => Ok(n.to_string()),
            Ok(_) => Err(bad(&format!("must be >= {min}"))),
            Err(_) => Err(bad("not an integer")),
        }
    };
    let int_at_least = |min: i32| -> Result<String> {
        match v.parse::<i32>() {
            Ok(n) if n >= min => Ok(n.to_string()),
            Ok(_) => Err(bad(&format!("must be >= {min}"))),
            Err(_) => Err(bad("not a 32-bit integer")),
        }
    };
    let boolean = || match v.to_ascii_lowercase().as_str() {
        b @ ("true" | "false") => Ok(b.to_string()),
        _ => Err(bad("must be true or false")),
    };
    match key {
        "file.delete.delay.ms" | "message.timestamp.difference.max.ms" => long_at_least(0),
        "flush.messages" => long_at_least(1),
        "local.retention.bytes" | "local.retention.ms" => long_at_least(-2),
        "min.insync.replicas" => int_at_least(1),
        "message.type" => {
            let upper = v.to_ascii_uppercase();
            match upper.as_str() {
                "NORMAL" | "FIFO" | "DELAY" | "TRANSACTION" | "MIXED" => Ok(upper),
                _ => Err(bad("must be NORMAL, FIFO, DELAY, TRANSACTION or MIXED")),
            }
        }
        "segment.index.bytes" => int_at_least(4),
        "message.downconversion.enable" | "preallocate" | "unclean.leader.election.enable" => {
            boolean()
        }
        "remote.storage.enable" => match boolean()?.as_str() {
            "false" => Ok("false".to_string()),
            _ => Err(bad("tiered storage is not enabled on this broker")),
        },
        "message.format.version" => {
            // Kafka's versions: 0.8.0 … 3.x, optionally with an -IVn suffix.
            let (version, iv) = v.split_once("-IV").unwrap_or((v, "0"));
            let parts: Vec<&str> = version.split('.').collect();
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if (2..=4).contains(&parts.len()) && parts.iter().all(|p| numeric(p)) && numeric(iv) {
                Ok(v.to_string())
            } else {
                Err(bad("not a Kafka version such as 3.0-IV1"))
            }
        }
        "follower.replication.throttled.replicas" | "leader.replication.throttled.replicas" => {
            // "*", or partition:broker pairs.
            let items = list_items(v);
            let pair = |item: &String| {
                item.split_once(':').is_some_and(|(p, b)| {
                    p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
                })
            };
            if items == ["*"] || items.iter().all(pair) {
                Ok(items.join(","))
            } else {
                Err(bad("must be * or a list of partition:broker pairs"))
            }
        }
        _ => Err(bad("unknown topic config")),
    }
}

/// The value of a [`Held::Log`] key in `config`, rendered as Kafka tools show it; None for other
/// keys.
pub fn config_value(config: &LogConfig, key: &str) -> Option<String> {
    let optional = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    Some(match key {
        "retention.ms" => optional(config.retention_ms),
        "retention.bytes" => optional(config.retention_bytes),
        "segment.bytes" => config.segment_bytes.to_string(),
        "segment.ms" => config.segment_ms.to_string(),
        "segment.jitter.ms" => config.segment_jitter_ms.to_string(),
        "max.message.bytes" => config.max_batch_bytes.to_string(),
        "index.interval.bytes" => config.index_interval_bytes.to_string(),
        "flush" => match config.flush {
            FlushMode::Group => "group",
            FlushMode::Interval => "interval",
            FlushMode::Never => "never",
        }
        .to_string(),
        "flush.ms" => config.flush_interval_ms.to_string(),
        "cleanup.policy" => match config.cleanup_policy {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
        .to_string(),
        "compression.type" => match config.compression {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
        .to_string(),
        "min.compaction.lag.ms" => config.min_compaction_lag_ms.to_string(),
        "max.compaction.lag.ms" => config.max_compaction_lag_ms.to_string(),
        "min.cleanable.dirty.ratio" => config.min_cleanable_dirty_ratio.to_string(),
        "delete.retention.ms" => config.delete_retention_ms.to_string(),
        "message.timestamp.type" => match config.timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
        .to_string(),
        "message.timestamp.before.max.ms" => config.timestamp_before_max_ms.to_string(),
        "message.timestamp.after.max.ms" => config.timestamp_after_max_ms.to_string(),
        _ => return None,
    })
}

/// Sets a [`Held::Log`] key in `config`; a [`Held::Topic`] key is only checked.
pub fn apply(config: &mut LogConfig, key: &str, value: &str) -> Result<()> {
    let bad = |reason: &str| invalid(key, value, reason);
    let int = || {
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| bad("not an integer"))
    };
    // -1 means "no limit" for the retention keys, as in Kafka.
    let optional = |v: i64| -> Result<Option<u64>> {
        match v {
            -1 => Ok(None),
            v if v >= 0 => Ok(Some(v as u64)),
            _ => Err(bad("must be -1 or >= 0")),
        }
    };
    let at_least = |v: i64, min: i64| -> Result<u64> {
        if v >= min {
            Ok(v as u64)
        } else {
            Err(bad(&format!("must be >= {min}")))
        }
    };
    let int32 = |v: i64, min: i64| -> Result<u32> {
        if (min..=i32::MAX as i64).contains(&v) {
            Ok(v as u32)
        } else {
            Err(bad(&format!("must be between {min} and 2147483647")))
        }
    };
    match key {
        "retention.ms" => config.retention_ms = optional(int()?)?,
        "retention.bytes" => config.retention_bytes = optional(int()?)?,
        "segment.bytes" => config.segment_bytes = int32(int()?, 14)? as u64,
        "segment.ms" => config.segment_ms = at_least(int()?, 1)?,
        "segment.jitter.ms" => config.segment_jitter_ms = at_least(int()?, 0)?,
        "max.message.bytes" => config.max_batch_bytes = int32(int()?, 0)?,
        "index.interval.bytes" => config.index_interval_bytes = int32(int()?, 0)?,
        "flush" => {
            config.flush = match value.trim() {
                "group" => FlushMode::Group,
                "interval" => FlushMode::Interval,
                "never" => FlushMode::Never,
                _ => return Err(bad("must be group, interval or never")),
            }
        }
        "flush.ms" => config.flush_interval_ms = at_least(int()?, 1)?,
        "cleanup.policy" => {
            let items = list_items(value);
            let known = items.iter().all(|i| i == "delete" || i == "compact");
            let has = |name: &str| items.iter().any(|i| i == name);
            config.cleanup_policy = match (known, has("compact"), has("delete")) {
                (true, true, true) => CleanupPolicy::CompactDelete,
                (true, true, false) => CleanupPolicy::Compact,
                (true, false, true) => CleanupPolicy::Delete,
                _ => return Err(bad("must be delete, compact or compact,delete")),
            }
        }
        "compression.type" => {
            config.compression = match value.trim() {
                "producer" => CompressionType::Producer,
                "uncompressed" => CompressionType::Uncompressed,
                "gzip" => CompressionType::Gzip,
                "snappy" => CompressionType::Snappy,
                "lz4" => CompressionType::Lz4,
                "zstd" => CompressionType::Zstd,
                _ => {
                    return Err(bad(
                        "must be producer, uncompressed, gzip, snappy, lz4 or zstd",
                    ))
                }
            }
        }
        "min.compaction.lag.ms" => config.min_compaction_lag_ms = at_least(int()?, 0)?,
        "max.compaction.lag.ms" => config.max_compaction_lag_ms = at_least(int()?, 1)?,
        "min.cleanable.dirty.ratio" => {
            let ratio = value
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("not a number"))?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(bad("must be between 0 and 1"));
            }
            config.min_cleanable_dirty_ratio = ratio;
        }
        "delete.retention.ms" => config.delete_retention_ms = at_least(int()?, 0)?,
        "message.timestamp.type" => {
            config.timestamp_type = match value.trim() {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err(bad("must be CreateTime or LogAppendTime")),
            }
        }
        "message.timestamp.before.max.ms" => config.timestamp_before_max_ms = at_least(int()?, 0)?,
        "message.timestamp.after.max.ms" => config.timestamp_after_max_ms = at_least(int()?, 0)?,
        "message.timestamp.difference.max.ms" => {
            // Deprecated in favour of the two above; it bounds both.
            let difference: u64 = check_kept(key, value)?.parse().expect("checked");
            config.timestamp_before_max_ms = config.timestamp_before_max_ms.min(difference);
            config.timestamp_after_max_ms = config.timestamp_after_max_ms.min(difference);
        }
        _ => {
            check_kept(key, value)?;
        }
    }
    Ok(())
}
