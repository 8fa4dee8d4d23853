//! [`Queue`]: a running queue: its log (porter-storage), its [`QueueState`], its durable ack file,
//! its consumers' sinks, and the delivery task ([`super::delivery`]) that moves ready messages to
//! consumers, expires them, dead-letters them and reclaims the log behind the acks.
//!
//! Priority queues (`x-max-priority`) keep one *lane* per priority level: its own log, ack file
//! and [`QueueState`], as RabbitMQ keeps one backing queue per priority. Deliveries take from the
//! highest lane with a ready message; a consumer's prefetch counts across all lanes. A queue
//! without priorities has one lane. Queue delivery tags carry their lane in the low bits.
//!
//! Locking: one `parking_lot` mutex over the mutable state, never held across an `.await`. It is
//! held across a log append so that offsets reach the state in log order; that is one page-cache
//! write, done on the blocking pool.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use porter_storage::records::decode_batches;
use porter_storage::{FileCache, FlushMode, Log, LogConfig, Offset};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ack_log::{AckLog, SharedAckLog};
use super::api::{ConsumeRequest, ConsumerEvent, ConsumerSink, OwnerId, QueueDelivery};
use super::dead_letter::DeadReason;
use super::definition::{Overflow, QueueArguments, QueueDefinition};
use super::state::{AckChange, QueueState};
use crate::error::{CoreError, Result};
use crate::message::{Message, StoredMessage};
use crate::partition::{blocking, now_ms, run_blocking};
use crate::Broker;

/// Segment size of queue logs: small, so that acked prefixes are reclaimed soon.
pub const QUEUE_SEGMENT_BYTES: u64 = 16 << 20;
/// A file in the queue's directory: present once a transient message was written.
const TRANSIENT_MARKER: &str = "has-transient";

/// Counts the unsettled transient messages in the lanes' logs (all from an earlier
/// incarnation, at open). Reads the unsettled part of each log once. Blocking.
fn count_transient(lanes: &[LaneFiles], states: &[QueueState]) -> Result<u64> {
    let mut count = 0;
    for (lane, state) in lanes.iter().zip(states) {
        let mut offset = state.settled_prefix();
        let end = lane.log.log_end_offset();
        while offset < end {
            let slice = lane.log.read(offset, 1 << 20)?;
            let records = decode_batches(slice.bytes)?;
            let Some(last) = records.last().map(|r| r.offset) else {
                break;
            };
            for record in records.iter().filter(|r| r.offset >= offset) {
                if state.is_settled(record.offset) {
                    continue;
                }
                if Message::decode(record).is_ok_and(|m| m.epoch.is_some()) {
                    count += 1;
                }
            }
            offset = last + 1;
        }
    }
    Ok(count)
}

/// Largest record batch (one message plus its properties) a queue log accepts.
pub const QUEUE_BATCH_BYTES_MAX: u32 = 513 << 20;
/// Decoded messages kept in memory per queue, waiting for delivery, so a consumer that keeps up
/// never reads the log. Past this, messages are read back from the log (page cache) in chunks.
pub const QUEUE_CACHE_BYTES_MAX: usize = 8 << 20;
/// Messages up to this body size are appended on the calling task (see `Queue::append`).
pub const INLINE_APPEND_BYTES_MAX: usize = 64 << 10;
/// Bytes read per log read when a message is not in the cache (read-ahead for the next ones).
pub(crate) const READ_AHEAD_BYTES: u32 = 256 << 10;

pub struct Queue {
    pub(crate) name: Arc<str>,
    pub(crate) vhost: String,
    pub(crate) definition: QueueDefinition,
    pub(crate) args: QueueArguments,
    pub(crate) lanes: Vec<LaneFiles>,
    pub(crate) dir: PathBuf,
    /// This broker incarnation; transient messages carry it (see `StoredMessage::epoch`).
    pub(crate) epoch: u64,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) wake: Notify,
    pub(crate) broker: Weak<Broker>,
    pub(crate) closed: CancellationToken,
    /// Whether this incarnation has written the transient marker.
    pub(crate) transient_marked: std::sync::atomic::AtomicBool,
}

