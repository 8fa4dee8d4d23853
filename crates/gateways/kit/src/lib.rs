//! porter-gateway-kit: what every Porter gateway shares, so a new protocol is a frame codec and
//! a command layer, not another copy of the connection lifecycle.
//!
//! One concept per module:
//! - [`listener`]: the accept loop with named limits, TCP_NODELAY, the TLS hook, graceful
//!   shutdown (goodbye, drain deadline, report of what stayed open). Protocols implement
//!   [`Protocol`].
//! - [`endpoint`]: the connection lifecycle after accept (slot, registry entry, memory account,
//!   handshake deadline, close reason, drain), shared by the TCP listener and transports that
//!   bring streams of their own (WebSocket on the HTTP listener).
//! - [`connection`]: the [`Connection`] handed to a protocol: registry entry, memory account,
//!   limits.
//! - [`registry`]: the open connections (id, protocol, peer, user, bytes), listed and closed by
//!   the management API.
//! - [`budget`]: one memory budget per listener, a share per connection; a connection over its
//!   share stops reading.
//! - [`mod@outbound`]: a bounded outbound queue and its writer under a write-stall deadline.
//! - [`read_buffer`]: a buffered reader that holds no buffer while its connection is idle.
//! - [`deadlines`]: handshake, write-stall and idle deadlines.
//! - [`close`]: [`CloseReason`], who closed a connection and why, logged once.
//! - [`tls`] and [`auth`]: the transport and authentication hooks.
//! - [`sniff`]: names the protocol a connection's first bytes speak, for the client that
//!   dialled the wrong port ([`WrongProtocol`] is the line gateways log).
//! - [`credit`]: consumer credit (prefetch, receive-maximum, client acks) as one type.
//! - [`layering`]: the check gateways' tests run that no module imports from a higher layer.
//! - [`limits`]: the named defaults and their worst-case products.

pub mod auth;
pub mod budget;
pub mod client_cert;
pub mod close;
pub mod connection;
pub mod credit;
pub mod deadlines;
pub mod describe;
pub mod endpoint;
pub mod layering;
pub mod limits;
pub mod listener;
pub mod outbound;
pub mod principal_rules;
pub mod read_buffer;
pub mod registry;
pub mod sniff;
pub mod spliced;
pub mod tls;
pub mod tls_files;

pub use budget::{Charge, ConnectionBudget, MemoryBudget};
pub use close::{truncated, CloseReason, ClosedBy, Deadline};
pub use connection::Connection;
pub use credit::Credit;
pub use deadlines::{Deadlines, IdleTimer};
pub use describe::{ChannelInfo, ConsumerInfo, DescribeRequests};
pub use endpoint::{Endpoint, Slot};
pub use limits::ListenerLimits;
pub use listener::{Drained, Listener, Protocol};
pub use outbound::{outbound, OutboundFrame, OutboundLimits, OutboundSender, OutboundWriter};
pub use read_buffer::LazyBufReader;
pub use registry::{ConnectionId, ConnectionInfo, Registry};
pub use sniff::{sniff, AmqpVersion, WireProtocol, WrongProtocol};
pub use tls::{Acceptor, PlainTcp, Stream};
