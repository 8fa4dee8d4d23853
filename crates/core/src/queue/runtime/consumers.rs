//! Consumers and settlement: `basic.consume`/`cancel`, `basic.get`, ack/nack/reject, purge
//! and the counts the gateways report.

use std::sync::Arc;

use super::{queue_tag, DeadLetter, Inner, Position, Queue, Subscriber};
use crate::error::{CoreError, Result};
use crate::partition::now_ms;
use crate::queue::api::{ConsumeRequest, OwnerId, QueueDelivery};
use crate::queue::dead_letter::DeadReason;
use crate::queue::state::{MessageCounts, QueueState};

/// One consumer of a queue, whatever protocol made it (its tag says: AMQP's
/// `owner:channel:tag`, MQTT's `mqtt:...`, STOMP's `stomp....`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConsumer {
    pub tag: String,
    /// 0: unlimited.
    pub prefetch: u16,
    pub ack_required: bool,
    pub exclusive: bool,
    /// Deliveries it holds unacknowledged.
    pub unacked: usize,
}

impl Queue {
    /// `basic.consume`. 530 NOT_ALLOWED if the tag is in use on this queue, 403 ACCESS_REFUSED if
    /// an exclusive consumer holds the queue (or this one asks for exclusivity and others exist).
    pub fn consume(&self, request: ConsumeRequest) -> Result<()> {
        {
            let mut inner = self.inner.lock();
            if inner.deleted {
                return Err(CoreError::Routing(
                    crate::routing::RoutingError::QueueNotFound(self.name.to_string()),
                ));
            }
            if inner.exclusive_consumer || (request.exclusive && !inner.consumers.is_empty()) {
                return Err(CoreError::Forbidden(format!(
                    "queue '{}' in vhost '{}' in exclusive use",
                    self.name, self.vhost
                )));
            }
            // One lane: its state enforces prefetch. Several: `Inner::has_room` does, across
            // lanes, and the lanes' own limit is off.
            let lane_prefetch = if self.lanes.len() == 1 {
                request.prefetch
            } else {
                0
            };
            for state in &mut inner.states {
                state.add_consumer(&request.consumer_tag, lane_prefetch, request.no_ack)?;
            }
            inner.consumers.insert(
                Arc::from(request.consumer_tag.as_str()),
                Subscriber {
                    sink: request.sink,
                    owner: request.owner,
                    prefetch: request.prefetch,
                    no_ack: request.no_ack,
                },
            );
            inner.exclusive_consumer |= request.exclusive;
            inner.ever_consumed = true;
            inner.last_used_ms = now_ms();
        }
        self.schedule();
        Ok(())
    }

    /// The consumer goes. With `requeue_unacked` (its connection is gone) its unacked messages
    /// are requeued; without (AMQP `basic.cancel`) they stay outstanding under their tags until
    /// acked, or nacked by the channel when it closes. Unknown tags are ignored. An auto-delete
    /// queue goes with its last consumer.
    pub fn cancel(&self, consumer_tag: &str, requeue_unacked: bool) {
        let auto_delete = {
            let mut inner = self.inner.lock();
            if inner.consumers.remove(consumer_tag).is_none() {
                return;
            }
            for state in &mut inner.states {
                let _ = if requeue_unacked {
                    state.remove_consumer(consumer_tag).map(drop)
                } else {
                    state.detach_consumer(consumer_tag)
                };
            }
            if inner.consumers.is_empty() {
                inner.exclusive_consumer = false;
            }
            inner.last_used_ms = now_ms();
            self.definition.auto_delete
                && inner.ever_consumed
                && inner.consumers.is_empty()
                && !inner.deleted
        };
        self.schedule();
        if auto_delete {
            self.delete_later("auto-delete: last consumer gone");
        }
    }

    /// A re-declare counts as use for `x-expires`, as in RabbitMQ.
    pub(crate) fn touch(&self) {
        self.inner.lock().last_used_ms = now_ms();
        self.schedule();
    }

