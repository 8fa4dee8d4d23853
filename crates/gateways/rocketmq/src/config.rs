//! The RocketMQ gateway's settings. Every limit is named in [`crate::limits`] with its cost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use porter_gateway_kit::ListenerLimits;

use crate::limits;

#[derive(Clone, Debug)]
pub struct RocketmqConfig {
    pub listen: SocketAddr,
    /// Largest message body (RocketMQ's `maxMessageSize`); larger is MESSAGE_BODY_TOO_LARGE.
    pub body_bytes_max: usize,
    pub connections_max: usize,
    /// Create a topic on first use (QueryRoute, SendMessage), as RocketMQ's
    /// `autoCreateTopicEnable`. Off: TOPIC_NOT_FOUND.
    pub auto_create_topics: bool,
    /// Partitions ("message queues") of an auto-created topic.
    pub auto_create_queues: u32,
    /// Accept any consumer group name (RocketMQ's `autoCreateSubscriptionGroup`). Off: only the
    /// groups under `groups` exist; others get CONSUMER_GROUP_NOT_FOUND.
    pub auto_create_groups: bool,
    /// Deliveries of a message to a group before it goes to the group's DLQ.
    pub max_delivery_attempts: u32,
    /// A response write that makes no progress for this long closes the connection.
    pub write_stall_ms: u64,
    /// How long a half message waits for its producer's verdict before the first check-back
    /// (RocketMQ's `transactionTimeOut`; a message's own recovery duration wins).
    pub transaction_check_after_ms: i64,
    /// The wait after the first check; it doubles after each further one, up to 30 s or this.
    pub transaction_check_interval_ms: i64,
    /// Checks before an unresolved half message is dropped (RocketMQ's `transactionCheckMax`).
    pub transaction_checks_max: u32,
    /// Per consumer group: its retry policy, where it differs from the defaults.
    pub groups: HashMap<String, GroupPolicy>,
    /// Every call must be signed with a user's access secret (RocketMQ's
    /// `authenticationEnabled`; see [`crate::auth`]).
    pub authentication: bool,
    /// Calls are checked against the broker's ACLs per topic and group ([`crate::authorize`]).
    pub acls: bool,
}

/// How a consumer group's failed messages are retried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupPolicy {
    /// Deliveries before the dead-letter topic; `None`: `max_delivery_attempts`.
    pub max_delivery_attempts: Option<u32>,
    pub backoff: Backoff,
}

/// The wait before a failed message is delivered again (told to clients in their settings;
/// push consumers apply it when a listener fails).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Backoff {
    /// RocketMQ's ladder: 1 s, 5 s, 10 s, 30 s, 1 m, 2 m … 2 h.
    #[default]
    Ladder,
    Exponential {
        initial_ms: u64,
        max_ms: u64,
        multiplier: f32,
    },
}

impl Default for RocketmqConfig {
    fn default() -> Self {
        RocketmqConfig {
            listen: "0.0.0.0:8081".parse().expect("valid literal"),
            body_bytes_max: limits::BODY_BYTES_MAX,
            connections_max: limits::CONNECTIONS_MAX,
            auto_create_topics: true,
            auto_create_queues: limits::AUTO_CREATE_QUEUES,
            auto_create_groups: true,
            max_delivery_attempts: limits::MAX_ATTEMPTS_DEFAULT,
            write_stall_ms: 30_000,
            transaction_check_after_ms:
                porter_core::transaction::TRANSACTION_CHECK_AFTER_MS_DEFAULT,
            transaction_check_interval_ms:
                porter_core::transaction::TRANSACTION_CHECK_INTERVAL_MS_DEFAULT,
            transaction_checks_max: porter_core::transaction::TRANSACTION_CHECKS_MAX,
            groups: HashMap::new(),
            authentication: false,
            acls: false,
        }
    }
}

impl RocketmqConfig {
    /// Deliveries of a message to `group` before it is dead-lettered.
    pub fn max_attempts(&self, group: &str) -> u32 {
        self.groups
            .get(group)
            .and_then(|p| p.max_delivery_attempts)
            .unwrap_or(self.max_delivery_attempts)
            .max(1)
    }

    /// The request size tonic decodes at most: a body plus room for properties.
    pub fn request_bytes_max(&self) -> usize {
        self.body_bytes_max + (limits::REQUEST_BYTES_MAX - limits::BODY_BYTES_MAX)
    }

    /// The listener limits these settings name. `drain` is the shutdown drain deadline.
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        ListenerLimits::with_connections(
            self.connections_max,
            Duration::from_millis(self.write_stall_ms.max(1)),
            drain,
        )
    }
}
