//! The state the metadata commands build: today the topics (with their configs and partition
//! counts) and the producer-id watermark; queues, exchanges, bindings and
//! consumer groups join it as commands of their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::MetadataCommand;
use super::command::RoutingChange;
use crate::error::{CoreError, Result};
use crate::queue::QueueDefinition;
use crate::routing::{Destination, RoutingError, RoutingTable};
use crate::topic::{Topic, TOPIC_PARTITIONS_MAX};

/// The virtual host that exists without being declared, as in RabbitMQ.
pub const DEFAULT_VHOST: &str = "/";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    pub topics: BTreeMap<String, Topic>,
    /// The first producer id not yet reserved.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Exchanges, queues and bindings per virtual host.
    #[serde(default)]
    pub vhosts: BTreeMap<String, RoutingTable>,
    /// Queue definitions per virtual host (the routing table holds only their names).
    /// Persistent maps, like the routing tables: cloning the state for a snapshot is O(1), so
    /// the metadata lock is not held for a copy of 10k definitions.
    #[serde(default)]
    pub queues: BTreeMap<String, imbl::OrdMap<String, QueueDefinition>>,
    /// Dynamic broker configs by scope: a node id, or "" for the cluster-wide default.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Users, their credentials, tags and permissions.
    #[serde(default)]
    pub users: crate::users::Users,
    /// Kafka ACLs.
    #[serde(default)]
    pub acls: crate::acl::Acls,
    /// Kafka client quotas.
    #[serde(default)]
    pub quotas: crate::quota::ClientQuotas,
    /// RabbitMQ's vhost limits, by vhost.
    #[serde(default)]
    pub vhost_limits: BTreeMap<String, crate::vhost_limits::VhostLimits>,
}

impl MetadataState {
    /// Whether `command` can be applied to this state. Checked before the command is journaled.
    pub fn check(&self, command: &MetadataCommand) -> Result<()> {
        match command {
            MetadataCommand::CreateVhost { name } => {
                if name.is_empty() || name.len() > 255 {
                    return Err(CoreError::Precondition(format!(
                        "invalid virtual host name {name:?}"
                    )));
                }
                if self.vhost_exists(name) {
                    return Err(CoreError::Precondition(format!(
                        "virtual host {name:?} exists"
                    )));
                }
                Ok(())
            }
            MetadataCommand::DeleteVhost { name } => {
                if !self.vhost_exists(name) {
                    return Err(CoreError::Routing(RoutingError::VhostNotFound(
                        name.clone(),
                    )));
                }
                Ok(())
            }
            MetadataCommand::Routing { vhost, change } => {
                // A queue's declare checks only its name and a removal nothing: no need to try
                // them on a copy of the table.
                match change {
                    RoutingChange::DeclareQueue { queue } if self.vhosts.contains_key(vhost) => {
                        let max = self.vhost_limits.get(vhost).and_then(|l| l.max_queues);
                        let queues = self.queues.get(vhost);
                        let exists = queues.is_some_and(|q| q.contains_key(&queue.name));
                        if let Some(max) = max.filter(|_| !exists) {
                            if queues.map_or(0, |q| q.len()) as u64 >= max {
                                return Err(CoreError::Precondition(format!(
                                    "cannot declare queue '{}' in vhost '{vhost}': queue limit ({max}) is reached",
                                    queue.name
                                )));
                            }
                        }
                        return RoutingTable::new()
                            .add_queue(&queue.name)
                            .map(drop)
                            .map_err(CoreError::Routing);
                    }
                    RoutingChange::RemoveQueue { .. } if self.vhosts.contains_key(vhost) => {
                        return Ok(());
                    }
                    _ => {}
                }
                let mut table = match self.vhosts.get(vhost) {
                    Some(table) => table.clone(),
                    None if vhost == DEFAULT_VHOST => RoutingTable::new(),
                    None => {
                        return Err(CoreError::Routing(RoutingError::VhostNotFound(
                            vhost.clone(),
                        )))
                    }
                };
                // Every routing change is validated fully before it mutates, so trying it on a
                // copy is the check; apply() then repeats it on the real table. The table is
                // structurally shared, so the copy is O(1) and the trial O(log n)
                // (tests/routing_copies.rs counts it).
                apply_routing(&mut table, change.clone()).map_err(CoreError::Routing)
            }
            MetadataCommand::CreateTopic { topic } => {
                crate::topic::validate_topic_name(&topic.name)?;
                if self.topics.contains_key(&topic.name) {
                    return Err(CoreError::TopicExists(topic.name.clone()));
                }
                Ok(())
            }
            MetadataCommand::DeleteTopic { name, id } => match self.topics.get(name) {
                Some(topic) if topic.id == *id => Ok(()),
                _ => Err(CoreError::UnknownTopic(name.clone())),
            },
            MetadataCommand::AllocateProducerIds { start, count } => {
                if *start != self.next_producer_id || *count <= 0 {
                    return Err(CoreError::Metadata(format!(
                        "producer id block {start}+{count} does not follow {}",
                        self.next_producer_id
                    )));
                }
                Ok(())
            }
            MetadataCommand::SetTopicConfig { name, id, config } => {
                self.topic(name, *id)?;
                config.validate()
            }
            MetadataCommand::SetBrokerConfig { config, .. } => {
                for (key, value) in config {
                    crate::broker::dynamic_config::canonical(key, value)?;
                }
                Ok(())
            }
            MetadataCommand::User { change } => self.users.check(change),
            MetadataCommand::Acl { change } => self.acls.check(change),
            MetadataCommand::Quota { change } => self.quotas.check(change),
            MetadataCommand::VhostLimit { vhost, name, value } => {
                if vhost != DEFAULT_VHOST && !self.vhosts.contains_key(vhost) {
                    return Err(CoreError::Routing(RoutingError::VhostNotFound(
                        vhost.clone(),
                    )));
                }
                let mut limits = self.vhost_limits.get(vhost).copied().unwrap_or_default();
                limits.set(name, *value)
            }
            MetadataCommand::CreatePartitions {
                name,
                id,
                partitions,
            } => {
                let topic = self.topic(name, *id)?;
                if *partitions <= topic.partitions || *partitions > TOPIC_PARTITIONS_MAX {
                    return Err(CoreError::InvalidPartitions(*partitions as i64));
                }
                Ok(())
            }
        }
    }

