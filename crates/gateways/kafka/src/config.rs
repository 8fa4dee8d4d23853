//! The Kafka gateway's addresses and limits. Every limit is named here with its cost.

use std::net::SocketAddr;

#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub listen: SocketAddr,
    /// Host and port put in Metadata responses: what clients connect to after bootstrap.
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Largest request frame accepted (Kafka: socket.request.max.bytes). Checked on the 4-byte
    /// size prefix, before any allocation; a larger frame closes the connection.
    pub request_bytes_max: u32,
    /// Bytes of request frames held in memory at once across all connections (Kafka:
    /// queued.max.request.bytes). Readers wait for room: backpressure, not OOM.
    /// Must be >= `request_bytes_max`.
    pub request_memory_bytes_max: u64,
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
    pub node_id: i32,
    pub cluster_id: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            listen: "0.0.0.0:9092".parse().expect("valid literal"),
            advertised_host: "localhost".into(),
            advertised_port: 9092,
            request_bytes_max: 100 * 1024 * 1024,
            request_memory_bytes_max: 512 * 1024 * 1024,
            inflight_requests_max: 32,
            connections_max: 10_000,
            fetch_response_bytes_max: 50 * 1024 * 1024,
            fetch_wait_ms_max: 30_000,
            node_id: 0,
            cluster_id: "porter".into(),
        }
    }
}
