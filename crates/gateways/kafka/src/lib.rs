//! porter-gateway-kafka: the Kafka wire protocol in front of `porter-core`. Never opens a file.
//!
//! Layering, mini-redis style:
//! - [`server`]: the Kafka protocol on the gateway kit's listener (limits, registry, memory
//!   budget, deadlines, shutdown).
//! - [`connection`]: one client: reads size-checked frames within its memory share, pipelines
//!   requests, queues responses in request order for a writer with a write-stall deadline.
//! - [`frame`]: request header and body decoding / response encoding with `kafka-protocol`.
//! - [`api`]: one module per Kafka API; each turns a decoded request into core calls and a
//!   response, testable without a socket.
//! - [`error`]: the single mapping from `CoreError` to Kafka error codes.
//! - [`config`]: the gateway's settings; [`limits`]: their named defaults.

pub mod api;
pub mod authorize;
pub mod config;
pub mod connection;
pub mod error;
pub mod fetch_frame;
pub mod frame;
pub mod limits;
pub mod sasl;
pub mod server;
pub mod throttle;

pub use config::KafkaConfig;
pub use server::{serve, KafkaProtocol};
