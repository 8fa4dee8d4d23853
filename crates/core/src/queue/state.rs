//! [`QueueState`]: one queue's delivery state machine.
//!
//! ```text
//!   on_append ──▶ fresh ──next_delivery / get──▶ unacked ──ack──────────────▶ settled
//!                   ▲                              │  │ └─nack/reject(!requeue)──▶ settled, dead
//!                   │           requeued ◀─────────┘  │  (nack/reject(requeue), consumer removed,
//!                   │  (redelivered first, flagged)   │   recover, crash + restore)
//!                   └── no_ack consumer: settled on delivery
//! ```
//!
//! Every offset in `[log_start, log_end)` is in exactly one of: settled, requeued, unacked, or
//! fresh (at or above `next_fresh`). Methods come in three families, called in this order by the
//! gateway: inputs (`on_append`, `add_consumer`, `remove_consumer`, `ack`, `nack`, `reject`,
//! `recover`), outputs (`next_delivery`, `get`, `take_ack_changes`), and reads (`ready`,
//! `unacked`, `consumers`, `settled_prefix`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use porter_storage::Offset;

use super::error::QueueError;
use super::limits::{
    CONSUMERS_PER_QUEUE_MAX, DELIVERED_WATERMARK_STEP, SETTLED_RANGES_MAX, UNACKED_PER_QUEUE_MAX,
};
use super::range_set::RangeSet;

/// One message handed to a consumer (or to `basic.get`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub offset: Offset,
    /// `None` for a [`QueueState::get`] delivery.
    pub consumer_tag: Option<Arc<str>>,
    /// Unique within this `QueueState` and increasing, starting at 1, never reused (also not after
    /// a requeue: a redelivery gets a new tag). AMQP tags are per channel: the gateway keeps a
    /// channel-tag → (queue, queue-tag) map and translates both ways.
    pub delivery_tag: u64,
    /// The message may have been delivered before (requeued, or unacked when the broker stopped).
    pub redelivered: bool,
    /// Times it came back to the queue unacknowledged before this delivery (a nack or reject
    /// with requeue, its consumer gone, a restart): what `x-delivery-limit` counts.
    pub returns: u32,
}

/// A durable record of the state's progress. The caller appends these, in the order
/// [`QueueState::take_ack_changes`] returns them, to the queue's ack file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckChange {
    /// These offsets are settled (acked, dropped, or delivered to a `no_ack` consumer): never
    /// deliver them again; the log may reclaim them once below [`QueueState::settled_prefix`].
    Settled(Range<Offset>),
    /// Every offset that may have been delivered lies below this. It runs ahead of deliveries by
    /// up to [`DELIVERED_WATERMARK_STEP`]; the caller must make it durable **before** sending any
    /// delivery taken after it, or a crash could redeliver a message without the redelivered flag.
    DeliveredWatermark(Offset),
}

/// What an ack, nack, reject, consumer removal or recover did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettleOutcome {
    /// Acked offsets, ascending.
    pub acked: Vec<Offset>,
    /// Back in the queue, ascending; they are delivered before any fresh message, flagged
    /// redelivered.
    pub requeued: Vec<Offset>,
    /// Rejected without requeue, ascending: settled here, the caller dead-letters them (if the
    /// queue has a dead-letter exchange) or lets them go.
    pub dead: Vec<Offset>,
}

/// The persisted form, folded from [`AckChange`]s: what [`QueueState::restore`] needs. Also what
/// a compaction of the ack file rewrites (its ranges, then its watermark).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistedAcks {
    pub settled: RangeSet,
    pub delivered_watermark: Offset,
}

impl PersistedAcks {
    /// Nothing was ever persisted: the ack file of a queue opened for the first time.
    pub fn is_empty(&self) -> bool {
        self.settled.is_empty() && self.delivered_watermark == 0
    }

    pub fn apply(&mut self, change: &AckChange) {
        match change {
            AckChange::Settled(range) => self.settled.insert(range.clone()),
            AckChange::DeliveredWatermark(w) => {
                self.delivered_watermark = self.delivered_watermark.max(*w)
            }
        }
    }
}