    /// Whether `name` exists: `/` always does (until deleted, it is implicit).
    /// Whether `command` only touches what the broker removes at start anyway: non-durable or
    /// exclusive queues, non-durable exchanges, and bindings to or from them. Losing such a
    /// command in a crash loses nothing a restart would have kept.
    pub fn is_transient(&self, command: &MetadataCommand) -> bool {
        let MetadataCommand::Routing { vhost, change } = command else {
            return false;
        };
        let queue_transient = |name: &str| {
            self.queues
                .get(vhost)
                .and_then(|queues| queues.get(name))
                .is_some_and(|q| !q.durable || q.exclusive_owner.is_some())
        };
        let exchange_transient = |name: &str| {
            self.vhosts
                .get(vhost)
                .and_then(|table| table.exchange(name))
                .is_some_and(|e| !e.durable)
        };
        match change {
            RoutingChange::DeclareQueue { queue } => {
                !queue.durable || queue.exclusive_owner.is_some()
            }
            RoutingChange::RemoveQueue { name } => queue_transient(name),
            RoutingChange::DeclareExchange { exchange } => !exchange.durable,
            RoutingChange::DeleteExchange { name, .. } => exchange_transient(name),
            RoutingChange::Bind { binding } | RoutingChange::Unbind { binding } => {
                exchange_transient(&binding.source)
                    || match &binding.destination {
                        Destination::Queue(queue) => queue_transient(queue),
                        Destination::Exchange(exchange) => exchange_transient(exchange),
                    }
            }
        }
    }

    pub fn vhost_exists(&self, name: &str) -> bool {
        self.vhosts.contains_key(name) || name == DEFAULT_VHOST
    }

    /// The definition of queue `name` in `vhost`.
    pub fn queue(&self, vhost: &str, name: &str) -> Option<&QueueDefinition> {
        self.queues.get(vhost).and_then(|queues| queues.get(name))
    }

    /// The live topic `name` if it is the incarnation `id`.
    fn topic(&self, name: &str, id: uuid::Uuid) -> Result<&Topic> {
        match self.topics.get(name) {
            Some(topic) if topic.id == id => Ok(topic),
            _ => Err(CoreError::UnknownTopic(name.to_string())),
        }
    }

