//! Subscriptions being made: a PUBLISH read while a SUBSCRIBE whose filter matches it is still
//! being bound waits for that binding, so it reaches the new subscriber.
//!
//! Why: a subscription is a queue and a binding, made through the core (a queue's files, the
//! metadata journal) in about a millisecond, while a PUBLISH on another connection is routed
//! at once. A client that sends SUBSCRIBE on one connection and, without waiting for SUBACK,
//! PUBLISH on another would otherwise usually miss its own message (two of the Paho
//! conformance tests do exactly this). MQTT orders messages per connection only (§4.6), but a
//! single-threaded broker happens to order these too, and users expect it. The cost falls only
//! on publishes whose topic matches a filter being bound at that moment, at most
//! [`PENDING_SUBSCRIBE_WAIT_MAX`] each; every other publish pays one atomic load.
//!
//! The publish path yields once before it looks here: when the SUBSCRIBE and the PUBLISH
//! arrive together, tokio runs the task woken last first (its LIFO slot), which would route
//! the PUBLISH before the SUBSCRIBE's connection had even read its packet. Measured with the
//! Paho suite's two tests that race this way: without the yield and this wait both failed 5
//! runs of 5; with them both passed 6 of 6. The yield cost 5–8 % of fan-out throughput
//! (1 → 10 subscribers, QoS 1), so it is made only while clients are settling in: within
//! [`SETTLING`] of a CONNECT or SUBSCRIBE. A steady stream of publishes pays nothing.
//!
//! Bounded: each connection handles one SUBSCRIBE at a time, so the pending filters are at most
//! the filters of one SUBSCRIBE packet (bounded by `packet_bytes_max`) per connection.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use porter_core::partition::now_ms;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::topic::matches;

/// Longest a PUBLISH waits for a matching subscription being bound; past it, it is routed
/// without it (a stalled disk must not stall publishing).
pub const PENDING_SUBSCRIBE_WAIT_MAX: Duration = Duration::from_secs(1);
/// How long after a CONNECT or SUBSCRIBE publishes yield before they are routed.
pub const SETTLING: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct PendingSubscriptions {
    /// Entries in `filters`: the publish path's fast check.
    count: AtomicUsize,
    /// (registration, filters) of each SUBSCRIBE being handled.
    filters: Mutex<Vec<(u64, Vec<String>)>>,
    next_id: AtomicU64,
    /// Woken when a registration ends.
    done: Notify,
    /// When a client last connected or subscribed (ms since the epoch).
    last_arrival_ms: AtomicI64,
}

/// A SUBSCRIBE being handled; dropping it (when its bindings are made, or failed) wakes the
/// publishes waiting for it.
pub(crate) struct Pending<'a> {
    owner: &'a PendingSubscriptions,
    id: u64,
}

impl PendingSubscriptions {
    /// Registers the filters of a SUBSCRIBE (`$share/<group>/` stripped) until the guard drops.
    pub fn start<'a>(&'a self, filters: impl Iterator<Item = &'a str>) -> Pending<'a> {
        let filters: Vec<String> = filters.map(|f| unshared(f).to_string()).collect();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.arrived();
        let mut pending = self.filters.lock();
        pending.push((id, filters));
        self.count.store(pending.len(), Ordering::Release);
        Pending { owner: self, id }
    }

    /// A client connected (or subscribed): publishes yield for a while (see [`Self::settling`]).
    pub fn arrived(&self) {
        self.last_arrival_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether a client connected or subscribed within [`SETTLING`].
    pub fn settling(&self) -> bool {
        now_ms() - self.last_arrival_ms.load(Ordering::Relaxed) < SETTLING.as_millis() as i64
    }

    /// Whether any SUBSCRIBE is being handled.
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Waits (at most [`PENDING_SUBSCRIBE_WAIT_MAX`]) until no filter being bound matches
    /// topic `name`.
    pub async fn wait_for(&self, name: &str) {
        let deadline = Instant::now() + PENDING_SUBSCRIBE_WAIT_MAX;
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if !self.matching(name) {
                return;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                tracing::debug!(topic = %name, "a publish waited its longest for a subscription being made");
                return;
            }
        }
    }

    fn matching(&self, name: &str) -> bool {
        self.filters
            .lock()
            .iter()
            .any(|(_, filters)| filters.iter().any(|f| matches(f, name)))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut pending = self.owner.filters.lock();
        pending.retain(|(id, _)| *id != self.id);
        self.owner.count.store(pending.len(), Ordering::Release);
        drop(pending);
        self.owner.done.notify_waiters();
    }
}

/// The filter of a shared subscription (`$share/<group>/<filter>`), or `filter` itself.
fn unshared(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, filter)| filter)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_matching_publish_waits_for_the_subscription_and_others_do_not() {
        let pending = Arc::new(PendingSubscriptions::default());
        assert!(!pending.any() && !pending.settling(), "nobody arrived yet");
        let guard = pending.start(["$share/g/rooms/+", "other/#"].into_iter());
        assert!(pending.any() && pending.settling());
        // Not matching: no wait.
        tokio::time::timeout(Duration::from_millis(1), pending.wait_for("news/today"))
            .await
            .expect("an unrelated topic does not wait");
        let waiter = {
            let pending = pending.clone();
            tokio::spawn(async move { pending.wait_for("rooms/lobby").await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!waiter.is_finished(), "a matching publish waits");
        drop(guard);
        waiter.await.unwrap();
        assert!(!pending.any());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_subscription_holds_a_publish_at_most_the_limit() {
        let pending = PendingSubscriptions::default();
        let _stalled = pending.start(["#"].into_iter());
        let started = Instant::now();
        pending.wait_for("a/b").await;
        assert_eq!(started.elapsed(), PENDING_SUBSCRIBE_WAIT_MAX);
    }
}
