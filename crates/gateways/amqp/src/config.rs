//! [`AmqpConfig`]: the gateway's settings and named limits. The server binary fills them from
//! TOML, env and flags.

use std::net::SocketAddr;

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
    pub users: Vec<User>,
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