struct Consumer {
    tag: Arc<str>,
    /// 0 = unlimited (AMQP `basic.qos` prefetch-count 0).
    prefetch: u16,
    no_ack: bool,
    unacked: usize,
}

impl Consumer {
    fn has_room(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.unacked < usize::from(self.prefetch)
    }
}

struct Unacked {
    offset: Offset,
    /// `None` for `basic.get`.
    owner: Option<Arc<str>>,
    delivered_at_ms: u64,
}

pub struct QueueState {
    /// Lowest offset still in the log.
    log_start: Offset,
    /// One past the last appended offset.
    log_end: Offset,
    /// Offsets at or above this were never delivered (since the last restore, at least).
    next_fresh: Offset,
    /// The highest watermark handed out in an [`AckChange`]; always ≥ `next_fresh`.
    delivered_watermark: Offset,
    /// Offsets below `next_fresh` waiting for redelivery, in offset order.
    requeued: BTreeSet<Offset>,
    /// How often each requeued or unacked offset came back unacknowledged; only offsets that
    /// did are here, so its size is bounded by `requeued` + `unacked`.
    returns: HashMap<Offset, u32>,
    /// Outstanding deliveries by tag.
    unacked: BTreeMap<u64, Unacked>,
    settled: RangeSet,
    /// Round-robin order; `cursor` is the index tried first next time.
    consumers: Vec<Consumer>,
    cursor: usize,
    next_delivery_tag: u64,
    /// RabbitMQ's `x-single-active-consumer`: only the longest-standing consumer receives.
    single_active: bool,
    /// Changes not yet taken by the caller.
    pending_changes: Vec<AckChange>,
    /// Deliveries, redeliveries and acknowledgements since this state was made (the broker's
    /// start, for a restored queue): the management API's message rates come from them.
    counts: MessageCounts,
}

/// How many messages a queue took in, delivered and had acknowledged: cumulative, so rates are
/// differences between two readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Messages appended since the queue was created (its log's end offset).
    pub published: u64,
    /// Deliveries to consumers and gets, redeliveries included.
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
}

impl std::ops::Add for MessageCounts {
    type Output = MessageCounts;

    fn add(self, other: MessageCounts) -> MessageCounts {
        MessageCounts {
            published: self.published + other.published,
            delivered: self.delivered + other.delivered,
            redelivered: self.redelivered + other.redelivered,
            acked: self.acked + other.acked,
        }
    }
}

impl Default for QueueState {
    fn default() -> Self {
        Self::new()
    }
}

impl QueueState {
    /// A new queue over an empty log starting at offset 0.
    pub fn new() -> Self {
        Self::empty(0, 0)
    }

    fn empty(log_start: Offset, log_end: Offset) -> Self {
        QueueState {
            log_start,
            log_end,
            next_fresh: log_start,
            delivered_watermark: log_start,
            requeued: BTreeSet::new(),
            returns: HashMap::new(),
            unacked: BTreeMap::new(),
            settled: RangeSet::new(),
            consumers: Vec::new(),
            cursor: 0,
            next_delivery_tag: 1,
            single_active: false,
            pending_changes: Vec::new(),
            counts: MessageCounts::default(),
        }
    }

    /// Rebuilds after a restart from the folded ack file and the log's bounds. Unsettled offsets
    /// below the watermark may have been delivered: they come back requeued, flagged redelivered;
    /// settled ones are never delivered again. No consumers, no unacked: clients reconnect.
    pub fn restore(
        persisted: &PersistedAcks,
        log_start: Offset,
        log_end: Offset,
    ) -> Result<Self, QueueError> {
        assert!(0 <= log_start && log_start <= log_end, "log bounds");
        if persisted.settled.range_count() > SETTLED_RANGES_MAX {
            return Err(QueueError::CorruptAckState {
                offset: persisted.settled.end().unwrap_or(0),
                reason: "more settled ranges than SETTLED_RANGES_MAX",
            });
        }
        if let Some(end) = persisted.settled.end() {
            if end > log_end {
                return Err(QueueError::CorruptAckState {
                    offset: end,
                    reason: "settled offsets past the log's end",
                });
            }
        }
        let mut state = Self::empty(log_start, log_end);
        state.settled = persisted.settled.clone();
        state.settled.remove_below(log_start);
        // A settled offset was delivered, so the watermark covers it even if its own record
        // was lost; and nothing past the log's end was delivered.
        let watermark = persisted
            .delivered_watermark
            .max(state.settled.end().unwrap_or(log_start))
            .clamp(log_start, log_end);
        let mut gap_start = log_start;
        let settled: Vec<Range<Offset>> = state.settled.iter().collect();
        for range in settled {
            state.requeue_span(gap_start..range.start.min(watermark))?;
            gap_start = range.end;
        }
        state.requeue_span(gap_start..watermark)?;
        state.next_fresh = watermark;
        state.delivered_watermark = watermark;
        state.check_invariants();
        Ok(state)
    }

