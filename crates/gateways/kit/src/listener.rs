//! The TCP accept loop every gateway shares; the connection lifecycle after `accept` is the
//! [`Endpoint`]'s, shared with transports that are not TCP listeners (WebSocket). A connection slot is taken before `accept`, so past
//! `connections_max` new clients wait in the kernel's backlog instead of costing memory here.
//! Each accepted socket gets TCP_NODELAY, a registry entry, a memory account, the TLS hook
//! (within the handshake deadline), and then the protocol's [`Protocol::serve`]. On shutdown
//! the listener stops accepting, asks every connection to close (each sends its protocol's
//! goodbye), waits at most the drain deadline, and logs the connections still open.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::budget::MemoryBudget;
use crate::close::CloseReason;
use crate::connection::Connection;
use crate::endpoint::Endpoint;
use crate::limits::{LimitsError, ListenerLimits, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};
use crate::registry::{ConnectionInfo, Registry};
use crate::tls::{Acceptor, PlainTcp, Stream};

/// A wire protocol served on a listener.
pub trait Protocol: Send + Sync + 'static {
    /// Serves one connection until it ends and says why. Runs the protocol's own handshake
    /// (bounded by `conn.deadlines().handshake`, e.g. with [`within`](crate::deadlines::within)), its event loop, and on
    /// [`Connection::closing`] its goodbye. The listener logs the returned reason once.
    fn serve<S: Stream>(
        &self,
        stream: S,
        conn: &Connection,
    ) -> impl Future<Output = CloseReason> + Send;
}

/// A bound listener: a TCP socket, its transport hook, and the [`Endpoint`] its connections
/// live in (limits, registry, memory budget, drain).
pub struct Listener<A: Acceptor = PlainTcp> {
    tcp: TcpListener,
    acceptor: Arc<A>,
    endpoint: Endpoint,
}

impl<A: Acceptor> std::fmt::Debug for Listener<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("tcp", &self.tcp)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// What [`Listener::serve`] or [`Endpoint::drain`] left behind.
#[derive(Debug, Default)]
pub struct Drained {
    /// Connections still open at the drain deadline (already logged).
    pub still_open: Vec<ConnectionInfo>,
}

impl Listener<PlainTcp> {
    /// A plain-TCP listener for `protocol` ("kafka", "amqp", ...) on a bound socket.
    pub fn new(
        tcp: TcpListener,
        protocol: &'static str,
        limits: ListenerLimits,
    ) -> Result<Self, LimitsError> {
        Ok(Listener {
            tcp,
            acceptor: Arc::new(PlainTcp),
            endpoint: Endpoint::new(protocol, limits)?,
        })
    }
}

impl<A: Acceptor> Listener<A> {
    /// The same listener with another transport (TLS).
    pub fn with_acceptor<B: Acceptor>(self, acceptor: B) -> Listener<B> {
        Listener {
            tcp: self.tcp,
            acceptor: Arc::new(acceptor),
            endpoint: self.endpoint,
        }
    }

