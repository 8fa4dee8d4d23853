//! The RocketMQ gateway's settings. Every limit is named in [`crate::limits`] with its cost.

use std::net::SocketAddr;
use std::time::Duration;

use porter_gateway_kit::{Deadlines, ListenerLimits};

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
    /// Deliveries of a message to a group before it goes to the group's DLQ.
    pub max_delivery_attempts: u32,
    /// A response write that makes no progress for this long closes the connection.
    pub write_stall_ms: u64,
}

impl Default for RocketmqConfig {
    fn default() -> Self {
        RocketmqConfig {
            listen: "0.0.0.0:8081".parse().expect("valid literal"),
            body_bytes_max: limits::BODY_BYTES_MAX,
            connections_max: limits::CONNECTIONS_MAX,
            auto_create_topics: true,
            auto_create_queues: limits::AUTO_CREATE_QUEUES,
            max_delivery_attempts: limits::MAX_ATTEMPTS_DEFAULT,
            write_stall_ms: 30_000,
        }
    }
}

impl RocketmqConfig {
    /// The request size tonic decodes at most: a body plus room for properties.
    pub fn request_bytes_max(&self) -> usize {
        self.body_bytes_max + (limits::REQUEST_BYTES_MAX - limits::BODY_BYTES_MAX)
    }

    /// The listener limits these settings name. `drain` is the shutdown drain deadline.
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        ListenerLimits {
            connections_max: self.connections_max,
            deadlines: Deadlines {
                handshake: porter_gateway_kit::limits::HANDSHAKE,
                write_stall: Duration::from_millis(self.write_stall_ms.max(1)),
                idle: None,
            },
            drain,
            ..ListenerLimits::default()
        }
    }
}
