//! Topics: names, partition counts and per-topic configuration.
//!
//! Per-topic configuration is kept as Kafka-named overrides (`retention.ms`, `segment.bytes`, ...)
//! on top of the broker defaults, because that is the vocabulary every Kafka admin tool speaks and
//! what DescribeConfigs must report. [`TopicConfig::log_config`] turns them into storage settings.

use std::collections::BTreeMap;

use porter_storage::{CleanupPolicy, FlushMode, LogConfig, TimestampType};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{broker_synonyms, ConfigEntry, ConfigKind, ConfigSource, ConfigSynonym};
use crate::error::{CoreError, Result};

/// Kafka's limit: a topic name must fit in a file name together with `-<partition>` suffixes.
pub const TOPIC_NAME_CHARS_MAX: usize = 249;
/// Partitions per topic. Each partition costs at least a directory and an index buffer.
pub const TOPIC_PARTITIONS_MAX: u32 = 10_000;

/// Checks Kafka's topic-name rules: `[a-zA-Z0-9._-]`, at most 249 characters, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(CoreError::InvalidTopicName {
            name: name.chars().take(300).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("the name is empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return invalid("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The broker's defaults for topic configs, as a change to a topic's overrides sees them. Opaque
/// so that gateways never handle the storage layer's own config type.
#[derive(Clone, Debug)]
pub struct TopicDefaults(pub(crate) LogConfig);

/// Per-topic overrides, by Kafka config name. Only keys in [`TOPIC_CONFIGS`] are accepted; values
/// are stored in canonical form (`" 100"` becomes `"100"`, `delete,compact` becomes
/// `compact,delete`), so what DescribeConfigs reports is what the log runs with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub overrides: BTreeMap<String, String>,
}

/// One topic config Porter honours.
#[derive(Clone, Copy, Debug)]
pub struct TopicConfigKey {
    pub name: &'static str,
    /// The broker-wide setting (Kafka's name) a topic override replaces; reported as a synonym.
    pub broker_name: &'static str,
    pub kind: ConfigKind,
    pub doc: &'static str,
}

/// The topic configs Porter honours, in the order DescribeConfigs lists them. `flush` is Porter's
/// own (`group`, `interval`, `never`).
pub const TOPIC_CONFIGS: &[TopicConfigKey] = &[
    TopicConfigKey {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        kind: ConfigKind::List,
        doc: "delete (old segments are removed by retention), compact (the last record per key is kept) or both",
    },
    TopicConfigKey {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        kind: ConfigKind::Long,
        doc: "How long a tombstone survives compaction, from its timestamp",
    },
    TopicConfigKey {
        name: "flush",
        broker_name: "log.flush",
        kind: ConfigKind::String,
        doc: "Durability of an acknowledged produce: group (fdatasync'ed), interval or never",
    },
    TopicConfigKey {
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        kind: ConfigKind::Long,
        doc: "fdatasync period under flush=interval",
    },
    TopicConfigKey {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        kind: ConfigKind::Int,
        doc: "Largest record batch accepted",
    },
    TopicConfigKey {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        kind: ConfigKind::String,
        doc: "CreateTime (the producer's timestamps) or LogAppendTime (the broker's clock at append)",
    },
    TopicConfigKey {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        kind: ConfigKind::Long,
        doc: "Records younger than this are never compacted away",
    },
    TopicConfigKey {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        kind: ConfigKind::Long,
        doc: "Delete the oldest segments while a partition is larger than this; -1: no limit",
    },
    TopicConfigKey {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        kind: ConfigKind::Long,
        doc: "Delete segments whose newest record is older than this; -1: keep forever",
    },
    TopicConfigKey {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        kind: ConfigKind::Int,
        doc: "Roll the active segment at this size",
    },
    TopicConfigKey {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        kind: ConfigKind::Long,
        doc: "Roll a non-empty active segment at this age",
    },
];