    /// Applies a checked command. Must not fail: replay depends on it.
    pub fn apply(&mut self, command: MetadataCommand) {
        match command {
            MetadataCommand::Routing { vhost, change } => {
                let queues = self.queues.entry(vhost.clone()).or_default();
                match &change {
                    RoutingChange::DeclareQueue { queue } => {
                        queues.insert(queue.name.clone(), queue.clone());
                    }
                    RoutingChange::RemoveQueue { name } => {
                        queues.remove(name);
                    }
                    _ => {}
                }
                let table = self.vhosts.entry(vhost).or_default();
                apply_routing(table, change).expect("checked: the change applies");
            }
            MetadataCommand::CreateVhost { name } => {
                self.vhosts.insert(name, RoutingTable::new());
            }
            MetadataCommand::DeleteVhost { name } => {
                self.vhosts.remove(&name);
                self.queues.remove(&name);
                self.users.forget_vhost(&name);
            }
            MetadataCommand::User { change } => self.users.apply(change),
            MetadataCommand::Acl { change } => self.acls.apply(change),
            MetadataCommand::Quota { change } => self.quotas.apply(change),
            MetadataCommand::VhostLimit { vhost, name, value } => {
                let limits = self.vhost_limits.entry(vhost.clone()).or_default();
                // Checked already: the name is known.
                let _ = limits.set(&name, value);
                if limits.is_empty() {
                    self.vhost_limits.remove(&vhost);
                }
            }
            MetadataCommand::CreateTopic { topic } => {
                self.topics.insert(topic.name.clone(), topic);
            }
            MetadataCommand::DeleteTopic { name, .. } => {
                self.topics.remove(&name);
            }
            MetadataCommand::AllocateProducerIds { start, count } => {
                self.next_producer_id = start + count;
            }
            MetadataCommand::SetBrokerConfig { scope, config } => {
                if config.is_empty() {
                    self.broker_configs.remove(&scope);
                } else {
                    self.broker_configs.insert(scope, config);
                }
            }
            MetadataCommand::SetTopicConfig { name, config, .. } => {
                let topic = self
                    .topics
                    .get_mut(&name)
                    .expect("checked: the topic exists");
                topic.config = config;
            }
            MetadataCommand::CreatePartitions {
                name, partitions, ..
            } => {
                let topic = self
                    .topics
                    .get_mut(&name)
                    .expect("checked: the topic exists");
                assert!(partitions > topic.partitions, "partition counts only grow");
                topic.partitions = partitions;
            }
        }
    }
}

fn apply_routing(table: &mut RoutingTable, change: RoutingChange) -> Result<(), RoutingError> {
    match change {
        RoutingChange::DeclareExchange { exchange } => table.declare_exchange(exchange).map(drop),
        RoutingChange::DeleteExchange { name, if_unused } => {
            table.delete_exchange(&name, if_unused).map(drop)
        }
        RoutingChange::DeclareQueue { queue } => table.add_queue(&queue.name).map(drop),
        RoutingChange::RemoveQueue { name } => {
            table.remove_queue(&name);
            Ok(())
        }
        RoutingChange::Bind { binding } => table.bind(binding).map(drop),
        RoutingChange::Unbind { binding } => table.unbind(&binding).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::TopicConfig;

    fn with_topic() -> (MetadataState, uuid::Uuid) {
        let mut state = MetadataState::default();
        let id = uuid::Uuid::new_v4();
        let command = MetadataCommand::CreateTopic {
            topic: Topic {
                name: "t".into(),
                id,
                partitions: 3,
                config: TopicConfig::default(),
            },
        };
        state.check(&command).unwrap();
        state.apply(command);
        (state, id)
    }

    #[test]
    fn partition_counts_only_grow() {
        let (mut state, id) = with_topic();
        let grow = |partitions| MetadataCommand::CreatePartitions {
            name: "t".into(),
            id,
            partitions,
        };
        assert!(state.check(&grow(3)).is_err());
        assert!(state.check(&grow(2)).is_err());
        assert!(state.check(&grow(TOPIC_PARTITIONS_MAX + 1)).is_err());
        let stale = MetadataCommand::CreatePartitions {
            name: "t".into(),
            id: uuid::Uuid::new_v4(),
            partitions: 6,
        };
        assert!(
            state.check(&stale).is_err(),
            "another incarnation of the name"
        );
        state.check(&grow(6)).unwrap();
        state.apply(grow(6));
        assert_eq!(state.topics["t"].partitions, 6);
    }

    #[test]
    fn set_topic_config_replaces_the_whole_override_set() {
        let (mut state, id) = with_topic();
        let set = |pairs: &[(&str, &str)]| MetadataCommand::SetTopicConfig {
            name: "t".into(),
            id,
            config: TopicConfig::from_pairs(pairs.iter().copied()).unwrap(),
        };
        state.apply(set(&[("retention.ms", "1"), ("flush", "never")]));
        let command = set(&[("segment.ms", "10")]);
        state.check(&command).unwrap();
        state.apply(command);
        assert_eq!(
            state.topics["t"].config,
            TopicConfig::from_pairs([("segment.ms", "10")]).unwrap()
        );
        // A hand-made invalid override set is refused before it reaches the journal.
        let mut bad = TopicConfig::default();
        bad.overrides.insert("retention.ms".into(), "soon".into());
        let command = MetadataCommand::SetTopicConfig {
            name: "t".into(),
            id,
            config: bad,
        };
        assert!(state.check(&command).is_err());
    }
}
