//! Broker configs changed while the broker runs (Kafka's dynamic broker configs: AlterConfigs on
//! a BROKER resource, for one broker or, with an empty name, as the cluster-wide default).
//!
//! Porter takes the topic defaults among them (`log.retention.ms`, `log.segment.bytes`,
//! `compression.type`, … — the broker-side names of the topic configs a log runs with) and
//! applies a change at once to every topic that does not override the key; and Kafka's `sasl.*`
//! listener settings, which it stores and reports but which do nothing until Porter has SASL.
//! Everything else is static (config file, environment, flags, then a restart), refused as Kafka
//! refuses a key it can't change while running.

use std::collections::BTreeMap;
use std::sync::Arc;

use porter_storage::LogConfig;

use super::{run_blocking, Broker};
use crate::config::{ConfigEntry, ConfigKind, ConfigSource, ConfigSynonym};
use crate::error::{CoreError, Result};
use crate::metadata::MetadataCommand;
use crate::topic::config_keys::{self, Held, TOPIC_CONFIGS};
use crate::topic::TopicConfig;

/// The scope of dynamic broker configs that applies to every broker (Kafka's empty name).
pub const CLUSTER_DEFAULT: &str = "";

/// Dynamic broker configs by scope, then key.
type Scopes = BTreeMap<String, BTreeMap<String, String>>;

/// What a dynamic broker config key is in Porter.
enum DynamicKey {
    /// The broker-wide default of this topic config.
    TopicDefault(&'static str),
    /// A setting stored and reported, without effect in Porter yet.
    Stored,
}

fn dynamic_key(key: &str) -> Option<DynamicKey> {
    if let Some(spec) = TOPIC_CONFIGS
        .iter()
        .find(|k| k.broker_name == key && k.held == Held::Log)
    {
        return Some(DynamicKey::TopicDefault(spec.name));
    }
    key.starts_with("sasl.").then_some(DynamicKey::Stored)
}

/// Checks a dynamic broker config and returns its value in canonical form.
pub fn canonical(key: &str, value: &str) -> Result<String> {
    match dynamic_key(key) {
        Some(DynamicKey::TopicDefault(topic_key)) => config_keys::canonical(topic_key, value)
            .map_err(|e| match e {
                CoreError::InvalidConfig { value, reason, .. } => CoreError::InvalidConfig {
                    key: key.to_string(),
                    value,
                    reason,
                },
                other => other,
            }),
        Some(DynamicKey::Stored) => Ok(value.trim().to_string()),
        None => Err(CoreError::NotDynamic(key.to_string())),
    }
}

/// The log defaults with the dynamic configs applied: the cluster default scope first, then
/// this broker's.
pub fn effective_log_defaults(
    configured: &LogConfig,
    scopes: &Scopes,
    node_scope: &str,
) -> LogConfig {
    let mut log = configured.clone();
    for scope in [CLUSTER_DEFAULT, node_scope] {
        for (key, value) in scopes.get(scope).into_iter().flatten() {
            if let Some(DynamicKey::TopicDefault(topic_key)) = dynamic_key(key) {
                if let Err(e) = config_keys::apply(&mut log, topic_key, value) {
                    tracing::warn!(%key, %value, error = %e, "ignoring invalid stored broker config");
                }
            }
        }
    }
    log
}

impl Broker {
    /// The topic defaults in force: the configured ones with the dynamic broker configs applied.
    pub fn log_defaults(&self) -> LogConfig {
        self.log_defaults.read().clone()
    }

    /// The dynamic broker configs of `scope` ([`CLUSTER_DEFAULT`] or this broker's id).
    pub fn dynamic_config(&self, scope: &str) -> BTreeMap<String, String> {
        self.metadata
            .lock()
            .state()
            .broker_configs
            .get(scope)
            .cloned()
            .unwrap_or_default()
    }

