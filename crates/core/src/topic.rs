//! Topics: names, partition counts and per-topic configuration.
//!
//! Per-topic configuration is kept as Kafka-named overrides (`retention.ms`, `segment.bytes`, ...)
//! on top of the broker defaults, because that is the vocabulary every Kafka admin tool speaks and
//! what DescribeConfigs must report. [`TopicConfig::log_config`] turns them into storage settings.

use std::collections::BTreeMap;

use porter_storage::{FlushMode, LogConfig};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// Per-topic overrides, by Kafka config name. Only keys in [`TOPIC_CONFIG_KEYS`] are accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub overrides: BTreeMap<String, String>,
}

/// The topic configs Porter honours. `flush` is Porter's own (`group`, `interval`, `never`).
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "flush",
    "flush.ms",
];

impl TopicConfig {
    /// Builds a config from (key, value) pairs, rejecting unknown keys and bad values.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut config = TopicConfig::default();
        for (key, value) in pairs {
            config.set(key, value)?;
        }
        Ok(config)
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        // Validate by applying to a default config: one parser for both paths.
        apply_override(&mut LogConfig::default(), key, value)?;
        self.overrides.insert(key.to_string(), value.to_string());
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
            config.flush = match value {
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
}
