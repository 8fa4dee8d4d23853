//! The queue's delivery task: one per queue. It wakes when something changed (a publish, a new
//! consumer, an ack that frees prefetch room), at the next TTL deadline at the head, or once per
//! maintenance interval, and then:
//! 1. hands ready messages to consumers with room (fair dispatch is `QueueState`'s decision),
//!    skipping expired ones and transient ones from before a restart;
//! 2. republishes dead letters to the dead-letter exchange;
//! 3. expires messages at the head when nobody consumes (RabbitMQ expires at the head only);
//! 4. deletes the queue when `x-expires` says it has been unused for long enough.
//!
//! Beside it, a maintenance task fsyncs the ack file and reclaims the log below the settled
//! prefix once per interval, so a slow disk never holds up a delivery.

use std::sync::Arc;
use std::time::Duration;

use super::api::{ConsumerEvent, QueueDelivery};
use super::dead_letter::{dead_letter, DeadReason};
use super::runtime::{queue_tag, split_tag, Inner, Position, Queue};
use super::state::Delivery;
use crate::error::Result;
use crate::partition::{blocking, now_ms, run_blocking};
use porter_storage::Offset;

/// Deliveries taken from the state per round, before their messages are loaded and sent.
const DELIVERY_BATCH_MAX: usize = 256;
/// How often the ack file is fsynced and the log reclaimed.
const MAINTENANCE_INTERVAL_MS: i64 = 1_000;