    /// Whether `owner` (a connection) has consumers here.
    pub fn has_consumers_of(&self, owner: OwnerId) -> bool {
        self.inner
            .lock()
            .consumers
            .values()
            .any(|s| s.owner == owner)
    }

    /// `basic.get`: the next ready message (highest priority first), or `None` (`get-empty`).
    /// With `no_ack` it is settled at once.
    pub async fn get(&self, no_ack: bool) -> Result<Option<QueueDelivery>> {
        loop {
            let (taken, changes) = {
                let mut inner = self.inner.lock();
                if inner.deleted {
                    return Ok(None);
                }
                inner.last_used_ms = now_ms();
                let now = now_ms() as u64;
                let taken = inner
                    .head_lane()
                    .and_then(|lane| Some((lane, inner.states[lane].get(now)?)));
                (taken, inner.take_changes())
            };
            self.persist_before_send(changes).await?;
            let Some((lane, delivery)) = taken else {
                return Ok(None);
            };
            let tag = queue_tag(lane, delivery.delivery_tag);
            let stored = self.load((lane, delivery.offset), true).await?;
            if let Some(reason) = self.unusable(&stored, now_ms(), delivery.returns) {
                self.settle_dead(&[tag], reason)?;
                continue;
            }
            let remaining = {
                let mut inner = self.inner.lock();
                if no_ack {
                    inner.states[lane].ack(delivery.delivery_tag, false)?;
                    inner.forget((lane, delivery.offset));
                }
                inner.ready()
            };
            if no_ack {
                self.persist_changes()?;
                // A turn registers the maintenance (ack fsync, reclaim) the settlement needs.
                self.schedule();
            }
            return Ok(Some(QueueDelivery {
                queue: self.name.clone(),
                consumer_tag: None,
                queue_tag: tag,
                redelivered: delivery.redelivered,
                offset: delivery.offset,
                enqueued_ms: stored.enqueued_ms,
                message: stored.message.clone(),
                remaining,
            }));
        }
    }

    /// `basic.ack` of these queue tags (the gateway expands `multiple`). 406 for an unknown tag;
    /// the tags before it stay acked.
    pub fn ack(&self, queue_tags: &[u64]) -> Result<()> {
        let result = {
            let mut inner = self.inner.lock();
            queue_tags.iter().try_for_each(|&tag| {
                let (lane, lane_tag) = inner.lane_of(tag)?;
                let outcome = inner.states[lane].ack(lane_tag, false)?;
                outcome.acked.iter().for_each(|&o| inner.forget((lane, o)));
                Ok(())
            })
        };
        self.persist_changes()?;
        self.schedule();
        result
    }

    /// `basic.nack` / `basic.reject`: requeue, or dead-letter (or drop) them.
    pub fn nack(&self, queue_tags: &[u64], requeue: bool) -> Result<()> {
        if !requeue {
            return self.settle_dead(queue_tags, Some(DeadReason::Rejected));
        }
        let limit = self.args.delivery_limit;
        let mut limited = false;
        let result = {
            let mut inner = self.inner.lock();
            queue_tags.iter().try_for_each(|&tag| {
                let (lane, lane_tag) = inner.lane_of(tag)?;
                // `x-delivery-limit`: past it, dead-lettered now rather than requeued (RabbitMQ's
                // quorum queues decide at the return, so a queue nobody reads does not keep it).
                if limit.is_some_and(|l| inner.states[lane].returns_if_requeued(lane_tag) > l) {
                    let outcome = inner.states[lane].nack(lane_tag, false, false)?;
                    for offset in outcome.dead {
                        self.discarded(&mut inner, (lane, offset), Some(DeadReason::DeliveryLimit));
                    }
                    limited = true;
                } else {
                    inner.states[lane].nack(lane_tag, false, true)?;
                }
                Ok(())
            })
        };
        if limited {
            self.persist_changes()?;
        }
        self.schedule();
        result
    }

