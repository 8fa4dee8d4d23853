//! RocketMQ 5 gateway.

/// Code generated from `vendor/rocketmq-apis` (Apache RocketMQ's gRPC API, Apache-2.0).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("apache.rocketmq.v2");
}