/// One priority level's files.
pub(crate) struct LaneFiles {
    pub(crate) log: Arc<Log>,
    pub(crate) acks: Arc<SharedAckLog>,
}

/// Where a message is: (lane, offset in that lane's log).
pub(crate) type Position = (usize, Offset);

/// Low bits of a queue delivery tag that name the lane.
const LANE_BITS: u32 = 4;
const _: () = assert!(super::definition::MAX_PRIORITY_MAX < (1 << LANE_BITS));

pub(crate) fn queue_tag(lane: usize, lane_tag: u64) -> u64 {
    (lane_tag << LANE_BITS) | lane as u64
}

pub(crate) fn split_tag(tag: u64) -> (usize, u64) {
    ((tag & ((1 << LANE_BITS) - 1)) as usize, tag >> LANE_BITS)
}

pub(crate) struct Subscriber {
    pub(crate) sink: ConsumerSink,
    pub(crate) owner: OwnerId,
    /// Across all lanes; 0 = unlimited.
    pub(crate) prefetch: u16,
    pub(crate) no_ack: bool,
}

/// A message on its way to the dead-letter exchange: in the log (settled, not yet reclaimed) or,
/// for `reject-publish-dlx`, never appended.
pub(crate) struct DeadLetter {
    pub(crate) position: Option<Position>,
    pub(crate) message: Option<Arc<Message>>,
    pub(crate) reason: DeadReason,
}

pub(crate) struct Inner {
    /// One per lane, lowest priority first.
    pub(crate) states: Vec<QueueState>,
    pub(crate) consumers: HashMap<Arc<str>, Subscriber>,
    pub(crate) exclusive_consumer: bool,
    pub(crate) ever_consumed: bool,
    pub(crate) last_used_ms: i64,
    /// Undelivered messages by position, at most `QUEUE_CACHE_BYTES_MAX` of bodies.
    pub(crate) cache: BTreeMap<Position, Arc<StoredMessage>>,
    pub(crate) cache_bytes: usize,
    /// Body sizes of unsettled messages, kept only under `x-max-length-bytes`.
    pub(crate) sizes: BTreeMap<Position, u32>,
    pub(crate) sized_bytes: u64,
    pub(crate) dead: Vec<DeadLetter>,
    /// The head may hold a message that must not be delivered (TTL, per-message expiration, a
    /// transient message from before a restart): the delivery task looks at it.
    pub(crate) head_check: bool,
    pub(crate) deleted: bool,
    /// Transient messages from before the last restart still in the log: skipped (dropped)
    /// when reached, and not counted as ready meanwhile.
    pub(crate) stale_transient: u64,
}

impl Inner {
    /// Forgets what a settled message held in memory.
    pub(crate) fn forget(&mut self, position: Position) {
        if let Some(m) = self.cache.remove(&position) {
            self.cache_bytes -= m.message.body.len();
        }
        if let Some(size) = self.sizes.remove(&position) {
            self.sized_bytes -= u64::from(size);
        }
    }

    fn cache_insert(&mut self, position: Position, message: Arc<StoredMessage>) {
        let len = message.message.body.len();
        if self.cache_bytes + len <= QUEUE_CACHE_BYTES_MAX && !self.cache.contains_key(&position) {
            self.cache_bytes += len;
            self.cache.insert(position, message);
        }
    }

    fn cache_take(&mut self, position: Position) -> Option<Arc<StoredMessage>> {
        let message = self.cache.remove(&position)?;
        self.cache_bytes -= message.message.body.len();
        Some(message)
    }

    /// Ready messages in all lanes.
    pub(crate) fn ready(&self) -> u64 {
        let ready: u64 = self.states.iter().map(QueueState::ready).sum();
        ready.saturating_sub(self.stale_transient)
    }

    /// The lane the next delivery comes from: the highest with a ready message.
    pub(crate) fn head_lane(&self) -> Option<usize> {
        (0..self.states.len())
            .rev()
            .find(|&lane| self.states[lane].peek_ready().is_some())
    }

