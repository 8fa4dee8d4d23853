//! [`AmqpConfig`]: the gateway's settings and named limits. The server binary fills them from
//! TOML, env and flags.

use std::net::SocketAddr;
use std::time::Duration;

use porter_gateway_kit::limits::{
    CONNECTION_SHARE_BYTES, MEMORY_BUDGET_BYTES, OUTBOUND_FRAMES_MAX, WRITE_STALL,
};
use porter_gateway_kit::{Deadlines, ListenerLimits};

use crate::limits::HANDSHAKE_TIMEOUT;

/// One user allowed to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    /// Only from a loopback address (RabbitMQ's rule for its default `guest` user).
    pub loopback_only: bool,
}

#[derive(Clone, Debug)]
pub struct AmqpConfig {
    pub listen: SocketAddr,
    /// Largest frame the server accepts and proposes in `connection.tune` (RabbitMQ: 131072).
    pub frame_max: u32,
    /// Channels per connection (RabbitMQ: 2047).
    pub channel_max: u16,
    /// Heartbeat interval proposed to clients, seconds; 0 disables.
    pub heartbeat_s: u16,
    /// Open connections; past it, new clients wait in the kernel's accept backlog.
    pub connections_max: usize,
    /// Largest message body accepted (RabbitMQ 3.8+: `max_message_size`, 128 MiB by default);
    /// bigger is a 406 channel error.
    pub message_bytes_max: u64,
    /// Unconfirmed publishes per channel in confirm mode: past it the connection stops reading
    /// until confirms catch up (backpressure on the publisher instead of memory here).
    pub confirms_pending_max: usize,
    /// Publishes buffered per channel in a transaction (`tx.select`) before commit.
    pub tx_publishes_max: usize,
    /// Bytes all connections hold at once (content being assembled, answers not yet written):
    /// the kit's listener budget.
    pub memory_budget_bytes: u64,
    /// Bytes one connection holds before it stops reading frames and taking deliveries.
    pub connection_share_bytes: u64,
    /// A write making no progress this long closes the connection (the client stopped
    /// reading).
    pub write_stall: Duration,
    pub users: Vec<User>,
}

impl AmqpConfig {
    /// The kit listener's limits for AMQP. No idle deadline: AMQP has heartbeats, which the
    /// connection checks itself (a client that turned them off may stay idle, as in RabbitMQ).
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        ListenerLimits {
            connections_max: self.connections_max,
            memory_budget_bytes: self.memory_budget_bytes,
            connection_share_bytes: self.connection_share_bytes,
            outbound_frames_max: OUTBOUND_FRAMES_MAX,
            deadlines: Deadlines {
                handshake: HANDSHAKE_TIMEOUT,
                write_stall: self.write_stall,
                idle: None,
            },
            drain,
            ..ListenerLimits::default()
        }
    }
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5672)),
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat_s: 60,
            connections_max: 10_000,
            message_bytes_max: 16 << 20,
            confirms_pending_max: 10_000,
            tx_publishes_max: 10_000,
            memory_budget_bytes: MEMORY_BUDGET_BYTES,
            connection_share_bytes: CONNECTION_SHARE_BYTES,
            write_stall: WRITE_STALL,
            users: vec![User {
                name: "guest".into(),
                password: "guest".into(),
                loopback_only: true,
            }],
        }
    }
}

/// The smallest frame_max the spec allows; also the limit before `connection.tune-ok`.
pub const FRAME_MIN_SIZE: u32 = 4096;
