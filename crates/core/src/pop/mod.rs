//! Pop consumption: a consumer group receives messages from a topic, each hidden from the rest
//! of the group for an *invisible duration*; an ack removes it for good, silence brings it back
//! with its attempt count raised, and past the group's maximum attempts it goes to the group's
//! dead-letter topic. RocketMQ 5's SimpleConsumer and PushConsumer work this way, and so can any
//! protocol that wants competing consumers over a replayable topic.
//!
//! The topic's log is shared: a group keeps only its progress, per partition, in a
//! [`PopState`] (pure, see `state.rs`) and an ack file of resolved ranges:
//!
//! ```text
//! <data_dir>/pop/<group>/<topic id>/<partition>.acks
//! ```
//!
//! An ack is answered after its range is written to the ack file, so a group's committed
//! progress survives kill -9, and fdatasynced within [`ACK_SYNC_INTERVAL_MS`] (a power loss can
//! redeliver the last second's acks, never lose a message); an in-flight message's invisibility
//! is not persisted, so after a crash it is delivered again (at least once).
//!
//! **Where a new group starts.** At the partition's start when the partition holds at most
//! [`NEW_GROUP_REPLAY_BYTES_MAX`] (a young topic: a consumer started just after its producer gets
//! the first messages, as with RocketMQ's in-memory check), else at its end.
//!
//! **Dead letters.** The dead-letter topic of group `g` is `DLQ.g` (one partition, created on
//! first use): a plain topic any protocol reads, and re-drives from. RocketMQ names it `%DLQ%g`,
//! which is not a legal Kafka topic name; the RocketMQ gateway translates.

mod receipt;
pub mod state;

pub use receipt::ReceiptHandle;
pub use state::{PopError, PopState, Taken, POP_UNRESOLVED_MAX};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use porter_storage::records::decode_batches;
use uuid::Uuid;

use crate::broker::{Broker, TopicHandle};
use crate::error::{CoreError, Result};
use crate::partition::{now_ms, run_blocking, Partition};
use crate::queue::ack_log::{AckLog, SharedAckLog};
use crate::queue::AckChange;
use crate::topic::validate_topic_name;
use crate::topic_message::{read_at, StoredTopicMessage, TopicMessage};
use crate::topic_publish::{publish, PartitionChoice};

/// Acks are fdatasynced at most this long after they were written (and answered).
pub const ACK_SYNC_INTERVAL_MS: u64 = 1_000;
/// A new group starts at the beginning of a partition no larger than this, else at its end.
pub const NEW_GROUP_REPLAY_BYTES_MAX: u64 = 64 << 20;
/// Group × partition progress kept open at once. Each is a [`PopState`] (a few hundred bytes
/// idle, up to [`POP_UNRESOLVED_MAX`] entries busy) and an ack file reached through the
/// broker's file cache.
pub const POP_CURSORS_MAX: usize = 100_000;
/// Messages one receive returns at most.
pub const RECEIVE_BATCH_MAX: usize = 1024;
/// Bytes read from a partition per step when looking for fresh messages.
const FRESH_READ_BYTES: u32 = 256 << 10;
/// The longest invisible duration (RocketMQ allows up to 12 h... Porter a day).
pub const INVISIBLE_MS_MAX: u64 = 24 * 3600 * 1000;
/// The longest a receive long-polls.
pub const LONG_POLL_MS_MAX: u64 = 5 * 60 * 1000;

/// Dead-letter topic of a consumer group.
pub fn dead_letter_topic(group: &str) -> String {
    format!("{DEAD_LETTER_PREFIX}{group}")
}

const DEAD_LETTER_PREFIX: &str = "DLQ.";

/// The consumer group whose dead-letter topic `topic` is, if it is one.
pub fn dead_letter_group(topic: &str) -> Option<&str> {
    topic.strip_prefix(DEAD_LETTER_PREFIX)
}

/// What a receive asks for.
#[derive(Clone, Copy, Debug)]
pub struct ReceiveOptions {
    pub max_messages: usize,
    pub invisible_ms: u64,
    /// How long to wait for a message when none is ready (0: answer at once).
    pub long_poll: Duration,
    /// Deliveries before a message is dead-lettered instead (at least 1).
    pub max_attempts: u32,
}

