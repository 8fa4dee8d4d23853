//! Which client ids are connected, for session takeover (MQTT 5 §3.1.4: a second CONNECT with
//! a connected client id closes the first), and the wills waiting out their delay.
//!
//! A takeover is serialised: the new connection asks the old one to close and waits (bounded by
//! [`TAKEOVER_WAIT`]) until it has let go of its session (consumers cancelled, so unacked
//! messages are back in the queue) before it opens the session itself. A flood of CONNECTs with
//! one client id is therefore a chain of takeovers, one at a time, never two sessions at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Longest a CONNECT waits for the previous connection of its client id to let go.
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

struct Live {
    generation: u64,
    /// Cancelled to ask the connection to close for a takeover.
    takeover: CancellationToken,
    /// Becomes `true` once the connection has let go of its session.
    released: watch::Receiver<bool>,
}

/// A connection's hold on its client id; released (and the registry entry removed) on drop.
pub struct Claim {
    registry: Arc<ClientRegistry>,
    client_id: String,
    generation: u64,
    pub takeover: CancellationToken,
    released: watch::Sender<bool>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = self.released.send(true);
        let mut live = self.registry.live.lock();
        if live
            .get(&self.client_id)
            .is_some_and(|l| l.generation == self.generation)
        {
            live.remove(&self.client_id);
        }
    }
}

/// The connected client ids and the pending (delayed) wills of one gateway.
#[derive(Default)]
pub struct ClientRegistry {
    live: Mutex<HashMap<String, Live>>,
    next_generation: AtomicU64,
    /// Delayed wills by client id: cancelled when the client connects again in time.
    wills: Mutex<HashMap<String, (u64, CancellationToken)>>,
}

impl ClientRegistry {
    /// Claims `client_id`, taking it over from a connection that holds it: that one is asked to
    /// close and this waits until it has released its session. `false` from `took_over` means
    /// no previous connection held it.
    pub async fn claim(self: &Arc<Self>, client_id: &str) -> (Claim, bool) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (released_tx, released_rx) = watch::channel(false);
        let takeover = CancellationToken::new();
        let previous = self.live.lock().insert(
            client_id.to_string(),
            Live {
                generation,
                takeover: takeover.clone(),
                released: released_rx,
            },
        );
        let took_over = previous.is_some();
        if let Some(mut previous) = previous {
            previous.takeover.cancel();
            let _ = tokio::time::timeout(
                TAKEOVER_WAIT,
                previous.released.wait_for(|released| *released),
            )
            .await;
        }
        self.cancel_will(client_id);
        (
            Claim {
                registry: self.clone(),
                client_id: client_id.to_string(),
                generation,
                takeover,
                released: released_tx,
            },
            took_over,
        )
    }

    /// Whether `client_id` has a connection now.
    pub fn is_connected(&self, client_id: &str) -> bool {
        self.live.lock().contains_key(client_id)
    }

    /// Clients connected now.
    pub fn connected(&self) -> usize {
        self.live.lock().len()
    }

    /// Registers a delayed will; `None` when too many are pending (the will is then sent at
    /// once rather than held). The returned token is cancelled if the client connects again.
    pub fn delay_will(&self, client_id: &str, limit: usize) -> Option<(u64, CancellationToken)> {
        let mut wills = self.wills.lock();
        if wills.len() >= limit {
            return None;
        }
        let id = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        if let Some((_, old)) = wills.insert(client_id.to_string(), (id, token.clone())) {
            old.cancel();
        }
        Some((id, token))
    }

    /// The delayed will `id` of `client_id` is over (sent or cancelled).
    pub fn will_done(&self, client_id: &str, id: u64) {
        let mut wills = self.wills.lock();
        if wills.get(client_id).is_some_and(|(held, _)| *held == id) {
            wills.remove(client_id);
        }
    }

    /// Delayed wills pending now.
    pub fn pending_wills(&self) -> usize {
        self.wills.lock().len()
    }

    fn cancel_will(&self, client_id: &str) {
        if let Some((_, token)) = self.wills.lock().remove(client_id) {
            token.cancel();
        }
    }
}
