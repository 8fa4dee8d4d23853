//! A queue's turn on a scheduler worker ([`super::scheduler`]): run when something changed (a
//! publish, a new consumer, an ack that frees prefetch room) or a deadline came (TTL at the head,
//! `x-expires`, maintenance). A turn does a bounded amount of:
//! 1. handing ready messages to consumers with room (fair dispatch is `QueueState`'s decision),
//!    skipping expired ones and transient ones from before a restart;
//! 2. republishing dead letters to the dead-letter exchange;
//! 3. expiring messages at the head when nobody consumes (RabbitMQ expires at the head only);
//! 4. deleting the queue when `x-expires` says it has been unused for long enough;
//!
//! and returns its next deadline. Maintenance (the ack-file fsync, reclaiming the log below the
//! settled prefix) runs on the blocking pool at most once per interval and only while there is
//! something to sync or reclaim, so a slow disk never holds up a delivery and an idle queue has
//! no timer at all.
//!
//! A consumer whose buffer is full does not hold a worker: the rest of that batch goes to a task
//! that waits for room, and the queue delivers nothing else until it is done.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;

use super::api::{ConsumerEvent, ConsumerSink, QueueDelivery};
use super::dead_letter::{dead_letter, DeadReason};
use super::limits::{
    DEAD_LETTERS_PER_TURN_MAX, DELIVERY_BATCH_MAX, EXPIRED_PER_TURN_MAX, MAINTENANCE_INTERVAL_MS,
};
use super::runtime::{queue_tag, split_tag, Inner, Position, Queue};
use super::scheduler::TurnOutcome;
use super::state::Delivery;
use crate::error::Result;
use crate::partition::now_ms;
use porter_storage::Offset;

/// A delivery that found its consumer's buffer full, with what it was to send.
struct Parked {
    tag: Arc<str>,
    sink: ConsumerSink,
    event: ConsumerEvent,
}

