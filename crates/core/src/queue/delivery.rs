//! The queue's delivery task: one per queue. It wakes when something changed (a publish, a new
//! consumer, an ack that frees prefetch room), at the next TTL deadline at the head, or once per
//! maintenance interval, and then:
//! 1. hands ready messages to consumers with room (fair dispatch is `QueueState`'s decision),
//!    skipping expired ones and transient ones from before a restart;
//! 2. republishes dead letters to the dead-letter exchange;
//! 3. expires messages at the head when nobody consumes (RabbitMQ expires at the head only);
//! 4. maintenance: fsyncs the ack file, reclaims the log below the settled prefix, deletes the
//!    queue when `x-expires` says it has been unused for long enough.

use std::sync::Arc;
use std::time::Duration;

use super::api::{ConsumerEvent, QueueDelivery};
use super::dead_letter::{dead_letter, DeadReason};
use super::runtime::Queue;
use crate::error::Result;
use crate::partition::{blocking, now_ms, run_blocking};

/// Deliveries taken from the state per round, before their messages are loaded and sent.
const DELIVERY_BATCH_MAX: usize = 256;
/// How often the ack file is fsynced and the log reclaimed.
const MAINTENANCE_INTERVAL_MS: i64 = 1_000;

impl Queue {
    pub(crate) async fn run(self: Arc<Self>) {
        let mut last_maintenance = now_ms();
        loop {
            let deadline = match self.pump().await {
                Ok(deadline) => deadline,
                Err(e) => {
                    tracing::warn!(vhost = %self.vhost, queue = %self.name, error = %e, "queue delivery failed; retrying");
                    Some(now_ms() + MAINTENANCE_INTERVAL_MS)
                }
            };
            let now = now_ms();
            if now - last_maintenance >= MAINTENANCE_INTERVAL_MS {
                last_maintenance = now;
                if let Err(e) = self.maintain().await {
                    tracing::warn!(vhost = %self.vhost, queue = %self.name, error = %e, "queue maintenance failed");
                }
            }
            let next_maintenance = last_maintenance + MAINTENANCE_INTERVAL_MS;
            let wake_at = deadline.map_or(next_maintenance, |d| d.min(next_maintenance));
            let sleep_ms = (wake_at - now_ms()).clamp(1, MAINTENANCE_INTERVAL_MS) as u64;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                _ = self.closed.cancelled() => return,
            }
        }
    }

    /// Delivers what it can; returns when the head next expires, if it does.
    async fn pump(self: &Arc<Self>) -> Result<Option<i64>> {
        loop {
            let (deliveries, changes) = {
                let mut inner = self.inner.lock();
                if inner.deleted {
                    return Ok(None);
                }
                let now = now_ms() as u64;
                let mut deliveries = Vec::new();
                while deliveries.len() < DELIVERY_BATCH_MAX {
                    match inner.state.next_delivery(now) {
                        Some(d) => deliveries.push(d),
                        None => break,
                    }
                }
                (deliveries, inner.state.take_ack_changes())
            };
            self.persist_before_send(changes).await?;
            if deliveries.is_empty() {
                break;
            }
            for delivery in deliveries {
                let tag = delivery.consumer_tag.clone().expect("consumer delivery");
                let stored = self.load(delivery.offset, true).await?;
                if let Some(reason) = self.unusable(&stored, now_ms()) {
                    self.discard_delivery(delivery.offset, delivery.delivery_tag, reason)?;
                    continue;
                }
                let (sink, remaining) = {
                    let mut inner = self.inner.lock();
                    let sink = inner.consumers.get(&tag).map(|s| s.sink.clone());
                    if sink.is_some() && !inner.state.is_unacked(delivery.delivery_tag) {
                        // no_ack: settled on delivery.
                        inner.forget(delivery.offset);
                    }
                    (sink, inner.state.ready())
                };
                // A consumer cancelled since: its deliveries were requeued with it.
                let Some(sink) = sink else { continue };
                let event = ConsumerEvent::Deliver(QueueDelivery {
                    queue: self.name.clone(),
                    consumer_tag: Some(tag.clone()),
                    queue_tag: delivery.delivery_tag,
                    redelivered: delivery.redelivered,
                    message: Arc::new(stored.message.clone()),
                    remaining,
                });
                if sink.send(event).await.is_err() {
                    // The connection is gone without cancelling: requeue its messages.
                    self.cancel(&tag);
                }
            }
        }
        self.persist_changes()?;
        self.flush_dead_letters().await?;
        self.expire_head().await
    }

    /// A taken delivery that must not go out: settle it (dead-lettering expired ones).
    fn discard_delivery(
        &self,
        offset: porter_storage::Offset,
        tag: u64,
        reason: Option<DeadReason>,
    ) -> Result<()> {
        let unacked = self.inner.lock().state.is_unacked(tag);
        if unacked {
            return self.settle_dead(&[tag], reason);
        }
        // Delivered to a no_ack consumer: already settled.
        let mut inner = self.inner.lock();
        match reason {
            Some(reason) => self.dead_letter_offset(&mut inner, offset, reason),
            None => inner.forget(offset),
        }
        Ok(())
    }

    /// Expires messages at the head while nobody takes them; returns when the new head expires.
    async fn expire_head(self: &Arc<Self>) -> Result<Option<i64>> {
        loop {
            let head = {
                let inner = self.inner.lock();
                if !(inner.head_check || self.args.message_ttl_ms.is_some()) {
                    return Ok(None);
                }
                inner.state.peek_ready()
            };
            let Some(offset) = head else {
                return Ok(None);
            };
            let stored = self.load(offset, false).await?;
            let now = now_ms();
            match self.unusable(&stored, now) {
                None => return Ok(self.expires_at(&stored)),
                Some(reason) => {
                    let mut inner = self.inner.lock();
                    if inner.state.peek_ready() == Some(offset) {
                        inner.state.discard_next_ready();
                        match reason {
                            Some(reason) => self.dead_letter_offset(&mut inner, offset, reason),
                            None => inner.forget(offset),
                        }
                    }
                }
            }
            self.persist_changes()?;
            self.flush_dead_letters().await?;
        }
    }

    /// Republishes dead letters to the dead-letter exchange.
    async fn flush_dead_letters(self: &Arc<Self>) -> Result<()> {
        let dead = std::mem::take(&mut self.inner.lock().dead);
        if dead.is_empty() {
            return Ok(());
        }
        let Some(exchange) = self.args.dead_letter_exchange.clone() else {
            return Ok(());
        };
        let Some(broker) = self.broker.upgrade() else {
            return Ok(());
        };
        let vhost = broker.vhost(&self.vhost)?;
        let now_s = (now_ms() / 1000) as u64;
        for letter in dead {
            let message = match (&letter.message, letter.offset) {
                (Some(message), _) => message.clone(),
                (None, Some(offset)) => {
                    let stored = self.load(offset, true).await;
                    match stored {
                        Ok(stored) => Arc::new(stored.message.clone()),
                        Err(e) => {
                            tracing::warn!(queue = %self.name, offset, error = %e, "dead letter lost: message unreadable");
                            continue;
                        }
                    }
                }
                (None, None) => continue,
            };
            let copy = dead_letter(
                &message,
                &self.name,
                letter.reason,
                self.args.dead_letter_routing_key.as_deref(),
                now_s,
            );
            if let Err(e) = vhost.publish_dead_letter(&exchange, copy).await {
                tracing::debug!(queue = %self.name, exchange = %exchange, error = %e, "dead letter dropped");
            }
        }
        Ok(())
    }

    /// Ack-file fsync, log reclamation, `x-expires`.
    async fn maintain(self: &Arc<Self>) -> Result<()> {
        let acks = self.acks.clone();
        run_blocking(move || acks.lock().sync()).await?;
        let (prefix, idle_since) = {
            let inner = self.inner.lock();
            let pending_dead = inner.dead.iter().filter_map(|d| d.offset).min();
            let prefix = inner.state.settled_prefix();
            let prefix = pending_dead.map_or(prefix, |d| prefix.min(d));
            let idle = inner.consumers.is_empty().then_some(inner.last_used_ms);
            (prefix.min(self.log.high_watermark()), idle)
        };
        if prefix > self.log.log_start_offset() {
            let log = self.log.clone();
            let start = blocking(move || log.delete_records_before(prefix)).await?;
            let mut inner = self.inner.lock();
            inner.state.on_log_start(start);
            let keep = inner.cache.split_off(&start);
            let dropped: usize = inner.cache.values().map(|m| m.message.body.len()).sum();
            inner.cache = keep;
            inner.cache_bytes -= dropped;
            drop(inner);
            self.acks.lock().forget_below(start);
        }
        if let (Some(expires), Some(idle_since)) = (self.args.expires_ms, idle_since) {
            if now_ms() - idle_since >= expires as i64 {
                self.delete_later("x-expires: unused");
            }
        }
        Ok(())
    }
}