    /// Settles these tags as dead: dead-lettered with `reason` if the queue has a dead-letter
    /// exchange; `None` drops them.
    pub(crate) fn settle_dead(&self, queue_tags: &[u64], reason: Option<DeadReason>) -> Result<()> {
        let result = {
            let mut inner = self.inner.lock();
            queue_tags.iter().try_for_each(|&tag| {
                let (lane, lane_tag) = inner.lane_of(tag)?;
                let outcome = inner.states[lane].nack(lane_tag, false, false)?;
                for offset in outcome.dead {
                    self.discarded(&mut inner, (lane, offset), reason);
                }
                Ok(())
            })
        };
        self.persist_changes()?;
        self.schedule();
        result
    }

    /// A settled message that was not acked: queued for dead-lettering with `reason` (if the
    /// queue has a dead-letter exchange), otherwise forgotten.
    pub(crate) fn discarded(
        &self,
        inner: &mut Inner,
        position: Position,
        reason: Option<DeadReason>,
    ) {
        match reason {
            Some(reason) if self.args.dead_letter_exchange.is_some() => {
                // Keep the cached copy: a turn republishes it.
                if let Some(size) = inner.sizes.remove(&position) {
                    inner.sized_bytes -= u64::from(size);
                }
                inner.dead.push(DeadLetter {
                    position: Some(position),
                    message: None,
                    reason,
                });
            }
            _ => {
                if reason.is_none() {
                    // Only stale transient messages are discarded without a reason.
                    inner.stale_transient = inner.stale_transient.saturating_sub(1);
                }
                inner.forget(position);
            }
        }
    }

    /// `queue.purge`: drops every ready message (not dead-lettered, as RabbitMQ); returns how
    /// many.
    pub fn purge(&self) -> Result<u64> {
        let count = {
            let mut inner = self.inner.lock();
            let count = inner.states.iter_mut().map(QueueState::purge_ready).sum();
            inner.cache_clear();
            inner.sizes.clear();
            inner.sized_bytes = 0;
            count
        };
        self.persist_changes()?;
        self.schedule();
        Ok(count)
    }

    /// Ready messages (`message_count`).
    pub fn ready(&self) -> u64 {
        self.inner.lock().ready()
    }

    /// Delivered and not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.inner
            .lock()
            .states
            .iter()
            .map(QueueState::unacked)
            .sum()
    }

    pub fn consumer_count(&self) -> u32 {
        self.inner.lock().consumers.len() as u32
    }

    /// Every consumer of the queue, by tag (the management API's consumer listing).
    pub fn consumer_list(&self) -> Vec<QueueConsumer> {
        let inner = self.inner.lock();
        let mut consumers: Vec<QueueConsumer> = inner
            .consumers
            .iter()
            .map(|(tag, s)| QueueConsumer {
                tag: tag.to_string(),
                prefetch: s.prefetch,
                ack_required: !s.no_ack,
                exclusive: inner.exclusive_consumer,
                unacked: inner.states.iter().map(|st| st.consumer_unacked(tag)).sum(),
            })
            .collect();
        drop(inner);
        consumers.sort_by(|a, b| a.tag.cmp(&b.tag));
        consumers
    }

    /// When the oldest message still in the queue (ready or unacknowledged) was enqueued, in ms
    /// since the epoch: read from its batch's header (one small read per priority level, from the
    /// page cache as a rule). Blocking I/O: call it off the reactor (the metrics scrape does).
    pub fn oldest_message_ms(&self) -> Option<i64> {
        let heads: Vec<(usize, porter_storage::Offset)> = {
            let inner = self.inner.lock();
            inner
                .states
                .iter()
                .enumerate()
                .filter_map(|(lane, st)| st.oldest_unsettled().map(|offset| (lane, offset)))
                .collect()
        };
        heads
            .into_iter()
            .filter_map(|(lane, offset)| {
                let headers = self.lanes[lane].log.batch_headers(offset, 1).ok()?;
                headers.first().map(|h| h.base_timestamp)
            })
            .min()
    }

    /// Messages taken in, delivered and acknowledged so far (every priority level together).
    pub fn message_counts(&self) -> MessageCounts {
        self.inner
            .lock()
            .states
            .iter()
            .map(QueueState::counts)
            .fold(MessageCounts::default(), |a, b| a + b)
    }
}