    /// Whether `tag` may take one more message, counting what it holds in every lane.
    pub(crate) fn has_room(&self, tag: &str) -> bool {
        match self.consumers.get(tag) {
            Some(s) if s.no_ack || s.prefetch == 0 => true,
            Some(s) => {
                let held: usize = self.states.iter().map(|st| st.consumer_unacked(tag)).sum();
                held < usize::from(s.prefetch)
            }
            None => false,
        }
    }

    /// The state a queue tag belongs to, and the lane's own tag.
    fn lane_of(&mut self, tag: u64) -> Result<(usize, u64)> {
        let (lane, lane_tag) = split_tag(tag);
        if lane >= self.states.len() {
            return Err(super::QueueError::UnknownDeliveryTag(tag).into());
        }
        Ok((lane, lane_tag))
    }

    /// Changes to persist, per lane.
    pub(crate) fn take_changes(&mut self) -> Vec<Vec<AckChange>> {
        self.states
            .iter_mut()
            .map(QueueState::take_ack_changes)
            .collect()
    }
}

/// What one queue did with a published message.
pub(crate) enum AppendOutcome {
    /// In `lane`'s log; durable once that log is synced to `end`.
    Appended { lane: usize, end: Offset },
    /// Refused by `x-overflow = reject-publish(-dlx)`.
    Rejected,
    /// The queue is being deleted.
    Gone,
}

impl Queue {
    /// Opens (creating if missing) the queue's files under `dir` and starts its delivery task.
    /// Blocking; call on the blocking pool.
    pub(crate) fn open(
        definition: QueueDefinition,
        vhost: &str,
        dir: &Path,
        files: Arc<FileCache>,
        after_crash: bool,
        epoch: u64,
        broker: Weak<Broker>,
    ) -> Result<Arc<Queue>> {
        let args = QueueArguments::parse(&definition.arguments).map_err(CoreError::Metadata)?;
        std::fs::create_dir_all(dir).map_err(|e| CoreError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let config = LogConfig {
            segment_bytes: QUEUE_SEGMENT_BYTES,
            flush: if definition.durable {
                FlushMode::Group
            } else {
                FlushMode::Never
            },
            retention_ms: None,
            retention_bytes: None,
            // One message per batch; gateways bound message size (RabbitMQ allows 512 MiB).
            max_batch_bytes: QUEUE_BATCH_BYTES_MAX,
            ..LogConfig::default()
        };
        let lane_count = args.max_priority.map_or(1, |p| usize::from(p) + 1);
        let mut lanes = Vec::with_capacity(lane_count);
        let mut states = Vec::with_capacity(lane_count);
        for lane in 0..lane_count {
            let suffix = if lane == 0 {
                String::new()
            } else {
                format!("-p{lane}")
            };
            let log = Log::open(
                &dir.join(format!("log{suffix}")),
                config.clone(),
                files.clone(),
                after_crash,
            )?;
            let acks = AckLog::open(&dir.join(format!("acks{suffix}")))?;
            let mut state = QueueState::restore(
                acks.persisted(),
                log.log_start_offset(),
                log.log_end_offset(),
            )?;
            state.set_single_active(args.single_active_consumer);
            states.push(state);
            lanes.push(LaneFiles {
                log: Arc::new(log),
                acks: Arc::new(SharedAckLog::new(acks)),
            });
        }
        let restored_backlog = states.iter().any(|s| s.ready() > 0);
        let marker = dir.join(TRANSIENT_MARKER);
        let stale_transient = if marker.exists() {
            let stale = count_transient(&lanes, &states)?;
            if stale == 0 {
                let _ = std::fs::remove_file(&marker);
            }
            stale
        } else {
            0
        };
        let queue = Arc::new(Queue {
            name: Arc::from(definition.name.as_str()),
            vhost: vhost.to_string(),
            args,
            lanes,
            dir: dir.to_path_buf(),
            epoch,
            inner: Mutex::new(Inner {
                states,
                consumers: HashMap::new(),
                exclusive_consumer: false,
                ever_consumed: false,
                last_used_ms: now_ms(),
                cache: BTreeMap::new(),
                cache_bytes: 0,
                sizes: BTreeMap::new(),
                sized_bytes: 0,
                dead: Vec::new(),
                head_check: restored_backlog,
                deleted: false,
                stale_transient,
            }),
            wake: Notify::new(),
            broker,
            closed: CancellationToken::new(),
            transient_marked: std::sync::atomic::AtomicBool::new(false),
            definition,
        });
        // Without a runtime (a blocking test of the broker) there is nothing to deliver to.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(queue.clone().run());
        }
        Ok(queue)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn definition(&self) -> &QueueDefinition {
        &self.definition
    }

    /// The lane a message of this priority goes to.
    fn lane_for(&self, priority: Option<u8>) -> usize {
        usize::from(priority.unwrap_or(0)).min(self.lanes.len() - 1)
    }

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
        self.wake.notify_one();
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
        self.wake.notify_one();
        if auto_delete {
            self.delete_later("auto-delete: last consumer gone");
        }
    }

