//! [`Connection`]: what the listener hands a protocol with each accepted stream. It bundles the
//! connection's registry entry, its memory account and the listener's limits, so a protocol's
//! connection loop needs nothing else from the kit.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::budget::ConnectionBudget;
use crate::close::CloseReason;
use crate::deadlines::Deadlines;
use crate::limits::ListenerLimits;
use crate::outbound::OutboundLimits;
use crate::registry::{ByteCounters, ConnectionId, ConnectionInfo, Registration};

/// One accepted connection's context. Owned by the listener's task for the connection; the
/// protocol borrows it for as long as it serves the connection.
pub struct Connection {
    registration: Registration,
    budget: ConnectionBudget,
    limits: Arc<ListenerLimits>,
    authenticator: Option<Arc<dyn Authenticator>>,
    /// The user a verified client certificate names (mutual TLS), set after the handshake.
    pub(crate) client_login: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("registration", &self.registration)
            .field("budget", &self.budget)
            .field("limits", &self.limits)
            .field("authenticator", &self.authenticator.is_some())
            .finish()
    }
}

impl Connection {
    /// Assembles a connection's context. The listener does this; tests of a protocol's
    /// connection loop can too, with a [`Registry`](crate::registry::Registry) and a
    /// [`MemoryBudget`](crate::budget::MemoryBudget) of their own.
    pub fn new(
        registration: Registration,
        budget: ConnectionBudget,
        limits: Arc<ListenerLimits>,
    ) -> Self {
        Connection {
            registration,
            budget,
            limits,
            authenticator: None,
            client_login: None,
        }
    }

    /// The same context with the listener's authentication hook.
    pub fn with_authenticator(mut self, authenticator: Option<Arc<dyn Authenticator>>) -> Self {
        self.authenticator = authenticator;
        self
    }

    /// The listener's authentication hook, if it has one; protocols that log users in ask it,
    /// then record the user with [`set_user`](Self::set_user). `None`: the protocol keeps its
    /// own rules (today's AMQP users, Kafka's anonymous clients) until issue 18 sets one.
    pub fn authenticator(&self) -> Option<&dyn Authenticator> {
        self.authenticator.as_deref()
    }

    /// The user the client's certificate names, when mutual TLS verified one (see
    /// [`crate::client_cert`]): what AMQP's EXTERNAL, and MQTT and STOMP connects without a
    /// user name, log in as.
    pub fn client_login(&self) -> Option<&str> {
        self.client_login.as_deref()
    }

    /// The same context as if mutual TLS had verified a certificate naming `user` (tests of a
    /// protocol's certificate login).
    pub fn with_client_login(mut self, user: impl Into<String>) -> Self {
        self.client_login = Some(user.into());
        self
    }

    /// The connection's id in its listener's registry.
    pub fn id(&self) -> ConnectionId {
        self.registration.id()
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.registration.peer()
    }

    /// A snapshot, as the management API shows it.
    pub fn info(&self) -> ConnectionInfo {
        self.registration.info()
    }

    /// Records the authenticated user.
    pub fn set_user(&self, user: impl Into<String>) {
        self.registration.set_user(user)
    }

    /// See [`Registration::describe_requests`].
    pub fn describe_requests(&self) -> crate::describe::DescribeRequests {
        self.registration.describe_requests()
    }

    /// Byte counters for the connection's reader and writer.
    pub fn counters(&self) -> Arc<ByteCounters> {
        self.registration.counters()
    }

    /// Resolves when the connection is asked to close (shutdown or a management close), with
    /// the reason. Poll it in the event loop; on it, send the protocol's goodbye (AMQP
    /// `connection.close` 320, MQTT 5 DISCONNECT 0x8B, Kafka: stop reading, answer what was
    /// read) and return the reason.
    pub async fn closing(&self) -> CloseReason {
        self.registration.closing().await
    }

    /// Where this connection records how long each request took (`/metrics`).
    pub fn operations(&self) -> std::sync::Arc<porter_telemetry::Operations> {
        self.registration.operations()
    }

    /// The close request, if one was made.
    pub fn close_requested(&self) -> Option<CloseReason> {
        self.registration.close_requested()
    }

    /// Cancelled on a close request; for tasks of the connection other than its event loop.
    pub fn close_token(&self) -> CancellationToken {
        self.registration.close_token()
    }

    /// The connection's memory account: charge request, response and body bytes here.
    pub fn budget(&self) -> &ConnectionBudget {
        &self.budget
    }

    /// The listener's limits.
    pub fn limits(&self) -> &ListenerLimits {
        &self.limits
    }

    /// The handshake, write-stall and idle deadlines.
    pub fn deadlines(&self) -> Deadlines {
        self.limits.deadlines
    }

    /// Limits for this connection's [`outbound`](crate::outbound::outbound) queue.
    pub fn outbound_limits(&self) -> OutboundLimits {
        OutboundLimits {
            frames_max: self.limits.outbound_frames_max,
            write_stall: self.limits.deadlines.write_stall,
        }
    }
}