impl Queue {
    pub(crate) async fn run(self: Arc<Self>) {
        tokio::spawn(Arc::clone(&self).maintenance());
        loop {
            let deadline = match self.pump().await {
                Ok(deadline) => deadline,
                Err(e) => {
                    tracing::warn!(vhost = %self.vhost, queue = %self.name, error = %e, "queue delivery failed; retrying");
                    Some(now_ms() + MAINTENANCE_INTERVAL_MS)
                }
            };
            let expires_at = self.check_expiry();
            let wake_at = [deadline, expires_at]
                .into_iter()
                .flatten()
                .fold(now_ms() + MAINTENANCE_INTERVAL_MS, i64::min);
            let sleep_ms = (wake_at - now_ms()).clamp(1, MAINTENANCE_INTERVAL_MS) as u64;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                _ = self.closed.cancelled() => return,
            }
        }
    }

    /// Maintenance on a task of its own: the ack-file fsync and the reclaim (a checkpoint fsync
    /// and the unlink of a 16 MiB segment, ~20 ms) wait on the disk, and deliveries must not
    /// wait with them — on the delivery task they were the 4 KiB work queue's p99.
    async fn maintenance(self: Arc<Self>) {
        let mut interval =
            tokio::time::interval(Duration::from_millis(MAINTENANCE_INTERVAL_MS as u64));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.closed.cancelled() => return,
            }
            if self.inner.lock().deleted {
                return;
            }
            if let Err(e) = self.maintain().await {
                tracing::warn!(vhost = %self.vhost, queue = %self.name, error = %e, "queue maintenance failed");
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
                let deliveries = self.take_deliveries(&mut inner);
                (deliveries, inner.take_changes())
            };
            self.persist_before_send(changes).await?;
            if deliveries.is_empty() {
                break;
            }
            for (lane, delivery) in deliveries {
                let tag = delivery.consumer_tag.clone().expect("consumer delivery");
                let position = (lane, delivery.offset);
                let queue_tag = queue_tag(lane, delivery.delivery_tag);
                let stored = self.load(position, true).await?;
                if let Some(reason) = self.unusable(&stored, now_ms()) {
                    self.discard_delivery(position, queue_tag, reason)?;
                    continue;
                }
                let (sink, remaining) = {
                    let mut inner = self.inner.lock();
                    let sink = inner.consumers.get(&tag).map(|s| s.sink.clone());
                    let unacked = inner.states[lane].is_unacked(delivery.delivery_tag);
                    if sink.is_none() && unacked {
                        // Cancelled since it was taken, and never sent: back to the queue.
                        let _ = inner.states[lane].nack(delivery.delivery_tag, false, true);
                    } else if !unacked {
                        // no_ack: settled on delivery (or requeued with its consumer).
                        inner.forget(position);
                    }
                    (sink, inner.ready())
                };
                let Some(sink) = sink else { continue };
                let event = ConsumerEvent::Deliver(QueueDelivery {
                    queue: self.name.clone(),
                    consumer_tag: Some(tag.clone()),
                    queue_tag,
                    redelivered: delivery.redelivered,
                    message: Arc::new(stored.message.clone()),
                    remaining,
                });
                if sink.send(event).await.is_err() {
                    // The connection is gone without cancelling: requeue its messages.
                    self.cancel(&tag, true);
                }
            }
        }
        self.persist_changes()?;
        self.flush_dead_letters().await?;
        self.expire_head().await
    }

    /// Up to `DELIVERY_BATCH_MAX` deliveries, highest lane first.
    fn take_deliveries(&self, inner: &mut Inner) -> Vec<(usize, Delivery)> {
        let now = now_ms() as u64;
        let mut deliveries = Vec::new();
        if inner.states.len() == 1 {
            while deliveries.len() < DELIVERY_BATCH_MAX {
                match inner.states[0].next_delivery(now) {
                    Some(d) => deliveries.push((0, d)),
                    None => break,
                }
            }
            return deliveries;
        }
        'batch: while deliveries.len() < DELIVERY_BATCH_MAX {
            for lane in (0..inner.states.len()).rev() {
                // The lanes' own prefetch is off; room is counted across lanes.
                let room: Vec<Arc<str>> = inner
                    .consumers
                    .keys()
                    .filter(|tag| inner.has_room(tag))
                    .cloned()
                    .collect();
                if room.is_empty() {
                    break 'batch;
                }
                if let Some(d) = inner.states[lane]
                    .next_delivery_where(now, |tag| room.iter().any(|r| &**r == tag))
                {
                    deliveries.push((lane, d));
                    continue 'batch;
                }
            }
            break;
        }
        deliveries
    }

    /// A taken delivery that must not go out: settle it (dead-lettering expired ones).
    fn discard_delivery(
        &self,
        position: Position,
        queue_tag: u64,
        reason: Option<DeadReason>,
    ) -> Result<()> {
        let (lane, lane_tag) = split_tag(queue_tag);
        let unacked = self.inner.lock().states[lane].is_unacked(lane_tag);
        if unacked {
            return self.settle_dead(&[queue_tag], reason);
        }
        // Delivered to a no_ack consumer: already settled.
        let mut inner = self.inner.lock();
        self.discarded(&mut inner, position, reason);
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
                inner
                    .head_lane()
                    .and_then(|lane| Some((lane, inner.states[lane].peek_ready()?)))
            };
            let Some(position) = head else {
                return Ok(None);
            };
            let stored = self.load(position, false).await?;
            match self.unusable(&stored, now_ms()) {
                None => return Ok(self.expires_at(&stored)),
                Some(reason) => {
                    let (lane, offset) = position;
                    let mut inner = self.inner.lock();
                    if inner.states[lane].peek_ready() == Some(offset) {
                        inner.states[lane].discard_next_ready();
                        self.discarded(&mut inner, position, reason);
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
            let message = match (&letter.message, letter.position) {
                (Some(message), _) => message.clone(),
                (None, Some(position)) => {
                    let stored = self.load(position, true).await;
                    match stored {
                        Ok(stored) => Arc::new(stored.message.clone()),
                        Err(e) => {
                            tracing::warn!(queue = %self.name, ?position, error = %e, "dead letter lost: message unreadable");
                            continue;
                        }
                    }
                }
                (None, None) => continue,
            };
            let mut copy = dead_letter(
                &message,
                &self.name,
                letter.reason,
                self.args.dead_letter_routing_key.as_deref(),
                now_s,
            );
            // Deliveries of the copy name the exchange it was republished to, as RabbitMQ's
            // do; `x-death` keeps the original.
            copy.exchange = exchange.clone();
            if let Err(e) = vhost.publish_dead_letter(&exchange, copy).await {
                tracing::debug!(queue = %self.name, exchange = %exchange, error = %e, "dead letter dropped");
            }
        }
        Ok(())
    }

    /// Ack-file fsync and log reclamation.
    async fn maintain(self: &Arc<Self>) -> Result<()> {
        for lane in 0..self.lanes.len() {
            let acks = self.lanes[lane].acks.clone();
            run_blocking(move || acks.sync()).await?;
            self.reclaim(lane).await?;
        }
        Ok(())
    }

    /// `x-expires`: deletes the queue once unused for that long; otherwise returns when it
    /// would expire, so the task wakes in time.
    fn check_expiry(&self) -> Option<i64> {
        let expires = self.args.expires_ms? as i64;
        let idle_since = {
            let inner = self.inner.lock();
            if inner.deleted || !inner.consumers.is_empty() {
                return None;
            }
            inner.last_used_ms
        };
        let due = idle_since.saturating_add(expires);
        if now_ms() >= due {
            self.delete_later("x-expires: unused");
            return None;
        }
        Some(due)
    }

    /// Deletes `lane`'s log below its settled prefix once that frees at least one segment,
    /// keeping anything a pending dead letter still has to read.
    async fn reclaim(&self, lane: usize) -> Result<()> {
        let log = self.lanes[lane].log.clone();
        let prefix = {
            let inner = self.inner.lock();
            let pending_dead = inner
                .dead
                .iter()
                .filter_map(|d| d.position)
                .filter(|&(l, _)| l == lane)
                .map(|(_, offset)| offset)
                .min();
            let prefix = inner.states[lane].settled_prefix();
            pending_dead.map_or(prefix, |d| prefix.min(d))
        };
        let prefix = prefix.min(log.high_watermark());
        // Only whole segments: moving the start inside one frees nothing and costs two fsyncs.
        if log.oldest_segment_end().is_none_or(|end| prefix < end) {
            return Ok(());
        }
        let start = blocking(move || log.delete_records_before(prefix)).await?;
        let mut inner = self.inner.lock();
        inner.states[lane].on_log_start(start);
        let stale: Vec<Position> = inner
            .cache
            .range((lane, Offset::MIN)..(lane, start))
            .map(|(&p, _)| p)
            .collect();
        stale.into_iter().for_each(|p| inner.forget(p));
        drop(inner);
        self.lanes[lane].acks.lock().forget_below(start);
        Ok(())
    }
}
