//! The MQTT gateway's settings. Every limit is named in [`crate::limits`] with its cost.

use std::net::SocketAddr;
use std::time::Duration;

use porter_gateway_kit::{Deadlines, ListenerLimits};

use crate::limits;

#[derive(Clone, Debug)]
pub struct MqttConfig {
    pub listen: SocketAddr,
    /// The virtual host MQTT sessions, subscriptions and publishes live in.
    pub vhost: String,
    /// The exchange MQTT publishes through and subscriptions bind to (RabbitMQ's
    /// `mqtt.exchange`).
    pub exchange: String,
    pub connections_max: usize,
    pub packet_bytes_max: usize,
    pub inflight_max: u16,
    pub receive_max: u16,
    pub session_queue_max: u32,
    pub topic_levels_max: usize,
    pub topic_alias_max: u16,
    pub subscriptions_max: usize,
    pub session_expiry_max_secs: u32,
    pub keep_alive_max_secs: u16,
    /// Interval of the `$SYS/broker/...` statistics (retained); 0 turns them off.
    pub sys_interval_secs: u64,
    /// A write that makes no progress for this long closes the connection.
    pub write_stall_ms: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            listen: "0.0.0.0:1883".parse().expect("valid literal"),
            vhost: "/".to_string(),
            exchange: "amq.topic".to_string(),
            connections_max: limits::CONNECTIONS_MAX,
            packet_bytes_max: limits::PACKET_BYTES_MAX,
            inflight_max: limits::INFLIGHT_MAX,
            receive_max: limits::RECEIVE_MAX,
            session_queue_max: limits::SESSION_QUEUE_MAX,
            topic_levels_max: limits::TOPIC_LEVELS_MAX,
            topic_alias_max: limits::TOPIC_ALIAS_MAX,
            subscriptions_max: limits::SUBSCRIPTIONS_MAX,
            session_expiry_max_secs: limits::SESSION_EXPIRY_MAX_SECS,
            keep_alive_max_secs: limits::KEEP_ALIVE_MAX_SECS,
            sys_interval_secs: 10,
            write_stall_ms: 30_000,
        }
    }
}

impl MqttConfig {
    /// The listener limits these settings name. `drain` is the shutdown drain deadline. Idle
    /// connections are the keep-alive's business, not the kit's idle deadline.
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        ListenerLimits {
            connections_max: self.connections_max,
            deadlines: Deadlines {
                handshake: porter_gateway_kit::limits::HANDSHAKE,
                write_stall: Duration::from_millis(self.write_stall_ms.max(1)),
                idle: None,
            },
            drain,
            outbound_frames_max: limits::OUTBOUND_WRITES_MAX,
            ..ListenerLimits::default()
        }
    }
}
