//! Porter's RocketMQ 5 gateway: `apache.rocketmq.v2.MessagingService` over gRPC, so
//! applications written with the official RocketMQ 5 clients (Java, Python, Node.js, Go, Rust)
//! run against Porter unchanged.
//!
//! `server` (the kit's listener, hyper HTTP/2) → `service` (one method per RPC: check, call the
//! core, answer) → `porter-core` (topics, [`porter_core::pop`] consumption, timers,
//! transactions). RocketMQ's "message queues" are a topic's partitions; a consumer group pops
//! from all of them. `convert` maps messages and names, `error` maps core errors to RocketMQ
//! status codes once, `telemetry` keeps each client's settings stream.

pub mod auth;
pub mod authorize;
pub mod config;
pub mod convert;
pub mod error;
pub mod filter;
pub mod limits;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod transactions;

pub use config::RocketmqConfig;
pub use server::{serve, RocketmqProtocol};

/// Code generated from `vendor/rocketmq-apis` (Apache RocketMQ's gRPC API, Apache-2.0).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("apache.rocketmq.v2");
}
