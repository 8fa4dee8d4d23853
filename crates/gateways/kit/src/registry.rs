//! The connections a listener has open: who, from where, since when, as whom, how many bytes.
//! The management API lists them and closes one by id. The registry never holds more entries
//! than the listener's `connections_max`, because a connection is registered only after it
//! has taken one of the listener's slots (and [`Registry::register`] refuses past capacity).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::close::CloseReason;
use crate::describe::{self, ChannelInfo, DescribeRequests, DescribeSender};

/// A connection's id, unique within its registry for the process's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A snapshot of one connection, as the management API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub id: ConnectionId,
    /// The gateway's protocol name ("kafka", "amqp", ...).
    pub protocol: &'static str,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub connected_at: SystemTime,
    /// The authenticated user, once the protocol knows it.
    pub user: Option<String>,
    /// Bytes read from and written to the socket so far.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Byte counters a connection's reader and writer bump as they go (relaxed atomics: they are
/// statistics, not synchronisation).
#[derive(Debug, Default)]
pub struct ByteCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl ByteCounters {
    /// Counts bytes read from the socket.
    pub fn count_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts bytes written to the socket.
    pub fn count_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (in, out) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug)]
struct Entry {
    id: ConnectionId,
    protocol: &'static str,
    peer: SocketAddr,
    local: SocketAddr,
    connected_at: SystemTime,
    user: Mutex<Option<String>>,
    counters: Arc<ByteCounters>,
    /// Cancelled when someone asks the connection to close; the reason is set first.
    close: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
    /// Where to ask for the connection's channels, once it answers such questions.
    describe: Mutex<Option<DescribeSender>>,
}

impl Entry {
    fn info(&self) -> ConnectionInfo {
        let (bytes_in, bytes_out) = self.counters.get();
        ConnectionInfo {
            id: self.id,
            protocol: self.protocol,
            peer: self.peer,
            local: self.local,
            connected_at: self.connected_at,
            user: self.user.lock().clone(),
            bytes_in,
            bytes_out,
        }
    }

    fn request_close(&self, reason: CloseReason) {
        {
            let mut slot = self.close_reason.lock();
            if slot.is_none() {
                *slot = Some(reason);
            }
        }
        self.close.cancel();
    }
}

#[derive(Debug)]
struct Inner {
    protocol: &'static str,
    capacity: usize,
    next_id: AtomicU64,
    entries: Mutex<HashMap<ConnectionId, Arc<Entry>>>,
    /// How long this listener's requests took, by operation (Kafka API, AMQP method).
    operations: Arc<porter_telemetry::Operations>,
    /// Bytes of connections that have closed, so totals survive them.
    closed_bytes: ByteCounters,
    /// Connections closed, by [`crate::close::ClosedBy::KINDS`]: the gateway's error counters.
    closes: [AtomicU64; 6],
    /// Open connections per client address, and the most one address may have.
    sources: Mutex<HashMap<IpAddr, usize>>,
    per_source_max: usize,
}

/// The registry of one listener. Cheap to clone; clones share the entries.
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// Why [`Registry::register`] refused a connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryFull {
    /// Past capacity: the listener's slots should have prevented it.
    #[error("connection registry full ({0} connections)")]
    Full(usize),
    /// The client's address already has the most connections one address may have.
    #[error(
        "{source_ip} already has {max} connections (the listener's connections_per_source_max)"
    )]
    Source { source_ip: IpAddr, max: usize },
}

impl Registry {
    /// An empty registry for `protocol`'s listener, holding at most `capacity` connections.
    pub fn new(protocol: &'static str, capacity: usize) -> Self {
        Registry::with_source_limit(protocol, capacity, capacity)
    }

    /// An empty registry that also lets one client address have at most `per_source_max`
    /// connections (a client opening connections in a loop, a slowloris, cannot take every slot).
    pub fn with_source_limit(
        protocol: &'static str,
        capacity: usize,
        per_source_max: usize,
    ) -> Self {
        Registry {
            inner: Arc::new(Inner {
                protocol,
                capacity,
                next_id: AtomicU64::new(1),
                entries: Mutex::new(HashMap::new()),
                operations: Arc::default(),
                closed_bytes: ByteCounters::default(),
                closes: Default::default(),
                sources: Mutex::new(HashMap::new()),
                per_source_max: per_source_max.max(1),
            }),
        }
    }

