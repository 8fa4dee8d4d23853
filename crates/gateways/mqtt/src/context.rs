//! What every MQTT connection of a gateway shares: the broker, the virtual host, settings,
//! the retained store, the client registry and the statistics behind `$SYS/`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use porter_core::retained::RetainedStore;
use porter_core::VirtualHost;
use porter_gateway_kit::auth::Authenticator;

use crate::config::MqttConfig;
use crate::pending::PendingSubscriptions;
use crate::registry::ClientRegistry;
use crate::store::SessionStore;
use crate::sys::SysTopics;

pub(crate) struct Context {
    pub vhost: VirtualHost,
    pub config: Arc<MqttConfig>,
    pub retained: Arc<RetainedStore>,
    pub clients: Arc<ClientRegistry>,
    pub sessions: SessionStore,
    pub stats: Stats,
    pub sys: SysTopics,
    pub pending: PendingSubscriptions,
    /// Checks logins wherever the serving listener has no authenticator of its own (the HTTP
    /// listener's `/mqtt`); `None` (a test harness): any login is taken as given.
    pub authenticator: Option<Arc<dyn Authenticator>>,
}

/// Counters published under `$SYS/broker/`.
pub(crate) struct Stats {
    pub started: Instant,
    received: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Stats {
    pub fn count_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A message not delivered: a QoS 0 publish a full queue refused, or a packet over a
    /// client's maximum size.
    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