    /// Moves the delivered watermark a step ahead of the next fresh delivery if it has no room
    /// left, and returns the change to persist (and fsync) before any delivery. A new queue
    /// takes it when it is created, so its first deliveries do not wait for that fsync.
    pub fn reserve_watermark(&mut self) -> Option<AckChange> {
        if self.next_fresh < self.delivered_watermark {
            return None;
        }
        self.delivered_watermark = self.next_fresh + DELIVERED_WATERMARK_STEP;
        self.check_invariants();
        Some(AckChange::DeliveredWatermark(self.delivered_watermark))
    }

    fn requeue_span(&mut self, span: Range<Offset>) -> Result<(), QueueError> {
        if span.start >= span.end {
            return Ok(());
        }
        let count = (span.end - span.start) as usize;
        if self.requeued.len() + count > UNACKED_PER_QUEUE_MAX + DELIVERED_WATERMARK_STEP as usize {
            return Err(QueueError::CorruptAckState {
                offset: span.start,
                reason: "more unsettled offsets below the watermark than could be outstanding",
            });
        }
        for offset in span {
            self.requeued.insert(offset);
            // May have been delivered before the restart: count it as one return.
            self.returns.insert(offset, 1);
        }
        Ok(())
    }

    /// Only the first consumer (the longest-standing one) receives; when it goes, the next in
    /// line takes over (RabbitMQ's `x-single-active-consumer`).
    pub fn set_single_active(&mut self, single_active: bool) {
        self.single_active = single_active;
    }

    /// The consumer deliveries go to under single-active-consumer.
    pub fn active_consumer(&self) -> Option<&str> {
        self.consumers.first().map(|c| &*c.tag)
    }

    // ---- inputs ----

    /// The log now ends at `last_offset` (inclusive). Appends are contiguous and ordered: a gap or
    /// a step back is a bug in the caller, not an operating error.
    pub fn on_append(&mut self, last_offset: Offset) {
        assert!(
            last_offset + 1 >= self.log_end,
            "append went backwards: {last_offset} < {}",
            self.log_end
        );
        self.log_end = last_offset + 1;
    }

    /// `basic.consume`. New consumers go last in the round-robin order.
    pub fn add_consumer(
        &mut self,
        tag: &str,
        prefetch: u16,
        no_ack: bool,
    ) -> Result<(), QueueError> {
        if self.consumers.iter().any(|c| &*c.tag == tag) {
            return Err(QueueError::ConsumerTagInUse(tag.to_string()));
        }
        if self.consumers.len() >= CONSUMERS_PER_QUEUE_MAX {
            return Err(QueueError::LimitExceeded("CONSUMERS_PER_QUEUE_MAX"));
        }
        self.consumers.push(Consumer {
            tag: Arc::from(tag),
            prefetch,
            no_ack,
            unacked: 0,
        });
        Ok(())
    }

    /// The consumer's connection is gone: it goes, and its unacked messages are requeued; the
    /// returned offsets are ascending.
    pub fn remove_consumer(&mut self, tag: &str) -> Result<Vec<Offset>, QueueError> {
        self.unlink_consumer(tag)?;
        let tags = self.tags_owned_by(Some(tag), u64::MAX);
        let requeued = self.requeue_tags(&tags);
        self.check_invariants();
        Ok(requeued)
    }

