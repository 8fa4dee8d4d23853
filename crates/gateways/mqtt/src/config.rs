//! The MQTT gateway's settings. Every limit is named in [`crate::limits`] with its cost.

use std::net::SocketAddr;
use std::time::Duration;

use porter_gateway_kit::ListenerLimits;

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
    /// Who may connect without a user name (when the broker checks logins).
    pub anonymous: Anonymous,
}

/// Which clients may CONNECT without a user name and password. RabbitMQ lets them in as its
/// loopback-only `guest`, Mosquitto 2 only on a loopback listener: by default Porter, too,
/// takes them from loopback addresses only, so a laptop needs no login and a network does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anonymous {
    #[default]
    Loopback,
    /// From anywhere (Mosquitto's `allow_anonymous true`).
    Any,
    /// Never: every client logs in.
    Refused,
}

impl Anonymous {
    pub fn from_name(name: &str) -> Option<Anonymous> {
        match name {
            "loopback" => Some(Anonymous::Loopback),
            "any" => Some(Anonymous::Any),
            "none" => Some(Anonymous::Refused),
            _ => None,
        }
    }

    /// Whether a client at `peer` may connect without logging in.
    pub fn allows(self, peer: std::net::IpAddr) -> bool {
        match self {
            Anonymous::Loopback => peer.is_loopback(),
            Anonymous::Any => true,
            Anonymous::Refused => false,
        }
    }
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
            anonymous: Anonymous::default(),
        }
    }
}

impl MqttConfig {
    /// The listener limits these settings name. `drain` is the shutdown drain deadline. Idle
    /// connections are the keep-alive's business, not the kit's idle deadline.
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        ListenerLimits {
            outbound_frames_max: limits::OUTBOUND_WRITES_MAX,
            ..ListenerLimits::with_connections(
                self.connections_max,
                Duration::from_millis(self.write_stall_ms.max(1)),
                drain,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Anonymous;

    #[test]
    fn anonymous_clients_are_let_in_by_address() {
        let loopback = "127.0.0.1".parse().unwrap();
        let remote = "192.0.2.7".parse().unwrap();
        let ipv6_loopback = "::1".parse().unwrap();
        assert!(Anonymous::default().allows(loopback));
        assert!(Anonymous::default().allows(ipv6_loopback));
        assert!(!Anonymous::default().allows(remote));
        assert!(Anonymous::Any.allows(remote));
        assert!(!Anonymous::Refused.allows(loopback));
        assert_eq!(Anonymous::from_name("none"), Some(Anonymous::Refused));
        assert_eq!(Anonymous::from_name("everyone"), None);
    }
}