impl Queue {
    /// One turn; never fails (an error is logged and retried after the maintenance interval).
    pub(crate) async fn turn(self: &Arc<Self>) -> TurnOutcome {
        if self.inner.lock().deleted {
            return TurnOutcome {
                more: false,
                deadline: None,
            };
        }
        match self.run_turn().await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(vhost = %self.vhost, queue = %self.name, error = %e, "queue delivery failed; retrying");
                TurnOutcome {
                    more: false,
                    deadline: Some(now_ms() + MAINTENANCE_INTERVAL_MS),
                }
            }
        }
    }

    async fn run_turn(self: &Arc<Self>) -> Result<TurnOutcome> {
        let mut more = self.deliver().await?;
        self.persist_changes()?;
        more |= self.flush_dead_letters().await?;
        let (head_expires, more_expired) = self.expire_head().await?;
        // Expiries may have queued dead letters: the next turn republishes them.
        more |= more_expired || !self.inner.lock().dead.is_empty();
        let deadline = [
            head_expires,
            self.check_expiry(),
            self.maintenance_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(TurnOutcome { more, deadline })
    }

    /// Sends one batch of deliveries; `true` if the batch was full (more may be ready).
    async fn deliver(self: &Arc<Self>) -> Result<bool> {
        let (deliveries, changes) = {
            let mut inner = self.inner.lock();
            if inner.deleted || inner.stalled {
                return Ok(false);
            }
            let deliveries = self.take_deliveries(&mut inner);
            (deliveries, inner.take_changes())
        };
        self.persist_before_send(changes).await?;
        let full = deliveries.len() == DELIVERY_BATCH_MAX;
        let mut deliveries = VecDeque::from(deliveries);
        if let Some(parked) = self.send_deliveries(&mut deliveries, false).await? {
            self.inner.lock().stalled = true;
            let this = Arc::clone(self);
            tokio::spawn(async move { this.finish_stalled(parked, deliveries).await });
            return Ok(false);
        }
        Ok(full)
    }

    /// Sends taken deliveries in order. Without `may_wait`, stops at the first consumer whose
    /// buffer is full and returns that delivery; the rest stay in `deliveries`.
    async fn send_deliveries(
        self: &Arc<Self>,
        deliveries: &mut VecDeque<(usize, Delivery)>,
        may_wait: bool,
    ) -> Result<Option<Parked>> {
        while let Some((lane, delivery)) = deliveries.pop_front() {
            let tag = delivery.consumer_tag.clone().expect("consumer delivery");
            let position = (lane, delivery.offset);
            let queue_tag = queue_tag(lane, delivery.delivery_tag);
            let stored = self.load(position, true).await?;
            if let Some(reason) = self.unusable(&stored, now_ms(), delivery.returns) {
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
                offset: delivery.offset,
                enqueued_ms: stored.enqueued_ms,
                message: stored.message.clone(),
                remaining,
            });
            if may_wait {
                if sink.send(event).await.is_err() {
                    // The connection is gone without cancelling: requeue its messages.
                    self.cancel(&tag, true);
                }
                continue;
            }
            match sink.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => self.cancel(&tag, true),
                Err(TrySendError::Full(event)) => return Ok(Some(Parked { tag, sink, event })),
            }
        }
        Ok(None)
    }

    /// Waits for room for a parked delivery and sends the rest of its batch, then lets turns
    /// deliver again.
    async fn finish_stalled(
        self: Arc<Self>,
        parked: Parked,
        mut rest: VecDeque<(usize, Delivery)>,
    ) {
        if parked.sink.send(parked.event).await.is_err() {
            self.cancel(&parked.tag, true);
        }
        if let Err(e) = self.send_deliveries(&mut rest, true).await {
            tracing::warn!(vhost = %self.vhost, queue = %self.name, error = %e, "queue delivery failed");
        }
        self.inner.lock().stalled = false;
        self.schedule();
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

    /// Expires up to `EXPIRED_PER_TURN_MAX` messages at the head while nobody takes them;
    /// returns when the new head expires, and whether the bound stopped it.
    async fn expire_head(self: &Arc<Self>) -> Result<(Option<i64>, bool)> {
        for _ in 0..EXPIRED_PER_TURN_MAX {
            let head = {
                let inner = self.inner.lock();
                if !(inner.head_check || self.args.message_ttl_ms.is_some()) {
                    return Ok((None, false));
                }
                inner
                    .head_lane()
                    .and_then(|lane| Some((lane, inner.states[lane].peek_ready()?)))
            };
            let Some(position) = head else {
                return Ok((None, false));
            };
            let stored = self.load(position, false).await?;
            match self.unusable(&stored, now_ms(), 0) {
                None => return Ok((self.expires_at(&stored), false)),
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
        }
        Ok((None, true))
    }

    /// Republishes up to `DEAD_LETTERS_PER_TURN_MAX` dead letters to the dead-letter exchange;
    /// `true` if some are left for the next turn.
    async fn flush_dead_letters(self: &Arc<Self>) -> Result<bool> {
        let (dead, more) = {
            let mut inner = self.inner.lock();
            let take = inner.dead.len().min(DEAD_LETTERS_PER_TURN_MAX);
            let dead: Vec<_> = inner.dead.drain(..take).collect();
            (dead, !inner.dead.is_empty())
        };
        if dead.is_empty() {
            return Ok(false);
        }
        let Some(exchange) = self.args.dead_letter_exchange.clone() else {
            return Ok(more);
        };
        let Some(broker) = self.broker.upgrade() else {
            return Ok(false);
        };
        let vhost = broker.vhost(&self.vhost)?;
        let now_s = (now_ms() / 1000) as u64;
        for letter in dead {
            let message = match (&letter.message, letter.position) {
                (Some(message), _) => message.clone(),
                (None, Some(position)) => {
                    let stored = self.load(position, true).await;
                    match stored {
                        Ok(stored) => stored.message.clone(),
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
        Ok(more)
    }

    /// Whether an ack file has unsynced changes or a lane's log a reclaimable prefix.
    pub(crate) fn needs_maintenance(&self) -> bool {
        self.inner.lock().acks_dirty
            || (0..self.lanes.len()).any(|lane| self.reclaimable_prefix(lane).is_some())
    }

    /// Starts a maintenance pass on the blocking pool when one is needed and due; returns when
    /// to look again (`None`: nothing to maintain, no timer).
    fn maintenance_deadline(self: &Arc<Self>) -> Option<i64> {
        let now = now_ms();
        if self.maintaining.load(Ordering::Acquire) {
            return Some(now + MAINTENANCE_INTERVAL_MS);
        }
        if !self.needs_maintenance() {
            return None;
        }
        {
            let mut inner = self.inner.lock();
            if now < inner.maintain_at {
                return Some(inner.maintain_at);
            }
            inner.maintain_at = now + MAINTENANCE_INTERVAL_MS;
            inner.acks_dirty = false;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return None;
        };
        self.maintaining.store(true, Ordering::Release);
        let this = Arc::clone(self);
        runtime.spawn_blocking(move || {
            if let Err(e) = this.maintain() {
                tracing::warn!(vhost = %this.vhost, queue = %this.name, error = %e, "queue maintenance failed");
                this.inner.lock().acks_dirty = true;
            }
            this.maintaining.store(false, Ordering::Release);
        });
        Some(now + MAINTENANCE_INTERVAL_MS)
    }

    /// Ack-file fsync and log reclamation: the fsync and the reclaim (a checkpoint fsync and
    /// the unlink of a 16 MiB segment, ~20 ms) wait on the disk, so they run on the blocking
    /// pool, never on a worker: deliveries must not wait with them. Blocking.
    fn maintain(&self) -> Result<()> {
        for lane in 0..self.lanes.len() {
            self.lanes[lane].acks.sync()?;
            self.reclaim(lane)?;
        }
        Ok(())
    }

    /// `x-expires`: deletes the queue once unused for that long; otherwise returns when it
    /// would expire, so the queue gets a turn in time.
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

    /// The offset `lane`'s log may be cut below, if that frees at least one whole segment:
    /// the settled prefix, held back by anything a pending dead letter still has to read.
    fn reclaimable_prefix(&self, lane: usize) -> Option<Offset> {
        let log = &self.lanes[lane].log;
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
        log.oldest_segment_end()
            .is_some_and(|end| prefix >= end)
            .then_some(prefix)
    }

    /// Deletes `lane`'s log below its reclaimable prefix. Blocking.
    fn reclaim(&self, lane: usize) -> Result<()> {
        let Some(prefix) = self.reclaimable_prefix(lane) else {
            return Ok(());
        };
        let start = self.lanes[lane].log.delete_records_before(prefix)?;
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