    /// A re-declare counts as use for `x-expires`, as in RabbitMQ.
    pub(crate) fn touch(&self) {
        self.inner.lock().last_used_ms = now_ms();
        self.wake.notify_one();
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
            if let Some(reason) = self.unusable(&stored, now_ms()) {
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
            }
            return Ok(Some(QueueDelivery {
                queue: self.name.clone(),
                consumer_tag: None,
                queue_tag: tag,
                redelivered: delivery.redelivered,
                message: Arc::new(stored.message.clone()),
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
        self.wake.notify_one();
        result
    }

    /// `basic.nack` / `basic.reject`: requeue, or dead-letter (or drop) them.
    pub fn nack(&self, queue_tags: &[u64], requeue: bool) -> Result<()> {
        if !requeue {
            return self.settle_dead(queue_tags, Some(DeadReason::Rejected));
        }
        let result = {
            let mut inner = self.inner.lock();
            queue_tags.iter().try_for_each(|&tag| {
                let (lane, lane_tag) = inner.lane_of(tag)?;
                inner.states[lane].nack(lane_tag, false, true)?;
                Ok(())
            })
        };
        self.wake.notify_one();
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
        self.wake.notify_one();
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
                // Keep the cached copy: the delivery task republishes it.
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
            inner.cache.clear();
            inner.cache_bytes = 0;
            inner.sizes.clear();
            inner.sized_bytes = 0;
            count
        };
        self.persist_changes()?;
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

    /// Appends one published message (blocking pool) and applies `x-max-length`.
    pub(crate) async fn append(self: &Arc<Self>, message: &Message) -> Result<AppendOutcome> {
        let now = now_ms();
        let transient = !message.properties.is_persistent();
        let batch = message.encode(now, transient.then_some(self.epoch));
        let lane = self.lane_for(message.properties.priority);
        let stored = Arc::new(StoredMessage {
            message: message.clone(),
            enqueued_ms: now,
            epoch: transient.then_some(self.epoch),
        });
        let this = self.clone();
        let append = move || -> Result<(AppendOutcome, bool)> {
            let mut inner = this.inner.lock();
            if inner.deleted {
                return Ok((AppendOutcome::Gone, false));
            }
            let len = stored.message.body.len() as u64;
            if this.would_overflow(&inner, len) {
                match this.args.overflow {
                    Overflow::DropHead => {}
                    Overflow::RejectPublish => return Ok((AppendOutcome::Rejected, false)),
                    Overflow::RejectPublishDlx => {
                        if this.args.dead_letter_exchange.is_some() {
                            inner.dead.push(DeadLetter {
                                position: None,
                                message: Some(Arc::new(stored.message.clone())),
                                reason: DeadReason::MaxLen,
                            });
                        }
                        return Ok((AppendOutcome::Rejected, false));
                    }
                }
            }
            if transient
                && !this
                    .transient_marked
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                // Tells the next start to look for (and not count) transient messages left over.
                let marker = this.dir.join(TRANSIENT_MARKER);
                std::fs::File::create(&marker).map_err(|e| CoreError::Io {
                    path: marker,
                    source: e,
                })?;
            }
            let info = this.lanes[lane].log.append(batch, now)?;
            debug_assert_eq!(info.base_offset, info.last_offset, "one message per batch");
            let position = (lane, info.last_offset);
            inner.states[lane].on_append(info.last_offset);
            if this.args.max_length_bytes.is_some() {
                inner.sizes.insert(position, len as u32);
                inner.sized_bytes += len;
            }
            if stored.message.properties.expiration.is_some() {
                inner.head_check = true;
            }
            inner.cache_insert(position, stored);
            this.drop_head_over_limit(&mut inner);
            // The delivery task only needs waking if someone can take the message, or to
            // schedule the first message's expiry; waking it per publish costs a context switch.
            let wake = !inner.consumers.is_empty() || inner.ready() == 1;
            Ok((
                AppendOutcome::Appended {
                    lane,
                    end: info.last_offset + 1,
                },
                wake,
            ))
        };
        // A small append is one write(2) into the page cache: cheaper than the hop to the
        // blocking pool, which would cost more than the write itself. Large ones take the hop.
        let (outcome, wake) = if message.body.len() <= INLINE_APPEND_BYTES_MAX {
            append()?
        } else {
            run_blocking(append).await?
        };
        self.persist_changes()?;
        if wake {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    /// Whether one more message of `len` body bytes would pass `x-max-length(-bytes)`.
    fn would_overflow(&self, inner: &Inner, len: u64) -> bool {
        let by_count = self.args.max_length.is_some_and(|max| inner.ready() >= max);
        let by_bytes = self
            .args
            .max_length_bytes
            .is_some_and(|max| inner.sized_bytes + len > max);
        by_count || by_bytes
    }

    /// `x-overflow = drop-head`: drops (dead-letters) messages from the head until the queue fits
    /// its limits again.
    fn drop_head_over_limit(&self, inner: &mut Inner) {
        if self.args.overflow != Overflow::DropHead {
            return;
        }
        loop {
            let over_count = self.args.max_length.is_some_and(|max| inner.ready() > max);
            let over_bytes = self
                .args
                .max_length_bytes
                .is_some_and(|max| inner.sized_bytes > max);
            if !(over_count || over_bytes) {
                return;
            }
            let Some(lane) = inner.head_lane() else {
                return;
            };
            let Some(offset) = inner.states[lane].discard_next_ready() else {
                return;
            };
            self.discarded(inner, (lane, offset), Some(DeadReason::MaxLen));
        }
    }

    /// Why a message must not be delivered, if it must not: `Some(None)` for a transient
    /// message from before a restart (gone without dead-lettering, as in RabbitMQ),
    /// `Some(Some(Expired))` past its TTL.
    pub(crate) fn unusable(
        &self,
        stored: &StoredMessage,
        now_ms: i64,
    ) -> Option<Option<DeadReason>> {
        if stored.epoch.is_some_and(|e| e != self.epoch) {
            return Some(None);
        }
        let deadline = self.expires_at(stored)?;
        (deadline <= now_ms).then_some(Some(DeadReason::Expired))
    }

    /// When a message expires: the sooner of the queue's TTL and its own `expiration`.
    pub(crate) fn expires_at(&self, stored: &StoredMessage) -> Option<i64> {
        let queue_ttl = self.args.message_ttl_ms;
        let own = stored.message.properties.expiration_ms();
        let ttl = match (queue_ttl, own) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(
            stored
                .enqueued_ms
                .saturating_add(ttl.min(i64::MAX as u64) as i64),
        )
    }

    /// The message at `position`: from the cache (taken out of it with `take`), else read from
    /// the lane's log with read-ahead into the cache.
    pub(crate) async fn load(&self, position: Position, take: bool) -> Result<Arc<StoredMessage>> {
        {
            let mut inner = self.inner.lock();
            let hit = if take {
                inner.cache_take(position)
            } else {
                inner.cache.get(&position).cloned()
            };
            if let Some(message) = hit {
                return Ok(message);
            }
        }
        let (lane, offset) = position;
        let log = self.lanes[lane].log.clone();
        if offset >= log.high_watermark() {
            let log = log.clone();
            blocking(move || log.flush_to(offset + 1)).await?;
        }
        let slice = blocking(move || log.read(offset, READ_AHEAD_BYTES)).await?;
        let records = decode_batches(slice.bytes)?;
        let mut found = None;
        let mut inner = self.inner.lock();
        for record in records.iter().filter(|r| r.offset >= offset) {
            let stored = Message::decode(record).map_err(|reason| {
                CoreError::Corrupt(format!(
                    "queue {:?} offset {}: {reason}",
                    self.name, record.offset
                ))
            })?;
            let stored = Arc::new(stored);
            if record.offset == offset {
                found = Some(stored.clone());
                if take {
                    continue;
                }
            }
            // Read-ahead only for messages still waiting: fresh ones.
            if record.offset > offset {
                inner.cache_insert((lane, record.offset), stored);
            }
        }
        found.ok_or_else(|| {
            CoreError::Corrupt(format!(
                "queue {:?}: offset {offset} missing from its log",
                self.name
            ))
        })
    }

    /// Appends the states' pending ack changes to the ack files (page cache).
    pub(crate) fn persist_changes(&self) -> Result<()> {
        let changes = self.inner.lock().take_changes();
        for (lane, changes) in changes.iter().enumerate() {
            self.lanes[lane].acks.lock().append(changes)?;
        }
        Ok(())
    }

    /// Appends `changes`; a delivered watermark among them is fsynced before returning, since
    /// deliveries taken after it are about to be sent.
    pub(crate) async fn persist_before_send(&self, changes: Vec<Vec<AckChange>>) -> Result<()> {
        for (lane, changes) in changes.into_iter().enumerate() {
            if changes.is_empty() {
                continue;
            }
            let watermark = changes
                .iter()
                .any(|c| matches!(c, AckChange::DeliveredWatermark(_)));
            let acks = self.lanes[lane].acks.clone();
            acks.lock().append(&changes)?;
            if watermark {
                run_blocking(move || acks.sync()).await?;
            }
        }
        Ok(())
    }

    /// Returns once `lane`'s log is durable below `end` (no-op for transient queues).
    pub(crate) async fn wait_durable(&self, lane: usize, end: Offset) -> Result<()> {
        let log = self.lanes[lane].log.clone();
        if !self.definition.durable || log.high_watermark() >= end {
            return Ok(());
        }
        blocking(move || log.flush_to(end)).await
    }

    /// Asks the broker to delete this queue (auto-delete, `x-expires`), off the caller's path.
    pub(crate) fn delete_later(&self, why: &'static str) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let (vhost, name, id) = (
            self.vhost.clone(),
            self.name.to_string(),
            self.definition.id,
        );
        tokio::spawn(async move {
            tracing::info!(vhost = %vhost, queue = %name, why, "deleting queue");
            if let Err(e) = broker.delete_queue_by_id(&vhost, &name, id).await {
                tracing::warn!(vhost = %vhost, queue = %name, error = %e, "deleting queue failed");
            }
        });
    }

    /// Stops the delivery task and tells consumers (server-sent cancel). With `delete_files`,
    /// removes the queue's data; otherwise syncs and closes it. Blocking.
    pub(crate) fn close(&self, delete_files: bool) -> Result<()> {
        let sinks: Vec<(Arc<str>, ConsumerSink)> = {
            let mut inner = self.inner.lock();
            inner.deleted = true;
            inner
                .consumers
                .drain()
                .map(|(tag, s)| (tag, s.sink))
                .collect()
        };
        self.closed.cancel();
        for (tag, sink) in sinks {
            let _ = sink.try_send(ConsumerEvent::Cancelled { consumer_tag: tag });
        }
        for lane in &self.lanes {
            if delete_files {
                lane.log.delete()?;
            } else {
                lane.acks.sync()?;
                lane.log.flush()?;
                lane.log.close()?;
            }
        }
        if delete_files {
            std::fs::remove_dir_all(&self.dir).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(CoreError::Io {
                    path: self.dir.clone(),
                    source: e,
                }),
            })?;
        }
        Ok(())
    }
}
