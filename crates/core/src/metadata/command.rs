//! The metadata commands. Each is small, self-contained and deterministic to apply: replaying the
//! same sequence always yields the same state.

use serde::{Deserialize, Serialize};

use crate::queue::QueueDefinition;
use crate::routing::{Binding, Exchange};
use crate::topic::{Topic, TopicConfig};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataCommand {
    CreateTopic {
        topic: Topic,
    },
    DeleteTopic {
        name: String,
        id: uuid::Uuid,
    },
    /// Reserves producer ids `[start, start + count)` for idempotent producers, so ids are
    /// never handed out twice, across restarts too.
    AllocateProducerIds {
        start: i64,
        count: i64,
    },
    /// Replaces a topic's whole override set (AlterConfigs; IncrementalAlterConfigs after the
    /// changes are merged), so applying it never depends on the state before.
    SetTopicConfig {
        name: String,
        id: uuid::Uuid,
        config: TopicConfig,
    },
    /// Grows a topic to `partitions` in total. Partition counts never shrink: a consumer's
    /// partition n must stay the same partition.
    CreatePartitions {
        name: String,
        id: uuid::Uuid,
        partitions: u32,
    },
    /// A change to a virtual host's exchanges, queues or bindings (the RabbitMQ model). The
    /// default vhost `/` exists without being declared.
    Routing {
        vhost: String,
        change: RoutingChange,
    },
    /// Replaces the dynamic broker configs of a scope (a node id, or "" for the cluster-wide
    /// default) with `config`, already checked and canonical.
    SetBrokerConfig {
        scope: String,
        config: std::collections::BTreeMap<String, String>,
    },
    /// A new, empty virtual host (predeclared `amq.*` exchanges only).
    CreateVhost {
        name: String,
    },
    /// Removes a virtual host with everything in it. The caller deletes its queues' files.
    DeleteVhost {
        name: String,
    },
    /// A change to the broker's users or their permissions.
    User {
        change: crate::users::UserChange,
    },
    /// Kafka ACLs created or deleted.
    Acl {
        change: crate::acl::AclChange,
    },
    /// A Kafka client quota set or removed.
    Quota {
        change: crate::quota::QuotaChange,
    },
    /// A vhost limit (`max-connections`, `max-queues`) set, or removed with `None`.
    VhostLimit {
        vhost: String,
        name: String,
        value: Option<i64>,
    },
}

/// One change to a [`crate::routing::RoutingTable`], applied with RabbitMQ's rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RoutingChange {
    DeclareExchange {
        exchange: Exchange,
    },
    DeleteExchange {
        name: String,
        if_unused: bool,
    },
    /// Adds the queue (its definition) and its implicit default-exchange binding.
    DeclareQueue {
        queue: QueueDefinition,
    },
    RemoveQueue {
        name: String,
    },
    Bind {
        binding: Binding,
    },
    Unbind {
        binding: Binding,
    },
}
