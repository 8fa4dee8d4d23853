//! [`PeerAddrs`]: the connection's addresses, which the listener puts on every request for the
//! handlers (a WebSocket registers its client's address; the management API will log it).

use std::net::SocketAddr;

/// The client's and the listener's addresses, given to handlers as a request extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddrs {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}
