//! [`StompConfig`]: the gateway's settings and named limits. The server binary fills them from
//! TOML (`[stomp]`), env and flags.

use std::net::SocketAddr;
use std::time::Duration;

use porter_gateway_kit::limits::{
    CONNECTION_SHARE_BYTES, MEMORY_BUDGET_BYTES, OUTBOUND_FRAMES_MAX,
};
use porter_gateway_kit::{Deadlines, ListenerLimits};

use crate::frame::FrameLimits;
use crate::limits::{HANDSHAKE_TIMEOUT, HEARTBEAT_MIN};

#[derive(Clone, Debug)]
pub struct StompConfig {
    pub listen: SocketAddr,
    /// Largest frame (command, headers and body) accepted; a bigger one is an ERROR.
    pub frame_bytes_max: usize,
    /// Headers per frame.
    pub headers_max: usize,
    /// Bytes of one header line (and of the command line).
    pub header_line_bytes_max: usize,
    /// Subscriptions one connection holds at once.
    pub subscriptions_max: usize,
    /// Transactions one connection has open at once.
    pub transactions_max: usize,
    /// SEND / ACK / NACK frames buffered in one transaction before COMMIT.
    pub transaction_frames_max: usize,
    /// Bytes of frames buffered in all of a connection's open transactions.
    pub transaction_bytes_max: usize,
    /// Unacknowledged messages of an acknowledging subscription that sent no
    /// `prefetch-count` (`0`: unlimited, as RabbitMQ; a bound keeps a client that never acks
    /// from pinning an unbounded number of deliveries).
    pub prefetch_default: u16,
    /// Open connections (the kit listener's limit); past it, new clients wait in the backlog.
    pub connections_max: usize,
    /// From accept to CONNECTED.
    pub handshake_timeout: Duration,
    /// Shortest heart-beat interval honoured, either way: the server sends beats as often as
    /// the client asks and expects them as often as it offers, down to this.
    pub heartbeat_min: Duration,
    /// A write making no progress this long closes the connection.
    pub write_stall: Duration,
    /// The user a CONNECT without `login` runs as (RabbitMQ's `default_user`); `None`
    /// refuses such clients.
    pub default_user: Option<String>,
}

impl StompConfig {
    pub fn frame_limits(&self) -> FrameLimits {
        FrameLimits {
            frame_bytes_max: self.frame_bytes_max,
            headers_max: self.headers_max,
            header_line_bytes_max: self.header_line_bytes_max,
        }
    }

    /// The kit listener's limits for STOMP. No idle deadline: STOMP has heart-beats, which the
    /// connection checks itself (a client without them may stay idle, as in RabbitMQ).
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        ListenerLimits {
            connections_max: self.connections_max,
            memory_budget_bytes: MEMORY_BUDGET_BYTES,
            connection_share_bytes: CONNECTION_SHARE_BYTES,
            outbound_frames_max: OUTBOUND_FRAMES_MAX,
            deadlines: Deadlines {
                handshake: self.handshake_timeout,
                write_stall: self.write_stall,
                idle: None,
            },
            drain,
            ..ListenerLimits::default()
        }
    }
}

impl Default for StompConfig {
    fn default() -> Self {
        StompConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 61613)),
            frame_bytes_max: 4 << 20,
            headers_max: 100,
            header_line_bytes_max: 8 << 10,
            subscriptions_max: 1024,
            transactions_max: 16,
            transaction_frames_max: 10_000,
            transaction_bytes_max: 16 << 20,
            prefetch_default: 1_000,
            connections_max: 10_000,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            heartbeat_min: HEARTBEAT_MIN,
            write_stall: porter_gateway_kit::limits::WRITE_STALL,
            default_user: Some("guest".into()),
        }
    }
}