    /// AMQP `basic.cancel`: the consumer gets no more deliveries, but what it holds stays
    /// outstanding under its tag (the client may still ack it; RabbitMQ requeues it only when
    /// the channel closes, which the gateway does with `nack(requeue)`).
    pub fn detach_consumer(&mut self, tag: &str) -> Result<(), QueueError> {
        self.unlink_consumer(tag)?;
        self.check_invariants();
        Ok(())
    }

    /// Takes the consumer out of the round-robin order, keeping the cursor on the same next one.
    fn unlink_consumer(&mut self, tag: &str) -> Result<(), QueueError> {
        let index = self
            .consumers
            .iter()
            .position(|c| &*c.tag == tag)
            .ok_or_else(|| QueueError::UnknownConsumer(tag.to_string()))?;
        self.consumers.remove(index);
        if index < self.cursor {
            self.cursor -= 1;
        }
        if self.cursor >= self.consumers.len() {
            self.cursor = 0;
        }
        Ok(())
    }

    /// `basic.ack`. With `multiple`, settles every outstanding tag up to `delivery_tag` held by
    /// the same consumer (or by `basic.get`) as `delivery_tag`. AMQP's `multiple` spans a channel;
    /// the gateway, which knows which consumers share a channel, calls once per queue-consumer.
    pub fn ack(&mut self, delivery_tag: u64, multiple: bool) -> Result<SettleOutcome, QueueError> {
        let tags = self.select(delivery_tag, multiple)?;
        let acked = self.settle_tags(&tags);
        self.counts.acked += acked.len() as u64;
        self.check_invariants();
        Ok(SettleOutcome {
            acked,
            ..SettleOutcome::default()
        })
    }

