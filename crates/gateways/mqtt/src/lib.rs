//! Porter's MQTT gateway: MQTT 3.1.1 and 5.0 for devices, phones and browsers, on the same
//! messages as AMQP, STOMP and Kafka.
//!
//! Layers, as mini-redis has them: [`connection`] (the stream, CONNECT, the event loop) →
//! [`codec`] (packets, through rumqttc's `mqttbytes`) → the session's commands
//! ([`session`], [`subscribe`], [`publish`], [`deliver`], [`will`]) → `porter-core`.
//!
//! The model is RabbitMQ's MQTT plugin's, so the messages are everybody's:
//! - a PUBLISH goes through the `amq.topic` exchange with the topic as routing key (`a/b/c` →
//!   `a.b.c`, [`topic`]), properties mapped as [`convert`] says;
//! - a session is a queue (`mqtt-session-<client id>`), a subscription a binding of it, so a
//!   persistent session's messages wait on the log engine and survive kill -9;
//! - retained messages are the core's [`porter_core::retained`] store (a compacted topic);
//! - `$SYS/broker/...` statistics ([`sys`]);
//! - a PUBLISH that matches a SUBSCRIBE still being bound waits for it ([`pending`]).
//!
//! Every limit is named in [`limits`] with its cost; errors map to reason codes once
//! ([`error`]).

pub mod codec;
pub mod config;
mod connection;
mod context;
pub mod convert;
mod deliver;
pub mod error;
pub mod limits;
mod login;
mod pending;
mod publish;
mod reauth;
mod registry;
pub mod server;
pub mod session;
mod store;
mod subscribe;
mod sys;
pub mod topic;
mod will;

pub use config::MqttConfig;
pub use server::{mqtt_listener, serve, MqttProtocol};
