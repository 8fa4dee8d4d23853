//! [`Endpoint`]: the connection lifecycle every transport shares. A [`Listener`](crate::Listener)
//! accepts TCP sockets and hands each to its endpoint; another transport (a WebSocket upgraded
//! by the HTTP listener) hands its byte stream to an endpoint of its own. Either way the
//! connection gets the same things: a slot out of `connections_max`, a registry entry, a memory
//! account, the transport handshake under the handshake deadline, the protocol's
//! [`Protocol::serve`], its close reason logged once, and on shutdown a goodbye request and the
//! drain deadline with a report of what stayed open.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::budget::MemoryBudget;
use crate::close::{CloseReason, Deadline};
use crate::connection::Connection;
use crate::deadlines::within;
use crate::limits::{LimitsError, ListenerLimits};
use crate::listener::{Drained, Protocol};
use crate::registry::{ConnectionInfo, Registry, RegistryFull};
use crate::tls::Stream;

/// One protocol's connections, whatever transport brings them: their limits, registry, memory
/// budget and the tasks serving them.
pub struct Endpoint {
    protocol: &'static str,
    limits: Arc<ListenerLimits>,
    authenticator: Option<Arc<dyn Authenticator>>,
    registry: Registry,
    budget: MemoryBudget,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("protocol", &self.protocol)
            .field("limits", &self.limits)
            .field("open", &self.registry.len())
            .field("authenticator", &self.authenticator.is_some())
            .finish()
    }
}

/// One of an endpoint's `connections_max` slots, held for the life of a connection. Taken before
/// the connection costs anything (before `accept`, before a WebSocket upgrade is answered).
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Endpoint {
    /// An endpoint for `protocol` ("kafka", "mqtt-ws", ...) with its limits.
    pub fn new(protocol: &'static str, limits: ListenerLimits) -> Result<Self, LimitsError> {
        let budget = MemoryBudget::new(&limits)?;
        Ok(Endpoint {
            protocol,
            registry: Registry::with_source_limit(
                protocol,
                limits.connections_max,
                limits.connections_per_source_max,
            ),
            slots: Arc::new(Semaphore::new(limits.connections_max)),
            limits: Arc::new(limits),
            authenticator: None,
            budget,
            tracker: TaskTracker::new(),
        })
    }

    /// The same endpoint with an authentication hook, handed to every connection
    /// ([`Connection::authenticator`]).
    pub fn with_authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// The protocol name its connections are registered under.
    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// The connection registry (list and close connections).
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// The memory budget its connections share.
    pub fn budget(&self) -> MemoryBudget {
        self.budget.clone()
    }

    /// The limits.
    pub fn limits(&self) -> &ListenerLimits {
        &self.limits
    }

    /// Waits for a free connection slot (a TCP listener: excess clients wait in the backlog).
    pub async fn slot(&self) -> Slot {
        Slot(
            self.slots
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed"),
        )
    }

    /// A free slot now, or `None` at `connections_max` (a transport that must answer at once,
    /// such as an HTTP upgrade, refuses the connection instead).
    pub fn try_slot(&self) -> Option<Slot> {
        self.slots.clone().try_acquire_owned().ok().map(Slot)
    }

    /// Serves one connection from `peer` (to `local`) on its `slot`: registers it, runs
    /// `transport` (the TLS or other handshake yielding the byte stream) within the handshake
    /// deadline, then `protocol`'s [`Protocol::serve`], and logs the close reason once. The
    /// returned future is counted by the drain from the moment it is created; spawn or await it.
    /// It resolves to the close reason, for transports with a goodbye of their own (a WebSocket
    /// close frame).
    pub fn serve<P, S, T>(
        &self,
        slot: Slot,
        peer: SocketAddr,
        local: SocketAddr,
        protocol: Arc<P>,
        transport: T,
    ) -> impl Future<Output = CloseReason> + Send + 'static
    where
        P: Protocol,
        S: Stream,
        T: Future<Output = io::Result<(S, Option<String>)>> + Send + 'static,
    {
        // Boxed: the handshake's future (a TLS accept is large) would otherwise sit inline in
        // the connection's task for its whole life; boxed, it is freed once the handshake ends.
        let transport = Box::pin(transport);
        let registration = self.registry.register(peer, local);
        let (budget, limits) = (self.budget.connection(), self.limits.clone());
        let (name, authenticator) = (self.protocol, self.authenticator.clone());
        let (registry, tracker) = (self.registry.clone(), self.tracker.clone());
        self.tracker.track_future(async move {
            let registration = match registration {
                Ok(registration) => registration,
                Err(e @ RegistryFull::Source { .. }) => {
                    // One line per refused connection would let a flood fill the log: the
                    // count is in /metrics (connections_closed_total, reason "limit").
                    tracing::debug!(protocol = name, %peer, error = %e, "refusing connection");
                    let reason = CloseReason::limit(0, e.to_string());
                    registry.count_close(&reason);
                    return reason;
                }
                Err(e) => {
                    // The slot makes this unreachable; refuse rather than exceed the bound.
                    tracing::error!(protocol = name, %peer, error = %e, "refusing connection");
                    return CloseReason::limit(0, e.to_string());
                }
            };
            tracing::debug!(protocol = name, id = registration.id().0, %peer, "connection accepted");
            if tracker.is_closed() {
                // Registered after the drain asked everyone to close: ask this one too.
                registry.close(registration.id(), CloseReason::shutdown());
            }
            let handshake = limits.deadlines.handshake;
            let mut conn =
                Connection::new(registration, budget, limits).with_authenticator(authenticator);
            let reason = match within(Deadline::Handshake, handshake, transport).await {
                Ok(Ok((stream, client_login))) => {
                    conn.client_login = client_login;
                    protocol.serve(stream, &conn).await
                }
                // Gone before its first byte (a port probe, a health check): not an error.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    CloseReason::peer("closed before the TLS handshake")
                }
                Ok(Err(e)) => CloseReason::protocol(0, format!("transport handshake failed: {e}")),
                Err(reason) => reason,
            };
            reason.log(&conn.info());
            registry.count_close(&reason);
            drop(conn);
            drop(slot);
            reason
        })
    }

    /// Stops counting new connections as part of the drain, asks every open connection to close
    /// (each sends its protocol's goodbye), waits at most the drain deadline, and logs and
    /// returns the connections still open. The transport stops bringing new connections first.
    pub async fn drain(&self) -> Drained {
        self.tracker.close();
        let asked = self.registry.close_all(CloseReason::shutdown());
        tracing::debug!(
            protocol = self.protocol,
            connections = asked,
            "asked connections to close"
        );
        if tokio::time::timeout(self.limits.drain, self.tracker.wait())
            .await
            .is_ok()
        {
            return Drained::default();
        }
        let still_open: Vec<ConnectionInfo> = self.registry.list();
        for info in &still_open {
            tracing::warn!(
                protocol = info.protocol, id = info.id.0, peer = %info.peer,
                user = info.user.as_deref().unwrap_or("-"),
                bytes_in = info.bytes_in, bytes_out = info.bytes_out,
                "connection still open at the shutdown drain deadline"
            );
        }
        Drained { still_open }
    }
}