    /// Computes `scope`'s new dynamic config set from its current one with `change`, checks
    /// every key and value, journals it, and applies the new topic defaults to every open log
    /// that does not override them. With `validate_only`, nothing changes.
    pub async fn update_broker_config<F>(
        self: &Arc<Self>,
        scope: &str,
        validate_only: bool,
        change: F,
    ) -> Result<()>
    where
        F: FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>> + Send + 'static,
    {
        if self.shutdown.is_cancelled() {
            return Err(CoreError::ShuttingDown);
        }
        let this = self.clone();
        let scope = scope.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            let current = metadata
                .state()
                .broker_configs
                .get(&scope)
                .cloned()
                .unwrap_or_default();
            let mut config = BTreeMap::new();
            for (key, value) in change(&current)? {
                let value = canonical(&key, &value)?;
                config.insert(key, value);
            }
            if validate_only {
                return Ok(());
            }
            metadata.submit(MetadataCommand::SetBrokerConfig {
                scope: scope.clone(),
                config: config.clone(),
            })?;
            let defaults = effective_log_defaults(
                &this.config.log_defaults,
                &metadata.state().broker_configs,
                &this.node_scope,
            );
            *this.log_defaults.write() = defaults.clone();
            for handle in this.topics() {
                let log_config = handle.topic.config.log_config(&defaults);
                for partition in &handle.partitions {
                    partition.set_log_config(log_config.clone());
                }
            }
            tracing::info!(scope = %scope, ?config, "dynamic broker config changed");
            Ok(())
        })
        .await
    }
}

impl Broker {
    /// A topic's configs as DescribeConfigs reports them: its overrides, then the dynamic broker
    /// configs, then the static ones, then Porter's defaults.
    pub fn describe_topic_config(&self, config: &TopicConfig) -> Vec<ConfigEntry> {
        let mut entries = config.describe(&self.config.log_defaults);
        let scopes = self.metadata.lock().state().broker_configs.clone();
        for entry in &mut entries {
            let Some(spec) = config_keys::topic_config_key(&entry.name) else {
                continue;
            };
            self.add_dynamic_synonyms(&scopes, entry, spec.broker_name);
        }
        entries
    }

    /// This broker's configs as DescribeConfigs reports them: the static ones, with what the
    /// dynamic configs set in front, plus the stored-only dynamic keys. Keys that can change
    /// while running are not read-only.
    pub fn describe_broker_config(&self) -> Vec<ConfigEntry> {
        let mut entries = self.config.describe();
        let scopes = self.metadata.lock().state().broker_configs.clone();
        for entry in &mut entries {
            if dynamic_key(&entry.name).is_some() {
                entry.read_only = false;
                let name = entry.name.clone();
                self.add_dynamic_synonyms(&scopes, entry, &name);
            }
        }
        for scope in [self.node_scope.as_str(), CLUSTER_DEFAULT] {
            for (key, value) in scopes.get(scope).into_iter().flatten() {
                if matches!(dynamic_key(key), Some(DynamicKey::Stored))
                    && !entries.iter().any(|e| &e.name == key)
                {
                    let mut entry = ConfigEntry {
                        name: key.clone(),
                        value: value.clone(),
                        source: ConfigSource::Default,
                        kind: ConfigKind::String,
                        doc: "Stored and reported; no effect until Porter has SASL",
                        read_only: false,
                        synonyms: Vec::new(),
                    };
                    self.add_dynamic_synonyms(&scopes, &mut entry, key);
                    entries.push(entry);
                }
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// The dynamic configs set as every broker's default, as DescribeConfigs reports the
    /// cluster-default broker resource.
    pub fn describe_cluster_default_config(&self) -> Vec<ConfigEntry> {
        self.dynamic_config(CLUSTER_DEFAULT)
            .into_iter()
            .map(|(name, value)| ConfigEntry {
                synonyms: vec![ConfigSynonym {
                    name: name.clone(),
                    value: value.clone(),
                    source: ConfigSource::DynamicDefaultBroker,
                }],
                name,
                value,
                source: ConfigSource::DynamicDefaultBroker,
                kind: ConfigKind::String,
                doc: "",
                read_only: false,
            })
            .collect()
    }

    /// Puts the dynamic values of `broker_key` (this broker's, then the cluster default) among
    /// `entry`'s synonyms, after a topic override, and makes the first synonym the value.
    fn add_dynamic_synonyms(&self, scopes: &Scopes, entry: &mut ConfigEntry, broker_key: &str) {
        let at = entry
            .synonyms
            .iter()
            .take_while(|s| s.source == ConfigSource::TopicOverride)
            .count();
        let dynamic = [
            (self.node_scope.as_str(), ConfigSource::DynamicBroker),
            (CLUSTER_DEFAULT, ConfigSource::DynamicDefaultBroker),
        ];
        let mut found: Vec<ConfigSynonym> = dynamic
            .into_iter()
            .filter_map(|(scope, source)| {
                let value = scopes.get(scope)?.get(broker_key)?;
                Some(ConfigSynonym {
                    name: broker_key.to_string(),
                    value: value.clone(),
                    source,
                })
            })
            .collect();
        if found.is_empty() {
            return;
        }
        entry.synonyms.splice(at..at, found.drain(..));
        entry.value = entry.synonyms[0].value.clone();
        entry.source = entry.synonyms[0].source;
    }
}