    /// Adds a connection. The returned [`Registration`] removes it when dropped.
    pub fn register(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<Registration, RegistryFull> {
        let mut entries = self.inner.entries.lock();
        if entries.len() >= self.inner.capacity {
            return Err(RegistryFull::Full(self.inner.capacity));
        }
        {
            // Taken under the entries lock, as `Drop` gives it back: counts and entries agree.
            let mut sources = self.inner.sources.lock();
            let open = sources.entry(peer.ip()).or_default();
            if *open >= self.inner.per_source_max {
                return Err(RegistryFull::Source {
                    source_ip: peer.ip(),
                    max: self.inner.per_source_max,
                });
            }
            *open += 1;
        }
        let id = ConnectionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let entry = Arc::new(Entry {
            id,
            protocol: self.inner.protocol,
            peer,
            local,
            connected_at: SystemTime::now(),
            user: Mutex::new(None),
            counters: Arc::default(),
            close: CancellationToken::new(),
            close_reason: Mutex::new(None),
            describe: Mutex::new(None),
        });
        entries.insert(id, entry.clone());
        Ok(Registration {
            entry,
            registry: self.clone(),
        })
    }

    /// Request latency of this listener's connections, by operation (`/metrics`).
    pub fn operations(&self) -> Arc<porter_telemetry::Operations> {
        self.inner.operations.clone()
    }

    /// The protocol whose connections this registry holds ("kafka", "mqtt-ws", ...).
    pub fn protocol(&self) -> &'static str {
        self.inner.protocol
    }

    /// Every open connection, ordered by id (oldest first).
    pub fn list(&self) -> Vec<ConnectionInfo> {
        let entries: Vec<Arc<Entry>> = self.inner.entries.lock().values().cloned().collect();
        let mut infos: Vec<ConnectionInfo> = entries.iter().map(|e| e.info()).collect();
        infos.sort_by_key(|i| i.id);
        infos
    }

    /// One connection's snapshot.
    pub fn get(&self, id: ConnectionId) -> Option<ConnectionInfo> {
        let entry = self.inner.entries.lock().get(&id).cloned();
        entry.map(|e| e.info())
    }

    /// Connection `id`'s channels and consumers, asked of the connection (see
    /// [`crate::describe`]); `None` if it is gone, does not describe itself, or did not answer
    /// within [`crate::describe::DESCRIBE_TIMEOUT`].
    pub async fn channels(&self, id: ConnectionId) -> Option<Vec<ChannelInfo>> {
        let sender = self
            .inner
            .entries
            .lock()
            .get(&id)?
            .describe
            .lock()
            .clone()?;
        describe::ask(sender).await
    }

    /// Asks connection `id` to close for `reason`; the protocol sends its goodbye. False if no
    /// such connection is open. The first reason given wins.
    pub fn close(&self, id: ConnectionId, reason: CloseReason) -> bool {
        let entry = self.inner.entries.lock().get(&id).cloned();
        match entry {
            Some(entry) => {
                entry.request_close(reason);
                true
            }
            None => false,
        }
    }

    /// Asks every open connection to close (shutdown); returns how many were asked.
    pub fn close_all(&self, reason: CloseReason) -> usize {
        let entries: Vec<Arc<Entry>> = self.inner.entries.lock().values().cloned().collect();
        for entry in &entries {
            entry.request_close(reason.clone());
        }
        entries.len()
    }

    /// Bytes (in, out) of every connection this listener has had, open or closed.
    pub fn bytes_total(&self) -> (u64, u64) {
        let (entries, (closed_in, closed_out)) = {
            // Both under the lock a closing connection moves its bytes under: counted once.
            let entries = self.inner.entries.lock();
            let open: Vec<Arc<Entry>> = entries.values().cloned().collect();
            (open, self.inner.closed_bytes.get())
        };
        entries.iter().fold((closed_in, closed_out), |(i, o), e| {
            let (ei, eo) = e.counters.get();
            (i + ei, o + eo)
        })
    }