#[cfg(test)]
mod tests {
    use std::future::ready;

    use super::*;
    use crate::close::ClosedBy;

    /// Waits for the close request and returns it.
    struct UntilClosed;

    impl Protocol for UntilClosed {
        async fn serve<S: Stream>(&self, _stream: S, conn: &Connection) -> CloseReason {
            conn.closing().await
        }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[tokio::test]
    async fn try_slot_refuses_at_connections_max_and_a_closed_connection_frees_its_slot() {
        let limits = ListenerLimits {
            connections_max: 1,
            ..ListenerLimits::default()
        };
        let endpoint = Endpoint::new("test", limits).unwrap();
        let slot = endpoint.try_slot().expect("one slot");
        assert!(endpoint.try_slot().is_none());
        let (stream, _peer) = tokio::io::duplex(64);
        let served = tokio::spawn(endpoint.serve(
            slot,
            addr(),
            addr(),
            Arc::new(UntilClosed),
            ready(Ok((stream, None))),
        ));
        tokio::task::yield_now().await;
        let id = endpoint.registry().list()[0].id;
        assert!(endpoint
            .registry()
            .close(id, CloseReason::local(0, "by operator")));
        assert_eq!(served.await.unwrap().by, ClosedBy::Local);
        assert!(endpoint.try_slot().is_some(), "the slot came back");
    }

    #[tokio::test]
    async fn a_connection_arriving_after_the_drain_began_is_asked_to_close() {
        let endpoint = Endpoint::new("test", ListenerLimits::default()).unwrap();
        assert!(endpoint.drain().await.still_open.is_empty());
        let slot = endpoint.try_slot().unwrap();
        let (stream, _peer) = tokio::io::duplex(64);
        let reason = endpoint
            .serve(
                slot,
                addr(),
                addr(),
                Arc::new(UntilClosed),
                ready(Ok((stream, None))),
            )
            .await;
        assert_eq!(reason.by, ClosedBy::Shutdown);
    }
}