    /// `basic.nack`: requeue (redelivered first, flagged) or drop (`dead`, for dead-lettering).
    pub fn nack(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<SettleOutcome, QueueError> {
        let tags = self.select(delivery_tag, multiple)?;
        let outcome = if requeue {
            SettleOutcome {
                requeued: self.requeue_tags(&tags),
                ..SettleOutcome::default()
            }
        } else {
            SettleOutcome {
                dead: self.settle_tags(&tags),
                ..SettleOutcome::default()
            }
        };
        self.check_invariants();
        Ok(outcome)
    }

    /// `basic.reject`: a `nack` of one tag.
    pub fn reject(
        &mut self,
        delivery_tag: u64,
        requeue: bool,
    ) -> Result<SettleOutcome, QueueError> {
        self.nack(delivery_tag, false, requeue)
    }

    /// `basic.recover` for one consumer (`None`: the `basic.get` deliveries): requeue all its
    /// unacked messages. `requeue = false` (redeliver to the same consumer) is refused, as in
    /// RabbitMQ.
    pub fn recover(
        &mut self,
        consumer_tag: Option<&str>,
        requeue: bool,
    ) -> Result<SettleOutcome, QueueError> {
        if !requeue {
            return Err(QueueError::RecoverWithoutRequeue);
        }
        let tags = self.tags_owned_by(consumer_tag, u64::MAX);
        let requeued = self.requeue_tags(&tags);
        self.check_invariants();
        Ok(SettleOutcome {
            requeued,
            ..SettleOutcome::default()
        })
    }

    // ---- outputs ----

    /// The next delivery to a consumer, if a message is ready and some consumer has prefetch room.
    /// Round-robin from the consumer after the last one served (RabbitMQ's fair dispatch with
    /// prefetch 1); requeued offsets first, lowest first, then the next fresh offset. Call until
    /// `None`, then [`Self::take_ack_changes`] and persist them before sending the deliveries.
    pub fn next_delivery(&mut self, now_ms: u64) -> Option<Delivery> {
        self.next_delivery_where(now_ms, |_| true)
    }

    /// [`Self::next_delivery`] among the consumers `eligible` also accepts: a priority queue
    /// keeps one state per priority level and checks each consumer's prefetch across all of them.
    pub fn next_delivery_where(
        &mut self,
        now_ms: u64,
        eligible: impl Fn(&str) -> bool,
    ) -> Option<Delivery> {
        if !self.has_ready() || self.unacked.len() >= UNACKED_PER_QUEUE_MAX {
            return None;
        }
        let count = if self.single_active {
            self.consumers.len().min(1)
        } else {
            self.consumers.len()
        };
        let index = (0..count)
            .map(|i| (self.cursor + i) % count)
            .find(|&i| self.consumers[i].has_room() && eligible(&self.consumers[i].tag))?;
        self.cursor = (index + 1) % count;
        let (tag, no_ack) = {
            let consumer = &self.consumers[index];
            (consumer.tag.clone(), consumer.no_ack)
        };
        let (offset, redelivered) = self.take_ready().expect("has_ready");
        let returns = self.returns_of(offset);
        let delivery_tag = self.issue_tag();
        if no_ack {
            self.settle_offsets(&[offset]);
        } else {
            self.consumers[index].unacked += 1;
            self.track(delivery_tag, offset, Some(tag.clone()), now_ms);
        }
        self.check_invariants();
        Some(Delivery {
            offset,
            consumer_tag: Some(tag),
            delivery_tag,
            redelivered,
            returns,
        })
    }

    /// `basic.get` with `no_ack = false`: the next ready message, outside any consumer's prefetch,
    /// to be acked like a consumer delivery. `None` is `basic.get-empty` (also when the queue's
    /// unacked limit is reached). For `no_ack = true` the gateway acks the tag at once.
    pub fn get(&mut self, now_ms: u64) -> Option<Delivery> {
        if !self.has_ready() || self.unacked.len() >= UNACKED_PER_QUEUE_MAX {
            return None;
        }
        let (offset, redelivered) = self.take_ready().expect("has_ready");
        let returns = self.returns_of(offset);
        let delivery_tag = self.issue_tag();
        self.track(delivery_tag, offset, None, now_ms);
        self.check_invariants();
        Some(Delivery {
            offset,
            consumer_tag: None,
            delivery_tag,
            redelivered,
            returns,
        })
    }

    /// The offset the next delivery would take, without taking it (TTL checks at the head).
    pub fn peek_ready(&self) -> Option<Offset> {
        match self.requeued.first() {
            Some(&offset) => Some(offset),
            None if self.next_fresh < self.log_end => Some(self.next_fresh),
            None => None,
        }
    }

    /// Settles the message [`Self::peek_ready`] names without delivering it: expired at the
    /// head, dropped by `x-max-length`, or a transient message from before a restart.
    pub fn discard_next_ready(&mut self) -> Option<Offset> {
        let (offset, _) = self.take_ready()?;
        self.settle_offsets(&[offset]);
        self.check_invariants();
        Some(offset)
    }

    /// `queue.purge`: settles every ready message (not the unacked ones); returns how many.
    /// The fresh part is one range however long the backlog.
    pub fn purge_ready(&mut self) -> u64 {
        let requeued: Vec<Offset> = std::mem::take(&mut self.requeued).into_iter().collect();
        self.settle_offsets(&requeued);
        let fresh = self.next_fresh..self.log_end;
        let count = requeued.len() as u64 + (fresh.end - fresh.start) as u64;
        if !fresh.is_empty() {
            self.next_fresh = self.log_end;
            if self.next_fresh > self.delivered_watermark {
                self.delivered_watermark = self.next_fresh;
                self.pending_changes
                    .push(AckChange::DeliveredWatermark(self.delivered_watermark));
            }
            self.settled.insert(fresh.clone());
            self.pending_changes.push(AckChange::Settled(fresh));
        }
        self.check_invariants();
        count
    }

    /// The durable records produced since the last call, in order. See [`AckChange`] for the
    /// one ordering rule.
    pub fn take_ack_changes(&mut self) -> Vec<AckChange> {
        std::mem::take(&mut self.pending_changes)
    }

    // ---- reads ----

    /// Messages ready for delivery (`queue.declare-ok` message-count).
    pub fn ready(&self) -> u64 {
        self.requeued.len() as u64 + (self.log_end - self.next_fresh) as u64
    }

    /// Messages `consumer_tag` holds unacknowledged here.
    pub fn consumer_unacked(&self, consumer_tag: &str) -> usize {
        self.consumers
            .iter()
            .find(|c| &*c.tag == consumer_tag)
            .map_or(0, |c| c.unacked)
    }

    /// Whether `offset` is settled (acked, dropped or dead-lettered).
    pub fn is_settled(&self, offset: Offset) -> bool {
        offset < self.log_start || self.settled.contains(offset)
    }

    /// Whether `delivery_tag` is outstanding (delivered, not yet settled or requeued).
    pub fn is_unacked(&self, delivery_tag: u64) -> bool {
        self.unacked.contains_key(&delivery_tag)
    }

    /// Messages taken in, delivered and acknowledged so far.
    pub fn counts(&self) -> MessageCounts {
        MessageCounts {
            published: self.log_end.max(0) as u64,
            ..self.counts
        }
    }

    /// Messages delivered and not yet acked.
    pub fn unacked(&self) -> u64 {
        self.unacked.len() as u64
    }

    /// `queue.declare-ok` consumer-count.
    pub fn consumers(&self) -> u32 {
        self.consumers.len() as u32
    }

    /// The lowest offset not yet settled: everything below can be deleted from the log.
    pub fn settled_prefix(&self) -> Offset {
        match self.settled.range_containing(self.log_start) {
            Some(range) => range.end,
            None => self.log_start,
        }
    }

    /// The lowest offset still in the queue (ready or unacknowledged), if any.
    pub fn oldest_unsettled(&self) -> Option<Offset> {
        let offset = self.settled_prefix();
        (offset < self.log_end).then_some(offset)
    }

    /// Delivery time of the oldest outstanding delivery, for a consumer-timeout check
    /// (RabbitMQ's `consumer_timeout`).
    pub fn oldest_unacked_ms(&self) -> Option<u64> {
        self.unacked.values().map(|u| u.delivered_at_ms).min()
    }

    /// The log was truncated at the front up to `offset` (only ever over the settled prefix).
    pub fn on_log_start(&mut self, offset: Offset) {
        assert!(
            offset <= self.settled_prefix(),
            "reclaimed unsettled offsets"
        );
        if offset > self.log_start {
            self.log_start = offset;
            self.settled.remove_below(offset);
        }
    }

    // ---- internals ----

    fn has_ready(&self) -> bool {
        !self.requeued.is_empty() || self.next_fresh < self.log_end
    }

    /// Takes the next ready offset: requeued first (redelivered), else fresh (advancing the
    /// delivered watermark in steps).
    fn take_ready(&mut self) -> Option<(Offset, bool)> {
        if let Some(offset) = self.requeued.pop_first() {
            self.counts.delivered += 1;
            self.counts.redelivered += 1;
            return Some((offset, true));
        }
        if self.next_fresh >= self.log_end {
            return None;
        }
        self.counts.delivered += 1;
        let offset = self.next_fresh;
        self.next_fresh += 1;
        if self.next_fresh > self.delivered_watermark {
            self.delivered_watermark = offset + DELIVERED_WATERMARK_STEP;
            self.pending_changes
                .push(AckChange::DeliveredWatermark(self.delivered_watermark));
        }
        Some((offset, false))
    }

    /// How many times the message under `delivery_tag` will have come back if it is requeued
    /// now (0 for an unknown tag): the runtime dead-letters instead past `x-delivery-limit`.
    pub fn returns_if_requeued(&self, delivery_tag: u64) -> u32 {
        self.unacked
            .get(&delivery_tag)
            .map_or(0, |u| self.returns_of(u.offset) + 1)
    }

    fn returns_of(&self, offset: Offset) -> u32 {
        self.returns.get(&offset).copied().unwrap_or(0)
    }

    fn issue_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }

