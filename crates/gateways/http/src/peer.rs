//! [`PeerAddrs`]: the connection's addresses and certificate login, which the listener puts on
//! every request for the handlers (a WebSocket registers its client's address and passes the
//! login on to the protocol it carries; the management API logs the address and may log the
//! certificate's user in).

use std::net::SocketAddr;
use std::sync::Arc;

/// The client's and the listener's addresses, given to handlers as a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddrs {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The user a verified client certificate names (HTTPS with mutual TLS), if any.
    pub client_login: Option<Arc<str>>,
}
