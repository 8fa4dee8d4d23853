//! porter-gateway-amqp: AMQP 0-9-1 with RabbitMQ's extensions, so applications written with
//! pika, amqplib, lapin (and every other RabbitMQ client) run against Porter unchanged.
//!
//! Layering, as in the Kafka gateway: [`server`] accepts; [`connection`] negotiates (protocol
//! header, `start/tune/open`, PLAIN and AMQPLAIN in [`auth`]) and runs the event loop; [`frame`]
//! reads frames with their size and end octet checked before the payload is buffered (payloads
//! decoded by the `amq-protocol` crate); [`channel`] assembles content and tracks delivery tags;
//! [`methods`] turns each method into porter-core calls; [`publish`] does confirms and
//! transactions; [`convert`] maps field tables and properties; [`error`] is the one place a
//! failure becomes a reply code.
//!
//! Implemented: exchanges (declare incl. passive, delete, exchange-to-exchange bind/unbind),
//! queues (declare incl. passive and server-named, bind, unbind, purge, delete with if-unused
//! and if-empty), `basic.qos` (prefetch count), consume / cancel (and server-sent cancel when a
//! queue is deleted, for clients with `consumer_cancel_notify`), publish with `mandatory`
//! (`basic.return` 312 NO_ROUTE), get, ack / nack / reject with `multiple`, recover, direct reply-to (`amq.rabbitmq.reply-to`), publisher
//! confirms (acked after the message is durable, runs coalesced with `multiple`), transactions,
//! heartbeats, `connection.blocked` / `unblocked` on the broker's memory and disk alarms, and
//! RabbitMQ's channel- and connection-error codes.
//!
//! Not implemented, on purpose or not yet: `basic.qos` `global` (treated as per consumer),
//! `channel.flow(false)` (answered, deliveries not paused), `immediate` publishing (540, as in
//! RabbitMQ), consumer priorities, per-user permissions beyond
//! the configured user list.

pub mod auth;
pub mod channel;
pub mod config;
pub mod connection;
pub mod convert;
pub mod error;
pub mod frame;
pub mod methods;
pub mod publish;
pub mod reply_to;
pub mod server;
pub mod session;

pub use config::{AmqpConfig, User};
pub use server::serve;