    fn track(&mut self, tag: u64, offset: Offset, owner: Option<Arc<str>>, now_ms: u64) {
        let previous = self.unacked.insert(
            tag,
            Unacked {
                offset,
                owner,
                delivered_at_ms: now_ms,
            },
        );
        assert!(previous.is_none(), "delivery tag {tag} reused");
    }

    /// The tags `delivery_tag` (with `multiple`, and all its owner's lower ones) designates.
    fn select(&self, delivery_tag: u64, multiple: bool) -> Result<Vec<u64>, QueueError> {
        let entry = self
            .unacked
            .get(&delivery_tag)
            .ok_or(QueueError::UnknownDeliveryTag(delivery_tag))?;
        if !multiple {
            return Ok(vec![delivery_tag]);
        }
        Ok(self.tags_owned_by(entry.owner.as_deref(), delivery_tag))
    }

    fn tags_owned_by(&self, owner: Option<&str>, up_to: u64) -> Vec<u64> {
        self.unacked
            .range(..=up_to)
            .filter(|(_, u)| u.owner.as_deref() == owner)
            .map(|(&tag, _)| tag)
            .collect()
    }

    /// Removes `tags` from the unacked map, crediting their consumers. Returns sorted offsets.
    fn release(&mut self, tags: &[u64]) -> Vec<Offset> {
        let mut offsets = Vec::with_capacity(tags.len());
        for tag in tags {
            let entry = self.unacked.remove(tag).expect("selected tag is unacked");
            if let Some(owner) = &entry.owner {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.tag == *owner) {
                    c.unacked -= 1;
                }
            }
            offsets.push(entry.offset);
        }
        offsets.sort_unstable();
        offsets
    }

    fn settle_tags(&mut self, tags: &[u64]) -> Vec<Offset> {
        let offsets = self.release(tags);
        self.settle_offsets(&offsets);
        offsets
    }

    fn requeue_tags(&mut self, tags: &[u64]) -> Vec<Offset> {
        let offsets = self.release(tags);
        for &offset in &offsets {
            let fresh = self.requeued.insert(offset);
            assert!(fresh, "offset {offset} requeued twice");
            *self.returns.entry(offset).or_insert(0) += 1;
        }
        offsets
    }

    fn settle_offsets(&mut self, sorted: &[Offset]) {
        if !self.returns.is_empty() {
            for offset in sorted {
                self.returns.remove(offset);
            }
        }
        for run in RangeSet::runs(sorted) {
            self.settled.insert(run.clone());
            self.pending_changes.push(AckChange::Settled(run));
        }
        debug_assert!(self.settled.range_count() <= SETTLED_RANGES_MAX);
    }

    /// The invariants the module doc promises. Costly, so only in tests; tests call it after
    /// every operation through the public methods.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        self.settled.assert_consistent();
        assert!(self.log_start <= self.next_fresh && self.next_fresh <= self.log_end);
        assert!(self.next_fresh <= self.delivered_watermark);
        assert!(self.unacked.len() <= UNACKED_PER_QUEUE_MAX);
        assert!(self.returns.len() <= self.requeued.len() + self.unacked.len());
        assert!(
            self.requeued.len() + self.unacked.len()
                <= UNACKED_PER_QUEUE_MAX + DELIVERED_WATERMARK_STEP as usize
        );
        if let Some(end) = self.settled.end() {
            assert!(
                end <= self.next_fresh,
                "settled offset {end} never delivered"
            );
        }
        // The per-offset checks are O(n) per call; the limit tests fill the queue, skip them there.
        if self.unacked.len() + (self.next_fresh - self.log_start) as usize > 4_096 {
            return;
        }
        let unacked: BTreeSet<Offset> = self.unacked.values().map(|u| u.offset).collect();
        assert_eq!(unacked.len(), self.unacked.len(), "offset unacked twice");
        for offset in self.log_start..self.next_fresh {
            let states = [
                self.settled.contains(offset),
                self.requeued.contains(&offset),
                unacked.contains(&offset),
            ];
            assert_eq!(
                states.iter().filter(|&&s| s).count(),
                1,
                "offset {offset}: settled/requeued/unacked = {states:?}"
            );
        }
        for consumer in &self.consumers {
            let held = self
                .unacked
                .values()
                .filter(|u| u.owner.as_deref() == Some(&*consumer.tag))
                .count();
            assert_eq!(held, consumer.unacked, "consumer {:?} count", consumer.tag);
            assert!(
                consumer.no_ack || consumer.prefetch == 0 || held <= usize::from(consumer.prefetch)
            );
        }
        assert!(self.unacked.keys().all(|&t| t < self.next_delivery_tag));
    }

    #[cfg(not(test))]
    fn check_invariants(&self) {}
}
