//! porter-core: the broker's protocol-agnostic model. Gateways (Kafka today; AMQP, MQTT, STOMP, HTTP
//! later) call into it; it calls `porter-storage`. Nothing here knows a wire format.
//!
//! - [`bridge`]: exchange → Kafka topic and Kafka topic → exchange bridges, so MQTT, AMQP and
//!   STOMP messages reach Kafka readers and back.
//! - [`broker`]: the [`Broker`], entry point for gateways: topics, produce, read, lifecycle.
//! - [`commit`]: the commit seam: writer threads that append and fsync off the reactor, and
//!   the one place that decides when a write is committed (today the flush mode, later a quorum).
//! - [`partition`]: one partition of a topic, an async face over a storage `Log`.
//! - [`producer_state`]: idempotent producers: sequence checks, duplicate detection.
//! - [`topic`]: topic names and per-topic configuration (Kafka config names, Porter defaults).
//! - [`group`]: consumer groups: membership, rebalancing, durable committed offsets.
//! - [`metadata`]: metadata changes as commands applied to a state machine, persisted in a
//!   CRC-checked journal with snapshots, so a later Raft layer can replicate the same commands.
//! - [`routing`]: exchanges, bindings and routing decisions after AMQP 0-9-1 (RabbitMQ's model),
//!   neutral so other protocols can route through the same graph.
//! - [`queue`]: a queue's delivery state over its log: consumers, fair dispatch, acks, requeues,
//!   settled ranges persisted as ack records and restored after a crash.
//! - [`topic_message`]: a message on a topic with tag, keys, id, FIFO group and delivery time,
//!   stored as a plain Kafka record with RocketMQ's property names as headers.
//! - [`topic_publish`]: sends [`topic_message::TopicMessage`]s to a topic's partitions.
//! - [`topic_records`]: plain Kafka records produced and browsed by what is not a Kafka client
//!   (STOMP, the management API): Kafka's key partitioner, start positions, bounded pages.
//! - [`pop`]: pop consumption (receive with an invisible duration, ack, redelivery with
//!   attempts, dead letters, FIFO message groups) over a topic, per consumer group.
//! - [`lookup`]: finding a topic message by key or id within a time range.
//! - [`message`]: the protocol-neutral message (body + properties) and its record encoding.
//! - [`transaction`]: transactional (half) messages as RocketMQ has them: durable until the
//!   producer commits or rolls back, checked back with backoff, dropped after too many checks.
//! - [`keyed_store`]: the latest record per key on a compacted internal topic, in memory within
//!   named limits (retained messages, MQTT session state).
//! - [`retained`]: the last retained message per topic (MQTT), durable on a compacted internal
//!   topic, held in memory within named limits.
//! - [`users`]: users with SCRAM password credentials, RabbitMQ's tags and per-vhost
//!   permissions, kept as metadata commands.
//! - [`vhost`]: [`VirtualHost`], the gateways' entry to exchanges, queues and publishing.
//! - [`publish`]: the publish pipeline every gateway shares: route → append (encoded once, one
//!   append per queue per burst) → commit-wait → acknowledge.
//! - [`filter`]: broker-side message filtering as RocketMQ does it: tag expressions and SQL92
//!   conditions over message properties, compiled once and matched per message.
//! - [`delayed`]: delayed messages to a topic or an exchange, held in the timer store until due.
//! - [`timer`]: durable delayed delivery (timers in a log plus per-time-bucket index files),
//!   for delay messages and delayed exchanges of any protocol.
//! - [`alarm`]: memory and disk alarms that block publishers (RabbitMQ's `connection.blocked`).
//! - [`config`]: the broker-wide settings the server binary fills in.
//! - [`error`]: [`CoreError`] and its neutral [`ErrorKind`](error::ErrorKind), the one error type
//!   gateways map to their protocol's codes.
//! - [`limits`]: every named limit of the core in one place, with the worst cases they add up to.

pub mod acl;
pub mod alarm;
pub mod bridge;
pub mod broker;
pub mod commit;
pub mod config;
pub mod delayed;
pub mod error;
pub mod filter;
pub mod group;
pub mod hex;
pub mod history;
pub mod keyed_store;
pub mod limits;
pub mod lookup;
pub mod message;
pub mod metadata;
pub mod partition;
pub mod pop;
pub mod producer_state;
pub mod publish;
pub mod queue;
pub mod quota;
pub mod retained;
pub mod routing;
pub mod timer;
pub mod topic;
pub mod topic_message;
pub mod topic_publish;
pub mod topic_records;
pub mod transaction;
pub mod users;
pub mod vhost;
pub mod vhost_limits;

pub use broker::{Broker, QueueSnapshot};
pub use config::BrokerConfig;
pub use error::CoreError;
pub use partition::Partition;
pub use partition::{Appended, BatchRegion, Batches, StoredBatches};
/// Offsets are plain integers; the flush mode and log settings are the broker-wide storage
/// defaults the server fills into [`BrokerConfig`].
pub use porter_storage::{FlushMode, LogConfig, Offset};
pub use topic::{Topic, TopicConfig};
pub use vhost::VirtualHost;
