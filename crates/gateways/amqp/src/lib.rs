//! porter-gateway-amqp: AMQP 0-9-1 with RabbitMQ's extensions, so applications written with
//! pika, amqplib, lapin (and every other RabbitMQ client) run against Porter unchanged.
//!
//! # Layers
//!
//! The modules form a DAG. **Rule: a module imports only from layers below its own, never from
//! a higher one** (checked by `tests/layering.rs`), so everything under [`connection`] runs and
//! is tested without a socket.
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | [`limits`], [`config`], [`error`], [`frame`], [`convert`], [`names`] | named limits; settings; reply codes; frames on the wire (size and end octet checked before a payload is buffered, payloads decoded by `amq-protocol`); field tables and properties; generated names |
//! | 1 | [`auth`], [`out`], [`reply_to`] | PLAIN / AMQPLAIN; [`out::Out`], the buffer commands answer into; the broker's direct reply-to registry |
//! | 2 | [`session`] | what a connection's channels share, no I/O |
//! | 3 | [`confirmer`], [`channel`] | channel state: content assembly, consumers, delivery tags, confirm and tx modes |
//! | 4 | [`commands`] | one module per method class; [`commands::Channels`] takes frames and queue events and answers into an `Out`; a burst's whole publishes go to the core's `publish_batch` together |
//! | 5 | [`connection`] | the only module doing I/O: header, handshake (kit deadline), event loop, memory charged to the kit's budget, writes through the kit's outbound queue (write-stall deadline), the 320 goodbye when the kit asks |
//! | 6 | [`server`] | AMQP as a protocol of the gateway kit's listener (accept loop, registry, memory budget, shutdown goodbyes) |
//!
//! Within a layer, modules may import each other without forming a circle (`config` →
//! `limits`, `error` → `frame`, `channel` → `confirmer`, `commands::tx` → `commands::publish`).
//! `porter-gateway-kit` is used by `config` (its limit names), `auth` (its authentication
//! hook), `connection` and `server` only.
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
pub mod commands;
pub mod config;
pub mod confirmer;
pub mod connection;
pub mod convert;
pub mod error;
pub mod frame;
pub mod limits;
pub mod names;
pub mod out;
pub mod reply_to;
pub mod server;
pub mod session;

pub use config::{AmqpConfig, User};
pub use server::{amqp_listener, serve, AmqpProtocol};
