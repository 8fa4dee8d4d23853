//! Topics: names, partition counts and per-topic configuration.
//!
//! Per-topic configuration is kept as Kafka-named overrides (`retention.ms`, `segment.bytes`, ...)
//! on top of the broker defaults, because that is the vocabulary every Kafka admin tool speaks and
//! what DescribeConfigs must report. [`TopicConfig::log_config`] turns them into storage settings.

pub mod config_keys;

use std::collections::BTreeMap;

use porter_storage::LogConfig;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{broker_synonyms, ConfigEntry, ConfigKind, ConfigSource, ConfigSynonym};
use crate::error::{CoreError, Result};
use config_keys::{apply, canonical, default_value, list_items};
pub use config_keys::{topic_config_key, Held, TopicConfigKey, TOPIC_CONFIGS};

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
        let canonical = canonical(key, value)?;
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
            None => default_value(spec, &defaults.0),
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
            apply(&mut log, key, value)?;
        }
        Ok(())
    }

    /// `min.insync.replicas`: replicas that must have a write before acks=all succeeds.
    pub fn min_insync_replicas(&self) -> u32 {
        self.overrides
            .get("min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// `message.type`: which kinds of business message the topic takes (RocketMQ's topic
    /// message type); `MIXED`, the default, takes all.
    pub fn message_type(&self) -> &str {
        self.overrides
            .get("message.type")
            .map(String::as_str)
            .unwrap_or("MIXED")
    }

    /// The storage settings for this topic: broker defaults with this topic's overrides applied.
    pub fn log_config(&self, defaults: &LogConfig) -> LogConfig {
        let mut config = defaults.clone();
        for (key, value) in &self.overrides {
            // Overrides were validated when set; a failure here means a hand-edited journal.
            if let Err(e) = apply(&mut config, key, value) {
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
                let value_of = |log: &LogConfig| default_value(spec, log);
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
    use porter_storage::{CleanupPolicy, CompressionType, FlushMode, TimestampType};

    use super::*;

    /// Kafka 3.7's topic configs (`kafka-configs.sh --describe --all` on a topic), each with a
    /// value Kafka accepts.
    const KAFKA_TOPIC_CONFIGS: &[(&str, &str)] = &[
        ("cleanup.policy", "compact"),
        ("compression.type", "zstd"),
        ("delete.retention.ms", "86400"),
        ("file.delete.delay.ms", "10000"),
        ("flush.messages", "100"),
        ("flush.ms", "1000"),
        ("follower.replication.throttled.replicas", "0:1,1:1"),
        ("index.interval.bytes", "4096"),
        ("leader.replication.throttled.replicas", "*"),
        ("local.retention.bytes", "-2"),
        ("local.retention.ms", "-2"),
        ("max.compaction.lag.ms", "100"),
        ("max.message.bytes", "1048588"),
        ("message.downconversion.enable", "true"),
        ("message.format.version", "3.0-IV1"),
        ("message.timestamp.after.max.ms", "3600000"),
        ("message.timestamp.before.max.ms", "3600000"),
        ("message.timestamp.difference.max.ms", "7200000"),
        ("message.timestamp.type", "CreateTime"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("min.compaction.lag.ms", "0"),
        ("min.insync.replicas", "1"),
        ("preallocate", "false"),
        ("remote.storage.enable", "false"),
        ("retention.bytes", "-1"),
        ("retention.ms", "604800000"),
        ("segment.bytes", "1048576"),
        ("segment.index.bytes", "10485760"),
        ("segment.jitter.ms", "0"),
        ("segment.ms", "500"),
        ("unclean.leader.election.enable", "false"),
    ];

    #[test]
    fn every_kafka_topic_config_is_accepted_stored_and_described() {
        assert_eq!(KAFKA_TOPIC_CONFIGS.len(), 31);
        let config = TopicConfig::from_pairs(KAFKA_TOPIC_CONFIGS.iter().copied()).unwrap();
        let entries = config.describe(&LogConfig::default());
        for (key, value) in KAFKA_TOPIC_CONFIGS {
            let entry = entries.iter().find(|e| e.name == *key).unwrap();
            assert_eq!(entry.source, ConfigSource::TopicOverride, "{key}");
            // The deprecated difference bounds the two newer keys, which were set lower here.
            if !key.starts_with("message.timestamp.") || *key == "message.timestamp.type" {
                assert_eq!(entry.value, *value, "{key}");
            }
        }
        // Plus Porter's own `flush`; every entry has a doc and says what Porter does with it.
        assert_eq!(TOPIC_CONFIGS.len(), 33);
        assert!(TOPIC_CONFIGS
            .iter()
            .all(|k| !k.doc.is_empty() && !k.effect.is_empty()));
    }

    #[test]
    fn new_keys_reach_the_log_config() {
        let config = TopicConfig::from_pairs([
            ("compression.type", "lz4"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("max.compaction.lag.ms", "100"),
            ("segment.jitter.ms", "50"),
            ("message.timestamp.before.max.ms", "9000"),
            ("message.timestamp.difference.max.ms", "5000"),
        ])
        .unwrap();
        let log = config.log_config(&LogConfig::default());
        assert_eq!(log.compression, CompressionType::Lz4);
        assert_eq!(log.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(log.max_compaction_lag_ms, 100);
        assert_eq!(log.segment_jitter_ms, 50);
        assert_eq!(log.timestamp_before_max_ms, 5000);
        assert_eq!(log.timestamp_after_max_ms, 5000);
        assert_eq!(config.min_insync_replicas(), 1);
        let config = TopicConfig::from_pairs([("min.insync.replicas", "2")]).unwrap();
        assert_eq!(config.min_insync_replicas(), 2);
    }

    #[test]
    fn bad_values_of_new_keys_are_refused_naming_the_key() {
        for (key, value) in [
            ("compression.type", "brotli"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("max.compaction.lag.ms", "0"),
            ("min.insync.replicas", "0"),
            ("remote.storage.enable", "true"),
            ("preallocate", "maybe"),
            ("message.format.version", "latest"),
            ("leader.replication.throttled.replicas", "0-1"),
            ("local.retention.ms", "-3"),
            ("segment.index.bytes", "2"),
        ] {
            let err = TopicConfig::from_pairs([(key, value)]).unwrap_err();
            assert!(
                matches!(&err, CoreError::InvalidConfig { key: k, .. } if k == key),
                "{key}={value}: {err}"
            );
        }
    }

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
