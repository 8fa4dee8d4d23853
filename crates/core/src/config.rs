//! Broker-wide settings. The server binary fills these from its TOML file, env vars and flags.
//! Also the shape of a config description ([`ConfigEntry`]), shared by topic and broker configs:
//! what DescribeConfigs-like admin calls report.

use std::path::PathBuf;

use porter_storage::LogConfig;

use crate::group::GroupConfig;
use crate::topic::config_keys::default_value;
use crate::topic::TOPIC_CONFIGS;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    /// Create a topic on first produce or metadata request for it, like a Kafka dev broker.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of CreateTopics with `num_partitions = -1`.
    pub default_partitions: u32,
    /// Storage settings of every topic that does not override them.
    pub log_defaults: LogConfig,
    /// Open file handles shared by all partitions' segments and indexes.
    pub open_files_max: usize,
    /// How often time and size retention is enforced (Kafka: log.retention.check.interval.ms).
    pub retention_check_interval_ms: u64,
    /// How often compacted topics are cleaned (Kafka: log.cleaner.backoff.ms).
    pub compaction_interval_ms: u64,
    /// Memory and I/O bounds of the cleaner.
    pub cleaner: porter_storage::CleanerLimits,
    pub groups: GroupConfig,
    /// Memory and disk limits that block publishers (see [`crate::alarm`]).
    pub alarms: crate::alarm::AlarmLimits,
    /// Writer threads and their queue bounds (see [`crate::commit`]).
    pub commit: crate::commit::CommitConfig,
    /// Undelivered message bodies all queues together keep decoded in memory; a backlog past it
    /// stays in the queues' logs and is read back when delivered (see
    /// [`crate::queue::cache_budget`]).
    pub queue_cache_bytes_max: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("porter-data"),
            auto_create_topics: true,
            default_partitions: 1,
            log_defaults: LogConfig::default(),
            open_files_max: 4096,
            retention_check_interval_ms: 300_000,
            compaction_interval_ms: 15_000,
            cleaner: porter_storage::CleanerLimits::default(),
            groups: GroupConfig::default(),
            alarms: crate::alarm::AlarmLimits::default(),
            commit: crate::commit::CommitConfig::default(),
            queue_cache_bytes_max: crate::queue::cache_budget::QUEUE_CACHE_TOTAL_BYTES_DEFAULT,
        }
    }
}

/// How a config's value is typed, as admin tools display it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean,
    Int,
    Long,
    Double,
    String,
    /// Comma-separated items (`cleanup.policy`); the only kind incremental APPEND/SUBTRACT apply to.
    List,
}

/// Where a config's effective value comes from, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics, AlterConfigs, IncrementalAlterConfigs).
    TopicOverride,
    /// Set on this broker while it runs (AlterConfigs on the broker resource).
    DynamicBroker,
    /// Set as every broker's default while running (AlterConfigs on the empty broker name).
    DynamicDefaultBroker,
    /// Set by the operator in the broker's configuration (file, env, flags): static.
    BrokerConfig,
    /// Porter's built-in default.
    Default,
}

/// One value a config could take from one source; the first synonym of an entry is in effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

/// A config with its effective value, for admin tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub kind: ConfigKind,
    pub doc: &'static str,
    /// Broker configs are static: changing them needs a restart.
    pub read_only: bool,
    /// Every source that sets this config, in precedence order: `synonyms[0]` is in effect.
    pub synonyms: Vec<ConfigSynonym>,
}

/// The broker-level synonyms of a setting: the operator's value when it differs from the
/// built-in default, then the built-in default.
pub(crate) fn broker_synonyms(
    name: &str,
    configured: String,
    builtin: String,
) -> Vec<ConfigSynonym> {
    let mut synonyms = Vec::with_capacity(2);
    if configured != builtin {
        synonyms.push(ConfigSynonym {
            name: name.to_string(),
            value: configured,
            source: ConfigSource::BrokerConfig,
        });
    }
    synonyms.push(ConfigSynonym {
        name: name.to_string(),
        value: builtin,
        source: ConfigSource::Default,
    });
    synonyms
}

impl BrokerConfig {
    /// The broker's settings under Kafka's broker config names, each with its source. All are
    /// read-only: Porter's broker configuration is static (file, env, flags; then a restart).
    pub fn describe(&self) -> Vec<ConfigEntry> {
        let builtin = BrokerConfig::default();
        let entry = |name: &str, kind, doc, configured: String, builtin: String| {
            let synonyms = broker_synonyms(name, configured, builtin);
            ConfigEntry {
                name: name.to_string(),
                value: synonyms[0].value.clone(),
                source: synonyms[0].source,
                kind,
                doc,
                read_only: true,
                synonyms,
            }
        };
        let mut entries = vec![
            entry(
                "auto.create.topics.enable",
                ConfigKind::Boolean,
                "Create a topic on first produce or metadata request for it",
                self.auto_create_topics.to_string(),
                builtin.auto_create_topics.to_string(),
            ),
            entry(
                "log.dirs",
                ConfigKind::String,
                "The data directory",
                self.data_dir.display().to_string(),
                builtin.data_dir.display().to_string(),
            ),
            entry(
                "log.retention.check.interval.ms",
                ConfigKind::Long,
                "How often time and size retention is enforced",
                self.retention_check_interval_ms.to_string(),
                builtin.retention_check_interval_ms.to_string(),
            ),
            entry(
                "num.partitions",
                ConfigKind::Int,
                "Partitions of an auto-created topic",
                self.default_partitions.to_string(),
                builtin.default_partitions.to_string(),
            ),
        ];
        for spec in TOPIC_CONFIGS {
            let value_of = |log: &LogConfig| default_value(spec, log);
            entries.push(entry(
                spec.broker_name,
                spec.kind,
                spec.doc,
                value_of(&self.log_defaults),
                value_of(&builtin.log_defaults),
            ));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }
}
