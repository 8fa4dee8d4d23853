//! porter-gateway-stomp: STOMP 1.0, 1.1 and 1.2 with RabbitMQ's destinations, so stomp.py,
//! stompjs, Spring's STOMP broker relay and other STOMP clients run against Porter unchanged,
//! on the same queues and exchanges as AMQP, and on Kafka topics (`/kafka/<topic>`).
//!
//! The frame codec is hand-written ([`frame`] says why); it checks every named limit on the
//! bytes received and never allocates from a length on the wire.
//!
//! # Layers
//!
//! A module imports only from layers below its own (checked by `tests/layering.rs`), so
//! everything under [`connection`] runs without a socket.
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | [`limits`], [`frame`], [`error`], [`destination`], [`convert`] | named limits; frames on the wire; ERROR texts and the core-error mapping; destination names; headers ↔ properties |
//! | 1 | [`config`], [`kafka`] | settings; Kafka topic readers and producing |
//! | 2 | [`session`] | one connection's subscriptions, unacked messages, transactions, temp queues; no I/O |
//! | 3 | [`commands`] | one module per concern: SEND, SUBSCRIBE / UNSUBSCRIBE, ACK / NACK; transactions and receipts in `commands` |
//! | 4 | [`connection`] | the only module doing I/O: CONNECT (handshake deadline, version, login, heart-beats), the event loop, ERROR then close |
//! | 5 | [`server`] | [`StompProtocol`] for the kit's listener and the WebSocket endpoint |
//!
//! Not implemented: STOMP over TLS (the kit's TLS hook will carry it), per-user permissions,
//! selectors.

pub mod commands;
pub mod config;
pub mod connection;
pub mod convert;
pub mod destination;
pub mod error;
pub mod frame;
pub mod kafka;
pub mod limits;
pub mod server;
pub mod session;

pub use config::StompConfig;
pub use server::{serve, stomp_listener, StompProtocol};