    /// Counts a connection's close by why it closed (the listener calls it once per connection).
    pub fn count_close(&self, reason: &CloseReason) {
        self.inner.closes[reason.by.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed so far, by kind: (kind, count).
    pub fn closes(&self) -> Vec<(&'static str, u64)> {
        crate::close::ClosedBy::KINDS
            .iter()
            .zip(&self.inner.closes)
            .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.inner.entries.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most connections it holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }
}

/// A connection's entry in its registry; removes it when dropped.
#[derive(Debug)]
pub struct Registration {
    entry: Arc<Entry>,
    registry: Registry,
}

impl Registration {
    /// Where this connection's requests record their latency (its listener's table).
    pub fn operations(&self) -> Arc<porter_telemetry::Operations> {
        self.registry.operations()
    }

    /// This connection's id.
    pub fn id(&self) -> ConnectionId {
        self.entry.id
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.entry.peer
    }

    /// A snapshot of this connection.
    pub fn info(&self) -> ConnectionInfo {
        self.entry.info()
    }

    /// Records the authenticated user (shown by the management API and in the close log).
    pub fn set_user(&self, user: impl Into<String>) {
        *self.entry.user.lock() = Some(user.into());
    }

    /// Makes this connection answer [`Registry::channels`]: it serves the returned requests
    /// from its own loop.
    pub fn describe_requests(&self) -> DescribeRequests {
        let (sender, requests) = describe::channel();
        *self.entry.describe.lock() = Some(sender);
        requests
    }

    /// The byte counters, to hand to readers and writers running in other tasks.
    pub fn counters(&self) -> Arc<ByteCounters> {
        self.entry.counters.clone()
    }

    /// Resolves when someone asked this connection to close (management close or shutdown),
    /// with their reason. Protocols poll it in their event loop and send their goodbye
    /// (AMQP: `connection.close` 320 CONNECTION_FORCED) when it fires.
    pub async fn closing(&self) -> CloseReason {
        self.entry.close.cancelled().await;
        self.close_requested().unwrap_or_else(CloseReason::shutdown)
    }

    /// The close request, if one was made.
    pub fn close_requested(&self) -> Option<CloseReason> {
        self.entry.close_reason.lock().clone()
    }

    /// The token cancelled on a close request, for code that wants to wait in another task.
    pub fn close_token(&self) -> CancellationToken {
        self.entry.close.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self.registry.inner.entries.lock();
        entries.remove(&self.entry.id);
        {
            let mut sources = self.registry.inner.sources.lock();
            if let Some(open) = sources.get_mut(&self.entry.peer.ip()) {
                *open -= 1;
                if *open == 0 {
                    sources.remove(&self.entry.peer.ip());
                }
            }
        }
        // Under the entries lock, so a concurrent `bytes_total` counts them once.
        let (bytes_in, bytes_out) = self.entry.counters.get();
        self.registry.inner.closed_bytes.count_in(bytes_in);
        self.registry.inner.closed_bytes.count_out(bytes_out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::ClosedBy;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn lists_registered_connections_until_dropped() {
        let registry = Registry::new("kafka", 8);
        let a = registry.register(addr(1000), addr(9092)).unwrap();
        let b = registry.register(addr(1001), addr(9092)).unwrap();
        a.set_user("alice");
        a.counters().count_in(10);
        b.counters().count_out(7);
        let list = registry.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].peer, addr(1000));
        assert_eq!(list[0].user.as_deref(), Some("alice"));
        assert_eq!((list[0].bytes_in, list[1].bytes_out), (10, 7));
        assert_eq!(list[1].protocol, "kafka");
        drop(a);
        let list = registry.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, b.id());
        assert_eq!(
            registry.bytes_total(),
            (10, 7),
            "a closed connection's bytes stay counted"
        );
    }

    #[tokio::test]
    async fn a_connection_describes_its_channels_when_asked_and_only_then() {
        let registry = Registry::new("amqp", 8);
        let quiet = registry.register(addr(1000), addr(5672)).unwrap();
        assert_eq!(
            registry.channels(quiet.id()).await,
            None,
            "it never offered"
        );
        let busy = registry.register(addr(1001), addr(5672)).unwrap();
        let mut requests = busy.describe_requests();
        let answering = tokio::spawn(async move {
            let reply = requests.recv().await.unwrap();
            let _ = reply.send(vec![ChannelInfo {
                number: 1,
                unacked: 3,
                ..ChannelInfo::default()
            }]);
            requests // a connection that stops answering but lives on
        });
        let channels = registry.channels(busy.id()).await.unwrap();
        assert_eq!((channels[0].number, channels[0].unacked), (1, 3));
        let _requests = answering.await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            registry.channels(busy.id()).await,
            None,
            "no answer in time"
        );
        assert!(started.elapsed() >= describe::DESCRIBE_TIMEOUT);
        drop(busy);
        assert_eq!(registry.channels(ConnectionId(2)).await, None, "gone");
    }

    #[test]
    fn bounded_by_capacity() {
        let registry = Registry::new("amqp", 2);
        let _a = registry.register(addr(1), addr(2)).unwrap();
        let b = registry.register(addr(1), addr(2)).unwrap();
        assert_eq!(
            registry.register(addr(1), addr(2)).unwrap_err(),
            RegistryFull::Full(2)
        );
        drop(b);
        assert!(registry.register(addr(1), addr(2)).is_ok());
    }

    #[test]
    fn one_address_is_held_to_its_share() {
        let registry = Registry::with_source_limit("amqp", 10, 2);
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let first = registry.register(a, addr(2)).unwrap();
        let _second = registry.register(a, addr(2)).unwrap();
        assert!(matches!(
            registry.register(a, addr(2)),
            Err(RegistryFull::Source { max: 2, .. })
        ));
        assert!(
            registry.register(b, addr(2)).is_ok(),
            "other addresses are not held"
        );
        drop(first);
        assert!(
            registry.register(a, addr(2)).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[tokio::test]
    async fn close_by_id_reaches_the_connection_with_the_first_reason() {
        let registry = Registry::new("amqp", 4);
        let a = registry.register(addr(1), addr(2)).unwrap();
        let b = registry.register(addr(3), addr(2)).unwrap();
        assert!(registry.close(a.id(), CloseReason::local(320, "closed by operator")));
        assert!(registry.close(a.id(), CloseReason::shutdown()));
        let reason = a.closing().await;
        assert_eq!((reason.by, reason.code), (ClosedBy::Local, 320));
        assert_eq!(b.close_requested(), None);
        assert!(!registry.close(ConnectionId(999), CloseReason::shutdown()));
        assert_eq!(registry.close_all(CloseReason::shutdown()), 2);
        assert_eq!(b.closing().await.by, ClosedBy::Shutdown);
    }
}