    /// The same listener with an authentication hook, handed to every connection
    /// ([`Connection::authenticator`](crate::Connection::authenticator)).
    pub fn with_authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.endpoint = self.endpoint.with_authenticator(authenticator);
        self
    }

    /// The listener's connection registry (list and close connections).
    pub fn registry(&self) -> Registry {
        self.endpoint.registry()
    }

    /// The listener's memory budget.
    pub fn budget(&self) -> MemoryBudget {
        self.endpoint.budget()
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Accepts and serves connections until `shutdown` is cancelled, then drains (see the
    /// module docs).
    pub async fn serve<P: Protocol>(
        self,
        protocol: Arc<P>,
        shutdown: CancellationToken,
    ) -> Drained {
        let name = self.endpoint.protocol();
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            let slot = tokio::select! {
                slot = self.endpoint.slot() => slot,
                _ = shutdown.cancelled() => break,
            };
            let accepted = tokio::select! {
                accepted = self.tcp.accept() => accepted,
                _ = shutdown.cancelled() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(protocol = name, error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            backoff = ACCEPT_BACKOFF_MIN;
            let _ = tcp.set_nodelay(true);
            let local = tcp
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let acceptor = self.acceptor.clone();
            let transport = async move {
                let stream = acceptor.accept(tcp).await?;
                let client_login = acceptor.client_login(&stream);
                Ok((stream, client_login))
            };
            tokio::spawn(
                self.endpoint
                    .serve(slot, peer, local, protocol.clone(), transport),
            );
        }
        self.endpoint.drain().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Echoes lines; on a close request writes "bye" (its goodbye) and ends. Connections whose
    /// first byte is `s` ignore close requests (a stuck connection).
    struct Echo;

    impl Protocol for Echo {
        async fn serve<S: Stream>(&self, mut stream: S, conn: &Connection) -> CloseReason {
            let mut buf = [0u8; 64];
            let mut stubborn = false;
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return CloseReason::peer("end of stream"),
                        Ok(n) => {
                            stubborn |= buf[0] == b's';
                            conn.counters().count_in(n as u64);
                            let _ = stream.write_all(&buf[..n]).await;
                        }
                    },
                    reason = conn.closing(), if !stubborn => {
                        let _ = stream.write_all(b"bye").await;
                        return reason;
                    }
                }
            }
        }
    }

    async fn start(
        limits: ListenerLimits,
    ) -> (
        SocketAddr,
        Registry,
        CancellationToken,
        tokio::task::JoinHandle<Drained>,
    ) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = Listener::new(tcp, "echo", limits).unwrap();
        let (addr, registry) = (listener.local_addr().unwrap(), listener.registry());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.serve(Arc::new(Echo), shutdown.clone()));
        (addr, registry, shutdown, task)
    }

    async fn echo(stream: &mut TcpStream, text: &[u8]) -> Vec<u8> {
        stream.write_all(text).await.unwrap();
        let mut got = vec![0u8; text.len()];
        stream.read_exact(&mut got).await.unwrap();
        got
    }

    async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("server closes")
            .unwrap();
        rest
    }

    #[tokio::test]
    async fn excess_clients_wait_until_a_slot_frees() {
        let limits = ListenerLimits {
            connections_max: 1,
            ..ListenerLimits::default()
        };
        let (addr, registry, shutdown, task) = start(limits).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        assert_eq!(echo(&mut first, b"one").await, b"one");
        // The second connects (kernel backlog) but is not served while the first is open.
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(b"two").await.unwrap();
        let mut got = [0u8; 3];
        let waited =
            tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut got)).await;
        assert!(waited.is_err(), "second client served past connections_max");
        assert_eq!(registry.len(), 1);
        drop(first);
        tokio::time::timeout(Duration::from_secs(10), second.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"two");
        shutdown.cancel();
        assert_eq!(read_to_end(&mut second).await, b"bye");
        assert!(task.await.unwrap().still_open.is_empty());
    }

    #[tokio::test]
    async fn management_close_and_shutdown_goodbyes_and_drain_report() {
        let limits = ListenerLimits {
            drain: Duration::from_millis(300),
            ..ListenerLimits::default()
        };
        let (addr, registry, shutdown, task) = start(limits).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        let mut stuck = TcpStream::connect(addr).await.unwrap();
        echo(&mut a, b"a").await;
        echo(&mut b, b"b").await;
        echo(&mut stuck, b"s").await;
        let list = registry.list();
        assert_eq!(list.len(), 3);
        assert!(list.iter().all(|c| c.protocol == "echo" && c.bytes_in == 1));
        let a_id = list
            .iter()
            .find(|c| c.peer == a.local_addr().unwrap())
            .unwrap()
            .id;
        assert!(registry.close(a_id, CloseReason::local(0, "closed by operator")));
        assert_eq!(read_to_end(&mut a).await, b"bye");
        shutdown.cancel();
        assert_eq!(read_to_end(&mut b).await, b"bye");
        let drained = task.await.unwrap();
        assert_eq!(
            drained.still_open.len(),
            1,
            "the stuck connection is reported"
        );
        assert_eq!(drained.still_open[0].peer, stuck.local_addr().unwrap());
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener stopped accepting"
        );
    }

    #[tokio::test]
    async fn a_slow_transport_handshake_is_cut_at_the_deadline() {
        struct Never;
        impl Acceptor for Never {
            type Stream = TcpStream;
            async fn accept(&self, _tcp: TcpStream) -> io::Result<TcpStream> {
                std::future::pending().await
            }
        }
        let mut limits = ListenerLimits::default();
        limits.deadlines.handshake = Duration::from_millis(100);
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = Listener::new(tcp, "echo", limits)
            .unwrap()
            .with_acceptor(Never);
        let (addr, registry) = (listener.local_addr().unwrap(), listener.registry());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.serve(Arc::new(Echo), shutdown.clone()));
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_to_end(&mut c).await, b"");
        assert_eq!(registry.len(), 0);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_authentication_hook_reaches_every_connection() {
        use crate::auth::{Credentials, StaticUser, StaticUsers};

        /// Reads "user:password", asks the listener's authenticator, answers "ok" or "no".
        struct Login;
        impl Protocol for Login {
            async fn serve<S: Stream>(&self, mut stream: S, conn: &Connection) -> CloseReason {
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let (user, password) = text.split_once(':').unwrap_or((&text, ""));
                let auth = conn.authenticator().expect("the listener's hook");
                let login = Credentials {
                    mechanism: "PLAIN",
                    user,
                    secret: password.as_bytes(),
                    peer: conn.peer(),
                };
                match auth.authenticate(login).await {
                    Ok(principal) => {
                        conn.set_user(principal.user);
                        let _ = stream.write_all(b"ok").await;
                        conn.closing().await
                    }
                    Err(e) => {
                        let _ = stream.write_all(b"no").await;
                        CloseReason::protocol(403, e.to_string())
                    }
                }
            }
        }

        let users = StaticUsers {
            users: vec![StaticUser {
                name: "app".into(),
                password: "s3cret".into(),
                loopback_only: false,
            }],
        };
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = Listener::new(tcp, "login", ListenerLimits::default())
            .unwrap()
            .with_authenticator(Arc::new(users));
        let (addr, registry) = (listener.local_addr().unwrap(), listener.registry());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.serve(Arc::new(Login), shutdown.clone()));
        let mut good = TcpStream::connect(addr).await.unwrap();
        assert_eq!(echo_reply(&mut good, b"app:s3cret").await, b"ok");
        let mut bad = TcpStream::connect(addr).await.unwrap();
        assert_eq!(echo_reply(&mut bad, b"app:wrong").await, b"no");
        assert_eq!(read_to_end(&mut bad).await, b"");
        // The refused connection leaves the registry right after its socket closes.
        for _ in 0..500 {
            if registry.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let list = registry.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].user.as_deref(), Some("app"));
        shutdown.cancel();
        task.await.unwrap();
    }

    async fn echo_reply(stream: &mut TcpStream, text: &[u8]) -> Vec<u8> {
        stream.write_all(text).await.unwrap();
        let mut got = vec![0u8; 2];
        stream.read_exact(&mut got).await.unwrap();
        got
    }
}