/// The description of a topic config key, or None when Porter does not know it.
pub fn topic_config_key(name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIGS.iter().find(|k| k.name == name)
}

/// One change of an IncrementalAlterConfigs request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOp<'a> {
    Set(&'a str),
    /// Removes the override: the broker default applies again.
    Delete,
    /// Adds items to a list-valued config (starting from its effective value), once each.
    Append(&'a str),
    /// Removes items from a list-valued config.
    Subtract(&'a str),
}

impl TopicConfig {
    /// Builds a config from (key, value) pairs, rejecting unknown keys and bad values.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut config = TopicConfig::default();
        for (key, value) in pairs {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one override, stored in canonical form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        // Validate by applying to a default config: one parser for both paths.
        let mut log = LogConfig::default();
        apply_override(&mut log, key, value)?;
        let canonical = config_value(&log, key).expect("a key apply_override accepted");
        self.overrides.insert(key.to_string(), canonical);
        Ok(())
    }

    /// Applies one incremental change. `defaults` are the broker's: APPEND and SUBTRACT start
    /// from the effective value when the topic has no override, as Kafka does.
    pub fn alter(&mut self, key: &str, op: ConfigOp<'_>, defaults: &TopicDefaults) -> Result<()> {
        let bad = |value: &str, reason: &str| CoreError::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let spec = topic_config_key(key).ok_or_else(|| bad("", "unknown topic config"))?;
        let (items, value) = match op {
            ConfigOp::Set(value) => return self.set(key, value),
            ConfigOp::Delete => {
                self.overrides.remove(key);
                return Ok(());
            }
            ConfigOp::Append(value) | ConfigOp::Subtract(value) => (list_items(value), value),
        };
        if spec.kind != ConfigKind::List {
            return Err(bad(
                value,
                "APPEND and SUBTRACT apply only to list-valued configs",
            ));
        }
        let current = match self.overrides.get(key) {
            Some(value) => value.clone(),
            None => config_value(&defaults.0, key).expect("a known key"),
        };
        let mut list = list_items(&current);
        if matches!(op, ConfigOp::Append(_)) {
            for item in items {
                if !list.contains(&item) {
                    list.push(item);
                }
            }
        } else {
            list.retain(|item| !items.contains(item));
        }
        self.set(key, &list.join(","))
    }

    /// Checks every override (a config read back from the journal or built by hand).
    pub fn validate(&self) -> Result<()> {
        let mut log = LogConfig::default();
        for (key, value) in &self.overrides {
            apply_override(&mut log, key, value)?;
        }
        Ok(())
    }

    /// The storage settings for this topic: broker defaults with this topic's overrides applied.
    pub fn log_config(&self, defaults: &LogConfig) -> LogConfig {
        let mut config = defaults.clone();
        for (key, value) in &self.overrides {
            // Overrides were validated when set; a failure here means a hand-edited journal.
            if let Err(e) = apply_override(&mut config, key, value) {
                tracing::warn!(%key, %value, error = %e, "ignoring invalid stored topic config");
            }
        }
        config
    }

    /// Every topic config with its effective value and where that value comes from: this
    /// topic's override, the broker's configuration, or Porter's built-in default.
    pub fn describe(&self, defaults: &LogConfig) -> Vec<ConfigEntry> {
        let builtin = LogConfig::default();
        TOPIC_CONFIGS
            .iter()
            .map(|spec| {
                let value_of = |log: &LogConfig| config_value(log, spec.name).expect("a known key");
                let mut synonyms = Vec::new();
                if let Some(value) = self.overrides.get(spec.name) {
                    synonyms.push(ConfigSynonym {
                        name: spec.name.to_string(),
                        value: value.clone(),
                        source: ConfigSource::TopicOverride,
                    });
                }
                synonyms.extend(broker_synonyms(
                    spec.broker_name,
                    value_of(defaults),
                    value_of(&builtin),
                ));
                ConfigEntry {
                    name: spec.name.to_string(),
                    value: synonyms[0].value.clone(),
                    source: synonyms[0].source,
                    kind: spec.kind,
                    doc: spec.doc,
                    read_only: false,
                    synonyms,
                }
            })
            .collect()
    }
}

/// The items of a comma-separated list value, trimmed, empty ones dropped.
fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// The value of one topic config key in `config`, rendered as Kafka tools show it; None for a key
/// Porter does not know.
pub fn config_value(config: &LogConfig, key: &str) -> Option<String> {
    let optional = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    Some(match key {
        "retention.ms" => optional(config.retention_ms),
        "retention.bytes" => optional(config.retention_bytes),
        "segment.bytes" => config.segment_bytes.to_string(),
        "segment.ms" => config.segment_ms.to_string(),
        "max.message.bytes" => config.max_batch_bytes.to_string(),
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
        "min.compaction.lag.ms" => config.min_compaction_lag_ms.to_string(),
        "delete.retention.ms" => config.delete_retention_ms.to_string(),
        "message.timestamp.type" => match config.timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
        .to_string(),
        _ => return None,
    })
}

fn apply_override(config: &mut LogConfig, key: &str, value: &str) -> Result<()> {
    let bad = |reason: &str| CoreError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
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
    let non_negative =
        |v: i64| -> Result<u64> { u64::try_from(v).map_err(|_| bad("must be >= 0")) };
    match key {
        "retention.ms" => config.retention_ms = optional(int()?)?,
        "retention.bytes" => config.retention_bytes = optional(int()?)?,
        "segment.bytes" => {
            let v = int()?;
            if !(14..=i32::MAX as i64).contains(&v) {
                return Err(bad("must be between 14 and 2147483647"));
            }
            config.segment_bytes = v as u64;
        }
        "segment.ms" => {
            let v = int()?;
            if v < 1 {
                return Err(bad("must be >= 1"));
            }
            config.segment_ms = v as u64;
        }
        "max.message.bytes" => {
            let v = int()?;
            if !(0..=i32::MAX as i64).contains(&v) {
                return Err(bad("must be between 0 and 2147483647"));
            }
            config.max_batch_bytes = v as u32;
        }
        "flush" => {
            config.flush = match value.trim() {
                "group" => FlushMode::Group,
                "interval" => FlushMode::Interval,
                "never" => FlushMode::Never,
                _ => return Err(bad("must be group, interval or never")),
            }
        }
        "flush.ms" => {
            let v = int()?;
            if v < 1 {
                return Err(bad("must be >= 1"));
            }
            config.flush_interval_ms = v as u64;
        }
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
        "min.compaction.lag.ms" => config.min_compaction_lag_ms = non_negative(int()?)?,
        "delete.retention.ms" => config.delete_retention_ms = non_negative(int()?)?,
        "message.timestamp.type" => {
            config.timestamp_type = match value.trim() {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err(bad("must be CreateTime or LogAppendTime")),
            }
        }
        _ => return Err(bad("unknown topic config")),
    }
    Ok(())
}

/// A topic as the metadata state machine knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    /// Distinguishes incarnations of the same name: a partition directory whose id differs
    /// belongs to a deleted topic and is removed at start.
    pub id: Uuid,
    pub partitions: u32,
    pub config: TopicConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders", "orders.v1", "A_b-c.9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "bad/name", "sp ace", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_are_validated_and_applied() {
        let config = TopicConfig::from_pairs([("retention.ms", "-1"), ("flush", "never")]).unwrap();
        let log = config.log_config(&LogConfig::default());
        assert_eq!(log.retention_ms, None);
        assert!(matches!(log.flush, FlushMode::Never));
        assert!(TopicConfig::from_pairs([("retention.ms", "abc")]).is_err());
        assert!(TopicConfig::from_pairs([("no.such.key", "1")]).is_err());
        assert!(TopicConfig::from_pairs([("flush", "sometimes")]).is_err());
    }

    #[test]
    fn compaction_and_timestamp_keys_map_to_the_log_config() {
        let config = TopicConfig::from_pairs([
            ("cleanup.policy", "delete, compact"),
            ("min.compaction.lag.ms", "5000"),
            ("delete.retention.ms", "0"),
            ("message.timestamp.type", "LogAppendTime"),
        ])
        .unwrap();
        let log = config.log_config(&LogConfig::default());
        assert_eq!(log.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(log.min_compaction_lag_ms, 5000);
        assert_eq!(log.delete_retention_ms, 0);
        assert_eq!(log.timestamp_type, TimestampType::LogAppendTime);
        // Stored canonically: what DescribeConfigs reports is what runs.
        assert_eq!(config.overrides["cleanup.policy"], "compact,delete");
        for (key, value) in [
            ("cleanup.policy", ""),
            ("cleanup.policy", "compact,shred"),
            ("min.compaction.lag.ms", "-1"),
            ("delete.retention.ms", "soon"),
            ("message.timestamp.type", "createtime"),
        ] {
            let err = TopicConfig::from_pairs([(key, value)]).unwrap_err();
            assert!(
                matches!(&err, CoreError::InvalidConfig { key: k, .. } if k == key),
                "{key}={value}: {err}"
            );
        }
    }

    #[test]
    fn incremental_changes() {
        let defaults = TopicDefaults(LogConfig::default());
        let mut config = TopicConfig::from_pairs([("retention.ms", "1000")]).unwrap();
        config
            .alter("retention.ms", ConfigOp::Set("2000"), &defaults)
            .unwrap();
        // APPEND starts from the effective (default) value when there is no override.
        config
            .alter("cleanup.policy", ConfigOp::Append("compact"), &defaults)
            .unwrap();
        assert_eq!(config.overrides["cleanup.policy"], "compact,delete");
        config
            .alter("cleanup.policy", ConfigOp::Append("compact"), &defaults)
            .unwrap();
        assert_eq!(config.overrides["cleanup.policy"], "compact,delete");
        config
            .alter("cleanup.policy", ConfigOp::Subtract("delete"), &defaults)
            .unwrap();
        assert_eq!(config.overrides["cleanup.policy"], "compact");
        // Removing the last item leaves no valid policy.
        assert!(config
            .alter("cleanup.policy", ConfigOp::Subtract("compact"), &defaults)
            .is_err());
        assert!(config
            .alter("retention.ms", ConfigOp::Append("1"), &defaults)
            .is_err());
        assert!(config
            .alter("no.such.key", ConfigOp::Delete, &defaults)
            .is_err());
        config
            .alter("retention.ms", ConfigOp::Delete, &defaults)
            .unwrap();
        assert_eq!(
            config.overrides.into_iter().collect::<Vec<_>>(),
            vec![("cleanup.policy".to_string(), "compact".to_string())]
        );
    }

    #[test]
    fn describe_reports_every_key_with_its_source() {
        let defaults = LogConfig {
            segment_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let config = TopicConfig::from_pairs([("retention.ms", "60000")]).unwrap();
        let entries = config.describe(&defaults);
        assert_eq!(entries.len(), TOPIC_CONFIGS.len());
        let entry = |name: &str| entries.iter().find(|e| e.name == name).unwrap();
        assert_eq!(entry("retention.ms").value, "60000");
        assert_eq!(entry("retention.ms").source, ConfigSource::TopicOverride);
        assert_eq!(entry("retention.ms").synonyms.len(), 2);
        assert_eq!(entry("segment.bytes").value, "1048576");
        assert_eq!(entry("segment.bytes").source, ConfigSource::BrokerConfig);
        assert_eq!(entry("cleanup.policy").value, "delete");
        assert_eq!(entry("cleanup.policy").source, ConfigSource::Default);
        assert_eq!(entry("retention.bytes").value, "-1");
        for e in &entries {
            assert_eq!(e.value, e.synonyms[0].value, "{}", e.name);
        }
    }
}
