//! porter-gateway-kafka: the Kafka wire protocol in front of `porter-core`. Never opens a file.
//!
//! Layering, mini-redis style:
//! - [`server`]: accepts connections within the connection limit, stops on shutdown.
//! - [`connection`]: one client: reads size-checked frames, pipelines requests, writes responses
//!   in request order.
//! - [`frame`]: request header and body decoding / response encoding with `kafka-protocol`.
//! - [`api`]: one module per Kafka API; each turns a decoded request into core calls and a
//!   response, testable without a socket.
//! - [`error`]: the single mapping from `CoreError` to Kafka error codes.
//! - [`config`]: the gateway's named limits and addresses.

pub mod api;
pub mod config;
pub mod connection;
pub mod error;
pub mod frame;
pub mod server;

pub use config::KafkaConfig;
pub use server::serve;
