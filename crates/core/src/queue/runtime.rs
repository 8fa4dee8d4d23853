//! [`Queue`]: a running queue: its log (porter-storage), its [`QueueState`], its durable ack file,
//! its consumers' sinks, and the delivery task ([`super::delivery`]) that moves ready messages to
//! consumers, expires them, dead-letters them and reclaims the log behind the acks.
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

use super::ack_log::AckLog;
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
/// Decoded messages kept in memory per queue, waiting for delivery, so a consumer that keeps up
/// never reads the log. Past this, messages are read back from the log (page cache) in chunks.
pub const QUEUE_CACHE_BYTES_MAX: usize = 8 << 20;
/// Bytes read per log read when a message is not in the cache (read-ahead for the next ones).
pub(crate) const READ_AHEAD_BYTES: u32 = 256 << 10;

pub struct Queue {
    pub(crate) name: Arc<str>,
    pub(crate) vhost: String,
    pub(crate) definition: QueueDefinition,
    pub(crate) args: QueueArguments,
    pub(crate) log: Arc<Log>,
    pub(crate) dir: PathBuf,
    /// This broker incarnation; transient messages carry it (see `StoredMessage::epoch`).
    pub(crate) epoch: u64,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) acks: Arc<Mutex<AckLog>>,
    pub(crate) wake: Notify,
    pub(crate) broker: Weak<Broker>,
    pub(crate) closed: CancellationToken,
}

pub(crate) struct Subscriber {
    pub(crate) sink: ConsumerSink,
    pub(crate) owner: OwnerId,
}

/// A message on its way to the dead-letter exchange: in the log (settled, not yet reclaimed) or,
/// for `reject-publish-dlx`, never appended.
pub(crate) struct DeadLetter {
    pub(crate) offset: Option<Offset>,
    pub(crate) message: Option<Arc<Message>>,
    pub(crate) reason: DeadReason,
}

pub(crate) struct Inner {
    pub(crate) state: QueueState,
    pub(crate) consumers: HashMap<Arc<str>, Subscriber>,
    pub(crate) exclusive_consumer: bool,
    pub(crate) ever_consumed: bool,
    pub(crate) last_used_ms: i64,
    /// Undelivered messages by offset, at most `QUEUE_CACHE_BYTES_MAX` of bodies.
    pub(crate) cache: BTreeMap<Offset, Arc<StoredMessage>>,
    pub(crate) cache_bytes: usize,
    /// Body sizes of unsettled messages, kept only under `x-max-length-bytes`.
    pub(crate) sizes: BTreeMap<Offset, u32>,
    pub(crate) sized_bytes: u64,
    pub(crate) dead: Vec<DeadLetter>,
    /// The head may hold a message that must not be delivered (TTL, per-message expiration, a
    /// transient message from before a restart): the delivery task looks at it.
    pub(crate) head_check: bool,
    pub(crate) deleted: bool,
}

impl Inner {
    /// Forgets what a settled offset held in memory.
    pub(crate) fn forget(&mut self, offset: Offset) {
        if let Some(m) = self.cache.remove(&offset) {
            self.cache_bytes -= m.message.body.len();
        }
        if let Some(size) = self.sizes.remove(&offset) {
            self.sized_bytes -= u64::from(size);
        }
    }

    fn cache_insert(&mut self, offset: Offset, message: Arc<StoredMessage>) {
        let len = message.message.body.len();
        if self.cache_bytes + len <= QUEUE_CACHE_BYTES_MAX && !self.cache.contains_key(&offset) {
            self.cache_bytes += len;
            self.cache.insert(offset, message);
        }
    }

    fn cache_take(&mut self, offset: Offset) -> Option<Arc<StoredMessage>> {
        let message = self.cache.remove(&offset)?;
        self.cache_bytes -= message.message.body.len();
        Some(message)
    }
}

