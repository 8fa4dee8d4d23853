//! Broker-wide settings. The server binary fills these from its TOML file, env vars and flags.

use std::path::PathBuf;

use porter_storage::LogConfig;

use crate::group::GroupConfig;

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
    pub groups: GroupConfig,
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
            groups: GroupConfig::default(),
        }
    }
}
