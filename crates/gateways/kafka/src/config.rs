//! The Kafka gateway's addresses and limits. Every limit is named here with its cost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use porter_gateway_kit::{Deadlines, ListenerLimits};

use crate::limits;
use crate::sasl::SaslMechanism;

#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub listen: SocketAddr,
    /// Host and port put in Metadata responses: what clients connect to after bootstrap.
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Largest request frame accepted (Kafka: socket.request.max.bytes). Checked on the 4-byte
    /// size prefix, before any allocation; a larger frame closes the connection.
    pub request_bytes_max: u32,
    /// Bytes of requests and responses held in memory at once across all connections (Kafka:
    /// queued.max.request.bytes, which counts requests only): the listener's memory budget.
    /// Readers wait for room: backpressure, not OOM. Must be >= `request_bytes_max`.
    pub request_memory_bytes_max: u64,
    /// One connection's share of `request_memory_bytes_max`: a connection holding this much
    /// (requests read, responses not yet written) stops reading until the client reads.
    pub connection_memory_bytes_max: u64,
    /// Requests one connection may have in flight (read but not yet answered). Kafka clients
    /// pipeline up to 5 produce requests, plus fetches and metadata.
    pub inflight_requests_max: usize,
    /// Open client connections. Accepting waits when the limit is reached.
    pub connections_max: usize,
    /// Upper bound on the records in one Fetch response, whatever the client asks (Kafka:
    /// fetch.max.bytes). Each response is held in memory while it is encoded and written.
    pub fetch_response_bytes_max: u32,
    /// Upper bound on a Fetch's `max_wait_ms`, so a hostile value can't pin a request forever.
    pub fetch_wait_ms_max: u64,
    /// A response write that makes no progress for this long closes the connection (a client
    /// that stopped reading).
    pub write_stall_ms: u64,
    /// A connection with no request and nothing in flight for this long is closed; 0 never.
    pub idle_ms: u64,
    pub node_id: i32,
    pub cluster_id: String,
    /// SASL mechanisms clients must authenticate with (Kafka's `sasl.enabled.mechanisms` on a
    /// SASL_PLAINTEXT listener); empty: no authentication (Kafka's PLAINTEXT).
    pub sasl_mechanisms: Arc<[SaslMechanism]>,
    /// A SASL session's lifetime (Kafka's `connections.max.reauth.ms`, KIP-368): the client
    /// re-authenticates on its connection before it ends. 0: sessions last as long as their
    /// connection.
    pub reauth_ms: u64,
    /// Kafka ACLs are enforced (Kafka's `authorizer.class.name` set): every request is checked
    /// against them, users tagged `administrator` being super users. Off: everything is allowed,
    /// as on a Kafka broker without an authorizer.
    pub acls: bool,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            listen: "0.0.0.0:9092".parse().expect("valid literal"),
            advertised_host: "localhost".into(),
            advertised_port: 9092,
            request_bytes_max: limits::REQUEST_BYTES_MAX,
            request_memory_bytes_max: limits::REQUEST_MEMORY_BYTES_MAX,
            connection_memory_bytes_max: limits::CONNECTION_MEMORY_BYTES_MAX,
            inflight_requests_max: limits::INFLIGHT_REQUESTS_MAX,
            connections_max: limits::CONNECTIONS_MAX,
            fetch_response_bytes_max: limits::FETCH_RESPONSE_BYTES_MAX,
            fetch_wait_ms_max: limits::FETCH_WAIT_MS_MAX,
            write_stall_ms: limits::WRITE_STALL_MS,
            idle_ms: limits::IDLE_MS,
            node_id: porter_core::broker::NODE_ID,
            cluster_id: "porter".into(),
            sasl_mechanisms: Arc::from([]),
            reauth_ms: 0,
            acls: false,
        }
    }
}

impl KafkaConfig {
    /// The listener limits these settings name. `drain` is the shutdown drain deadline.
    pub fn listener_limits(&self, drain: Duration) -> ListenerLimits {
        ListenerLimits {
            connections_max: self.connections_max,
            memory_budget_bytes: self.request_memory_bytes_max,
            connection_share_bytes: self
                .connection_memory_bytes_max
                .min(self.request_memory_bytes_max),
            deadlines: Deadlines {
                // The transport's (TLS) handshake; on a SASL listener, also the time a
                // connection has to authenticate (see `connection`).
                handshake: porter_gateway_kit::limits::HANDSHAKE,
                write_stall: Duration::from_millis(self.write_stall_ms.max(1)),
                idle: (self.idle_ms > 0).then(|| Duration::from_millis(self.idle_ms)),
            },
            drain,
            ..ListenerLimits::default()
        }
    }
}