/// One message handed to a consumer.
#[derive(Clone, Debug)]
pub struct Received {
    pub message: StoredTopicMessage,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub receipt: ReceiptHandle,
    pub invisible_until_ms: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct CursorKey {
    group: Arc<str>,
    topic_id: Uuid,
    partition: i32,
}

/// One group's progress through one partition.
struct Cursor {
    partition: Arc<Partition>,
    state: Mutex<PopState>,
    acks: SharedAckLog,
}

/// Every group's pop progress on this broker.
pub struct PopConsumers {
    broker: Arc<Broker>,
    dir: PathBuf,
    /// Random per start: a receipt handle from an earlier incarnation is refused, since
    /// receipt numbers start again.
    epoch: u64,
    cursors: Mutex<HashMap<CursorKey, Arc<Cursor>>>,
    /// Bumped on every ack, nack and invisible-duration change: a long poll waiting behind a
    /// FIFO group's previous message looks again.
    changed: tokio::sync::watch::Sender<u64>,
    /// Cursors with acks written but not yet fdatasynced; a sync is scheduled while non-empty.
    unsynced: Arc<Mutex<Vec<Arc<Cursor>>>>,
}

impl PopConsumers {
    pub fn new(broker: Arc<Broker>) -> Self {
        let dir = broker.config().data_dir.join("pop");
        PopConsumers {
            broker,
            dir,
            epoch: rand_epoch(),
            cursors: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::channel(0).0,
            unsynced: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Up to `options.max_messages` messages of `topic` for `group` that `filter` accepts,
    /// waiting up to `options.long_poll` for the first. Empty when none came in time.
    pub async fn receive(
        &self,
        group: &str,
        topic: &Arc<TopicHandle>,
        filter: &(dyn Fn(&TopicMessage) -> bool + Sync),
        options: ReceiveOptions,
    ) -> Result<Vec<Received>> {
        validate_group(group)?;
        let options = ReceiveOptions {
            max_messages: options.max_messages.clamp(1, RECEIVE_BATCH_MAX),
            invisible_ms: options.invisible_ms.min(INVISIBLE_MS_MAX),
            long_poll: options
                .long_poll
                .min(Duration::from_millis(LONG_POLL_MS_MAX)),
            max_attempts: options.max_attempts.max(1),
        };
        let deadline = Instant::now() + options.long_poll;
        let group: Arc<str> = Arc::from(group);
        let mut watches: Vec<_> = topic.partitions.iter().map(|p| p.subscribe()).collect();
        let mut changed = self.changed.subscribe();
        let start = (now_ms() as usize) % topic.partitions.len().max(1);
        loop {
            let mut out = Vec::new();
            let mut next_due: Option<u64> = None;
            for i in 0..topic.partitions.len() {
                let p = (start + i) % topic.partitions.len();
                let cursor = self.cursor(&group, topic, p).await?;
                self.take_from(&group, topic, &cursor, filter, &options, &mut out)
                    .await?;
                if let Some(due) = cursor.state.lock().next_due_ms(now_ms() as u64) {
                    next_due = Some(next_due.map_or(due, |d: u64| d.min(due)));
                }
                if out.len() >= options.max_messages {
                    break;
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            let mut wake = deadline;
            if let Some(due) = next_due {
                let in_ms = due.saturating_sub(now_ms() as u64);
                wake = wake.min(now + Duration::from_millis(in_ms.max(1)));
            }
            let appended =
                futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                (result, _, _) = appended => {
                    // A closed partition (its topic deleted) ends the poll instead of spinning.
                    if result.is_err() {
                        return Ok(Vec::new());
                    }
                }
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Acknowledges a delivery: it is not delivered to this group again. Answered once durable.
    pub async fn ack(&self, group: &str, topic: &Arc<TopicHandle>, receipt: &str) -> Result<()> {
        let (cursor, handle) = self.delivery(group, topic, receipt)?;
        cursor
            .state
            .lock()
            .ack(handle.offset, handle.receipt)
            .map_err(stale)?;
        self.persist(&cursor, true).await?;
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Keeps a delivery invisible for `invisible_ms` more from now (0: a nack, redelivered at
    /// once). Returns the handle that replaces `receipt`.
    pub fn change_invisible(
        &self,
        group: &str,
        topic: &Arc<TopicHandle>,
        receipt: &str,
        invisible_ms: u64,
    ) -> Result<ReceiptHandle> {
        let (cursor, handle) = self.delivery(group, topic, receipt)?;
        let invisible_ms = invisible_ms.min(INVISIBLE_MS_MAX);
        let new = cursor
            .state
            .lock()
            .change_invisible(handle.offset, handle.receipt, now_ms() as u64, invisible_ms)
            .map_err(stale)?;
        self.changed.send_modify(|n| *n += 1);
        Ok(ReceiptHandle {
            receipt: new,
            ..handle
        })
    }

    /// Moves a delivered message to the group's dead-letter topic now (the consumer gave up on
    /// it), then resolves it.
    pub async fn dead_letter(
        &self,
        group: &str,
        topic: &Arc<TopicHandle>,
        receipt: &str,
    ) -> Result<()> {
        let (cursor, handle) = self.delivery(group, topic, receipt)?;
        let attempts = {
            let state = cursor.state.lock();
            if state.attempts(handle.offset).is_none() {
                return Err(stale(PopError::StaleReceipt(handle.offset)));
            }
            state.attempts(handle.offset).unwrap_or(1)
        };
        if let Some(message) = read_at(&cursor.partition, handle.offset).await? {
            self.send_to_dead_letters(group, &topic.topic.name, message, attempts)
                .await?;
        }
        cursor.state.lock().settle(handle.offset);
        self.persist(&cursor, true).await?;
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    fn delivery(
        &self,
        group: &str,
        topic: &Arc<TopicHandle>,
        receipt: &str,
    ) -> Result<(Arc<Cursor>, ReceiptHandle)> {
        let handle: ReceiptHandle = receipt
            .parse()
            .map_err(|e| CoreError::Pop(PopError::InvalidReceipt(format!("{e}: {receipt:?}"))))?;
        if handle.epoch != self.epoch {
            return Err(CoreError::Pop(PopError::InvalidReceipt(
                "the handle is from before the broker restarted".into(),
            )));
        }
        let key = CursorKey {
            group: Arc::from(group),
            topic_id: topic.topic.id,
            partition: handle.partition,
        };
        let cursor = self.cursors.lock().get(&key).cloned().ok_or_else(|| {
            CoreError::Pop(PopError::InvalidReceipt(format!(
                "no delivery of {} to group {group:?} is known",
                topic.topic.name
            )))
        })?;
        Ok((cursor, handle))
    }

    async fn take_from(
        &self,
        group: &str,
        topic: &Arc<TopicHandle>,
        cursor: &Arc<Cursor>,
        filter: &(dyn Fn(&TopicMessage) -> bool + Sync),
        options: &ReceiveOptions,
        out: &mut Vec<Received>,
    ) -> Result<()> {
        let partition = cursor.partition.index();
        let now = now_ms() as u64;
        let invisible_until_ms = (now + options.invisible_ms) as i64;
        let room = options.max_messages - out.len();
        let again = cursor.state.lock().take(now, options.invisible_ms, room);
        for taken in again {
            let Some(message) = read_at(&cursor.partition, taken.offset).await? else {
                cursor.state.lock().settle(taken.offset); // retention removed it
                continue;
            };
            if taken.attempt > options.max_attempts {
                self.send_to_dead_letters(group, &topic.topic.name, message, taken.attempt - 1)
                    .await?;
                cursor.state.lock().settle(taken.offset);
                continue;
            }
            out.push(self.received(message, taken, invisible_until_ms));
        }
        while out.len() < options.max_messages {
            let next = {
                let state = cursor.state.lock();
                if !state.wants_fresh() {
                    break;
                }
                state.next_fresh()
            };
            if next >= cursor.partition.high_watermark() {
                break;
            }
            let batches = match cursor.partition.read(next, FRESH_READ_BYTES).await {
                Ok(batches) => batches,
                Err(CoreError::OffsetOutOfRange { log_start, .. }) if log_start > next => {
                    cursor.state.lock().skip_to(log_start);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let high_watermark = batches.high_watermark;
            let records = decode_batches(batches.bytes)?;
            let Some(last) = records.last().map(|r| r.offset) else {
                break;
            };
            for record in records {
                if out.len() >= options.max_messages || record.offset >= high_watermark {
                    break;
                }
                if record.offset < next {
                    continue;
                }
                let message = TopicMessage::decode(&record, partition);
                let wanted = filter(&message.message);
                let mut state = cursor.state.lock();
                if record.offset < state.next_fresh() {
                    continue; // a concurrent receive looked at it first
                }
                let group_of = message.message.message_group.as_deref();
                if let Some(taken) =
                    state.offer_fresh(record.offset, group_of, wanted, now, options.invisible_ms)
                {
                    drop(state);
                    out.push(self.received(message, taken, invisible_until_ms));
                }
            }
            if last < next {
                break;
            }
        }
        self.persist(cursor, false).await
    }

    fn received(&self, message: StoredTopicMessage, taken: Taken, until_ms: i64) -> Received {
        Received {
            receipt: ReceiptHandle {
                epoch: self.epoch,
                partition: message.partition,
                offset: taken.offset,
                receipt: taken.receipt,
            },
            message,
            attempt: taken.attempt,
            invisible_until_ms: until_ms,
        }
    }

    /// Appends the cursor's new resolutions to its ack file (written before the caller answers,
    /// so an ack survives kill -9). With `acked`, the file is also fdatasynced within
    /// [`ACK_SYNC_INTERVAL_MS`], for all cursors acked in that time at once: one fsync per ack
    /// would cap a group at the disk's fsync rate, and losing the last second of acks to a power
    /// failure only redelivers them.
    async fn persist(&self, cursor: &Arc<Cursor>, acked: bool) -> Result<()> {
        let resolved = cursor.state.lock().take_resolved();
        if resolved.is_empty() {
            return Ok(());
        }
        let for_write = cursor.clone();
        run_blocking(move || {
            let changes: Vec<AckChange> = resolved.into_iter().map(AckChange::Settled).collect();
            for_write.acks.lock().append(&changes)
        })
        .await?;
        if acked {
            self.sync_soon(cursor);
        }
        Ok(())
    }

    /// Queues `cursor` for the next ack-file fsync, starting the timer if none is pending.
    fn sync_soon(&self, cursor: &Arc<Cursor>) {
        let mut unsynced = self.unsynced.lock();
        if !unsynced.iter().any(|c| Arc::ptr_eq(c, cursor)) {
            unsynced.push(cursor.clone());
        }
        if unsynced.len() > 1 {
            return; // a sync is already scheduled
        }
        drop(unsynced);
        let queue = self.unsynced.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ACK_SYNC_INTERVAL_MS)).await;
            let cursors = std::mem::take(&mut *queue.lock());
            let synced = run_blocking(move || {
                for cursor in cursors {
                    cursor.acks.sync()?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = synced {
                tracing::error!(error = %e, "pop: syncing acknowledgements failed");
            }
        });
    }

    async fn send_to_dead_letters(
        &self,
        group: &str,
        origin_topic: &str,
        stored: StoredTopicMessage,
        attempts: u32,
    ) -> Result<()> {
        let handle = self
            .broker
            .topic_or_create(&dead_letter_topic(group), 1)
            .await?;
        let mut message = stored.message;
        message
            .properties
            .retain(|(k, _)| !k.starts_with("DLQ_ORIGIN_"));
        message
            .properties
            .push(("DLQ_ORIGIN_TOPIC".into(), origin_topic.into()));
        message
            .properties
            .push(("DLQ_ORIGIN_PARTITION".into(), stored.partition.to_string()));
        message
            .properties
            .push(("DLQ_ORIGIN_OFFSET".into(), stored.offset.to_string()));
        message
            .properties
            .push(("DLQ_DELIVERY_ATTEMPTS".into(), attempts.to_string()));
        message.deliver_at_ms = None;
        tracing::info!(group, topic = origin_topic, message_id = %message.message_id, attempts, "dead-lettered");
        publish(&handle, &[(PartitionChoice::Auto, message)]).await?;
        Ok(())
    }

    async fn cursor(
        &self,
        group: &Arc<str>,
        topic: &Arc<TopicHandle>,
        partition: usize,
    ) -> Result<Arc<Cursor>> {
        let key = CursorKey {
            group: group.clone(),
            topic_id: topic.topic.id,
            partition: partition as i32,
        };
        if let Some(cursor) = self.cursors.lock().get(&key) {
            return Ok(cursor.clone());
        }
        if self.cursors.lock().len() >= POP_CURSORS_MAX {
            return Err(CoreError::LimitExceeded(format!(
                "{POP_CURSORS_MAX} consumer-group partitions in pop consumption"
            )));
        }
        let part = topic.partitions[partition].clone();
        let path = self
            .dir
            .join(&**group)
            .join(topic.topic.id.to_string())
            .join(format!("{partition}.acks"));
        let files = self.broker.files().clone();
        let (log, start) = {
            let part = part.clone();
            run_blocking(move || {
                let dir = path.parent().expect("acks file has a directory");
                std::fs::create_dir_all(dir).map_err(|source| CoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let new = !path.exists();
                let mut log = AckLog::open(&path, files)?;
                let start = part.log_start_offset();
                if new {
                    let from = if part.size_bytes() <= NEW_GROUP_REPLAY_BYTES_MAX {
                        start
                    } else {
                        part.high_watermark()
                    };
                    if from > 0 {
                        log.append(&[AckChange::Settled(0..from)])?;
                    }
                    log.sync()?;
                }
                Ok((log, start))
            })
            .await?
        };
        let state = PopState::restore(start, log.persisted().settled.iter());
        let cursor = Arc::new(Cursor {
            partition: part,
            state: Mutex::new(state),
            acks: SharedAckLog::new(log),
        });
        Ok(self.cursors.lock().entry(key).or_insert(cursor).clone())
    }
}

fn stale(error: PopError) -> CoreError {
    CoreError::Pop(error)
}

/// Group names become directory names: Kafka's topic-name rules.
pub fn validate_group(group: &str) -> Result<()> {
    validate_topic_name(group).map_err(|_| {
        CoreError::InvalidRequest(format!(
            "invalid consumer group {group:?}: use 1-249 of [a-zA-Z0-9._-]"
        ))
    })
}

fn rand_epoch() -> u64 {
    let id = Uuid::new_v4();
    let (high, _) = id.as_u64_pair();
    high & 0xFFFF_FFFF
}

#[cfg(test)]
mod tests;