/// What one queue did with a published message.
pub(crate) enum AppendOutcome {
    /// In the log; durable once the log is synced to `end`.
    Appended { end: Offset },
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
            ..LogConfig::default()
        };
        let log = Log::open(&dir.join("log"), config, files, after_crash)?;
        let acks = AckLog::open(&dir.join("acks"))?;
        let mut state = QueueState::restore(
            acks.persisted(),
            log.log_start_offset(),
            log.log_end_offset(),
        )?;
        state.set_single_active(args.single_active_consumer);
        let restored_backlog = state.ready() > 0;
        let queue = Arc::new(Queue {
            name: Arc::from(definition.name.as_str()),
            vhost: vhost.to_string(),
            args,
            log: Arc::new(log),
            dir: dir.to_path_buf(),
            epoch,
            inner: Mutex::new(Inner {
                state,
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
            }),
            acks: Arc::new(Mutex::new(acks)),
            wake: Notify::new(),
            broker,
            closed: CancellationToken::new(),
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
                return Err(CoreError::AccessRefused(format!(
                    "queue '{}' in vhost '{}' in exclusive use",
                    self.name, self.vhost
                )));
            }
            inner
                .state
                .add_consumer(&request.consumer_tag, request.prefetch, request.no_ack)?;
            inner.consumers.insert(
                Arc::from(request.consumer_tag.as_str()),
                Subscriber {
                    sink: request.sink,
                    owner: request.owner,
                },
            );
            inner.exclusive_consumer |= request.exclusive;
            inner.ever_consumed = true;
            inner.last_used_ms = now_ms();
        }
        self.wake.notify_one();
        Ok(())
    }

    /// `basic.cancel` or channel close: the consumer goes; its unacked messages are requeued.
    /// Unknown tags are ignored. An auto-delete queue goes with its last consumer.
    pub fn cancel(&self, consumer_tag: &str) {
        let auto_delete = {
            let mut inner = self.inner.lock();
            if inner.consumers.remove(consumer_tag).is_none() {
                return;
            }
            let _ = inner.state.remove_consumer(consumer_tag);
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

    /// Whether `owner` (a connection) has consumers here.
    pub fn has_consumers_of(&self, owner: OwnerId) -> bool {
        self.inner
            .lock()
            .consumers
            .values()
            .any(|s| s.owner == owner)
    }

    /// `basic.get`: the next ready message, or `None` (`get-empty`). With `no_ack` it is settled
    /// at once.
    pub async fn get(&self, no_ack: bool) -> Result<Option<QueueDelivery>> {
        loop {
            let (delivery, changes) = {
                let mut inner = self.inner.lock();
                if inner.deleted {
                    return Ok(None);
                }
                inner.last_used_ms = now_ms();
                let delivery = inner.state.get(now_ms() as u64);
                (delivery, inner.state.take_ack_changes())
            };
            self.persist_before_send(changes).await?;
            let Some(delivery) = delivery else {
                return Ok(None);
            };
            let stored = self.load(delivery.offset, true).await?;
            if let Some(reason) = self.unusable(&stored, now_ms()) {
                self.settle_dead(&[delivery.delivery_tag], reason)?;
                continue;
            }
            let remaining = {
                let mut inner = self.inner.lock();
                if no_ack {
                    inner.state.ack(delivery.delivery_tag, false)?;
                    inner.forget(delivery.offset);
                }
                inner.state.ready()
            };
            if no_ack {
                self.persist_changes()?;
            }
            return Ok(Some(QueueDelivery {
                queue: self.name.clone(),
                consumer_tag: None,
                queue_tag: delivery.delivery_tag,
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
            let mut result = Ok(());
            for &tag in queue_tags {
                match inner.state.ack(tag, false) {
                    Ok(outcome) => outcome.acked.iter().for_each(|&o| inner.forget(o)),
                    Err(e) => {
                        result = Err(e.into());
                        break;
                    }
                }
            }
            result
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
                inner.state.nack(tag, false, true).map(drop)?;
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
            let mut result = Ok(());
            for &tag in queue_tags {
                match inner.state.nack(tag, false, false) {
                    Ok(outcome) => {
                        for offset in outcome.dead {
                            match reason {
                                Some(reason) => self.dead_letter_offset(&mut inner, offset, reason),
                                None => inner.forget(offset),
                            }
                        }
                    }
                    Err(e) => {
                        result = Err(e.into());
                        break;
                    }
                }
            }
            result
        };
        self.persist_changes()?;
        self.wake.notify_one();
        result
    }

    /// Records a settled offset for dead-lettering (or forgets it, without a DLX).
    pub(crate) fn dead_letter_offset(&self, inner: &mut Inner, offset: Offset, reason: DeadReason) {
        if self.args.dead_letter_exchange.is_some() {
            // Keep the cached copy: the delivery task republishes it.
            if let Some(size) = inner.sizes.remove(&offset) {
                inner.sized_bytes -= u64::from(size);
            }
            inner.dead.push(DeadLetter {
                offset: Some(offset),
                message: None,
                reason,
            });
        } else {
            inner.forget(offset);
        }
    }

    /// `queue.purge`: drops every ready message (not dead-lettered, as RabbitMQ); returns how
    /// many.
    pub fn purge(&self) -> Result<u64> {
        let count = {
            let mut inner = self.inner.lock();
            let count = inner.state.purge_ready();
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
        self.inner.lock().state.ready()
    }

    /// Delivered and not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.inner.lock().state.unacked()
    }

    pub fn consumer_count(&self) -> u32 {
        self.inner.lock().state.consumers()
    }

    /// Appends one published message (blocking pool) and applies `x-max-length`.
    pub(crate) async fn append(self: &Arc<Self>, message: &Message) -> Result<AppendOutcome> {
        let now = now_ms();
        let transient = !message.properties.is_persistent();
        let batch = message.encode(now, transient.then_some(self.epoch));
        let stored = Arc::new(StoredMessage {
            message: message.clone(),
            enqueued_ms: now,
            epoch: transient.then_some(self.epoch),
        });
        let this = self.clone();
        let outcome = run_blocking(move || {
            let mut inner = this.inner.lock();
            if inner.deleted {
                return Ok(AppendOutcome::Gone);
            }
            let len = stored.message.body.len() as u64;
            if this.would_overflow(&inner, len) {
                match this.args.overflow {
                    Overflow::DropHead => {}
                    Overflow::RejectPublish => return Ok(AppendOutcome::Rejected),
                    Overflow::RejectPublishDlx => {
                        if this.args.dead_letter_exchange.is_some() {
                            inner.dead.push(DeadLetter {
                                offset: None,
                                message: Some(Arc::new(stored.message.clone())),
                                reason: DeadReason::MaxLen,
                            });
                        }
                        return Ok(AppendOutcome::Rejected);
                    }
                }
            }
            let info = this.log.append(batch, now)?;
            debug_assert_eq!(info.base_offset, info.last_offset, "one message per batch");
            inner.state.on_append(info.last_offset);
            if this.args.max_length_bytes.is_some() {
                inner.sizes.insert(info.last_offset, len as u32);
                inner.sized_bytes += len;
            }
            if stored.message.properties.expiration.is_some() {
                inner.head_check = true;
            }
            inner.cache_insert(info.last_offset, stored);
            this.drop_head_over_limit(&mut inner);
            Ok(AppendOutcome::Appended {
                end: info.last_offset + 1,
            })
        })
        .await?;
        self.persist_changes()?;
        self.wake.notify_one();
        Ok(outcome)
    }

    /// Whether one more message of `len` body bytes would pass `x-max-length(-bytes)`.
    fn would_overflow(&self, inner: &Inner, len: u64) -> bool {
        let by_count = self
            .args
            .max_length
            .is_some_and(|max| inner.state.ready() >= max);
        let by_bytes = self
            .args
            .max_length_bytes
            .is_some_and(|max| inner.sized_bytes + len > max);
        by_count || by_bytes
    }

    /// `x-overflow = drop-head`: drops (dead-letters) the oldest ready messages until the queue
    /// fits its limits again.
    fn drop_head_over_limit(&self, inner: &mut Inner) {
        if self.args.overflow != Overflow::DropHead {
            return;
        }
        loop {
            let over_count = self
                .args
                .max_length
                .is_some_and(|max| inner.state.ready() > max);
            let over_bytes = self
                .args
                .max_length_bytes
                .is_some_and(|max| inner.sized_bytes > max);
            if !(over_count || over_bytes) {
                return;
            }
            let Some(offset) = inner.state.discard_next_ready() else {
                return;
            };
            self.dead_letter_offset(inner, offset, DeadReason::MaxLen);
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

    /// The message at `offset`: from the cache (taken out of it with `take`), else read from the
    /// log with read-ahead into the cache.
    pub(crate) async fn load(&self, offset: Offset, take: bool) -> Result<Arc<StoredMessage>> {
        {
            let mut inner = self.inner.lock();
            let hit = if take {
                inner.cache_take(offset)
            } else {
                inner.cache.get(&offset).cloned()
            };
            if let Some(message) = hit {
                return Ok(message);
            }
        }
        if offset >= self.log.high_watermark() {
            let log = self.log.clone();
            blocking(move || log.flush_to(offset + 1)).await?;
        }
        let log = self.log.clone();
        let slice = blocking(move || log.read(offset, READ_AHEAD_BYTES)).await?;
        let records = decode_batches(slice.bytes)?;
        let mut found = None;
        let mut inner = self.inner.lock();
        for record in records.iter().filter(|r| r.offset >= offset) {
            let stored = Message::decode(record).map_err(|reason| {
                CoreError::Storage(porter_storage::StorageError::CorruptBatch(format!(
                    "queue {:?} offset {}: {reason}",
                    self.name, record.offset
                )))
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
                inner.cache_insert(record.offset, stored);
            }
        }
        found.ok_or_else(|| {
            CoreError::Storage(porter_storage::StorageError::CorruptBatch(format!(
                "queue {:?}: offset {offset} missing from its log",
                self.name
            )))
        })
    }

    /// Appends the state's pending ack changes to the ack file (page cache).
    pub(crate) fn persist_changes(&self) -> Result<()> {
        let changes = self.inner.lock().state.take_ack_changes();
        self.acks.lock().append(&changes)
    }

    /// Appends `changes`; a delivered watermark among them is fsynced before returning, since
    /// deliveries taken after it are about to be sent.
    pub(crate) async fn persist_before_send(&self, changes: Vec<AckChange>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let watermark = changes
            .iter()
            .any(|c| matches!(c, AckChange::DeliveredWatermark(_)));
        self.acks.lock().append(&changes)?;
        if watermark {
            let acks = self.acks.clone();
            run_blocking(move || acks.lock().sync()).await?;
        }
        Ok(())
    }

    /// Returns once the log is durable below `end` (no-op for transient queues).
    pub(crate) async fn wait_durable(&self, end: Offset) -> Result<()> {
        if !self.definition.durable || self.log.high_watermark() >= end {
            return Ok(());
        }
        let log = self.log.clone();
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
        if delete_files {
            self.log.delete()?;
            std::fs::remove_dir_all(&self.dir).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(CoreError::Io {
                    path: self.dir.clone(),
                    source: e,
                }),
            })
        } else {
            self.acks.lock().sync()?;
            self.log.flush()?;
            Ok(self.log.close()?)
        }
    }
}
