//! [`Queue`]: a running queue: its log (porter-storage), its [`QueueState`], its durable ack file,
//! its consumers' sinks. Its *turns* (`super::delivery`), run by the broker's shared
//! [`QueueScheduler`] when something changed or a deadline came, move ready messages to
//! consumers, expire them, dead-letter them and reclaim the log behind the acks; an idle queue
//! holds no task and no timer.
//!
//! Priority queues (`x-max-priority`) keep one *lane* per priority level: its own log, ack file
//! and [`QueueState`], as RabbitMQ keeps one backing queue per priority. Deliveries take from the
//! highest lane with a ready message; a consumer's prefetch counts across all lanes. A queue
//! without priorities has one lane. Queue delivery tags carry their lane in the low bits.
//!
//! Locking: one `parking_lot` mutex over the mutable state, never held across an `.await`. It is
//! held across a log append so that offsets reach the state in log order; that is one page-cache
//! write, done on the lane's writer thread ([`crate::commit`]).
//!
//! The handle is split by idea:
//! - `lifecycle`: opening (restore from the log and ack files), closing, deleting.
//! - `consumers`: consume/cancel, `basic.get`, ack/nack/reject, purge, counts.
//! - `append`: a publish burst into the lanes' logs, `x-max-length(-bytes)`, `x-overflow`.
//! - `load`: the in-memory cache of undelivered messages, log reads, expiry checks.
//! - `durability`: ack-file persistence and waiting for a lane's log to be durable.

mod append;
mod consumers;
mod durability;
mod lifecycle;
mod load;

pub use consumers::QueueConsumer;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use porter_storage::{Log, Offset};
use std::sync::atomic::{AtomicBool, AtomicU8};

use super::ack_log::SharedAckLog;
use super::api::{ConsumerSink, OwnerId};
use super::cache_budget::CacheBudget;
use super::dead_letter::DeadReason;
use super::definition::{QueueArguments, QueueDefinition};
use super::scheduler::{QueueKey, QueueScheduler};
use super::state::{AckChange, QueueState};
use crate::error::Result;
use crate::message::{Message, StoredMessage};
use crate::Broker;

pub(crate) use append::AppendOutcome;
pub(crate) use lifecycle::QueueEnv;

/// Segment size of queue logs: small, so that acked prefixes are reclaimed soon.
pub const QUEUE_SEGMENT_BYTES: u64 = 16 << 20;
/// A file in the queue's directory: present once a transient message was written.
pub(crate) const TRANSIENT_MARKER: &str = "has-transient";

/// Largest record batch (one message plus its properties) a queue log accepts.
pub const QUEUE_BATCH_BYTES_MAX: u32 = 513 << 20;
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
    pub(crate) lanes: Vec<LaneFiles>,
    pub(crate) dir: PathBuf,
    /// This broker incarnation; transient messages carry it (see `StoredMessage::epoch`).
    pub(crate) epoch: u64,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) broker: Weak<Broker>,
    /// This queue, for handing itself to the scheduler from `&self` methods.
    pub(crate) me: Weak<Queue>,
    /// Its entry in the scheduler's timer set.
    pub(crate) key: QueueKey,
    /// A [`TurnState`](super::scheduler::TurnState): whether a worker has it or will.
    pub(crate) turn_state: AtomicU8,
    pub(crate) scheduler: Arc<QueueScheduler>,
    /// A maintenance pass (ack-file fsync, reclaim) is running on the blocking pool.
    pub(crate) maintaining: AtomicBool,
    /// Whether this incarnation has written the transient marker.
    pub(crate) transient_marked: std::sync::atomic::AtomicBool,
}

/// One priority level's files.
pub(crate) struct LaneFiles {
    /// For reads, reclaim and close; writes go through `writer`.
    pub(crate) log: Arc<Log>,
    /// The log's way to its writer thread ([`crate::commit`]): appends, ack-file writes.
    pub(crate) writer: crate::commit::LogWriter,
    pub(crate) acks: Arc<SharedAckLog>,
    /// Ack changes handed to the writer thread, not yet in the ack file.
    pub(crate) pending_acks: Arc<durability::PendingAcks>,
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
    /// The broker-wide bound `cache_bytes` is also taken from.
    pub(crate) cache_budget: Arc<CacheBudget>,
    /// Body sizes of unsettled messages, kept only under `x-max-length-bytes`.
    pub(crate) sizes: BTreeMap<Position, u32>,
    pub(crate) sized_bytes: u64,
    pub(crate) dead: Vec<DeadLetter>,
    /// The head may hold a message that must not be delivered (TTL, per-message expiration, a
    /// transient message from before a restart): the next turn looks at it.
    pub(crate) head_check: bool,
    pub(crate) deleted: bool,
    /// A consumer's buffer was full: the rest of a delivery batch is being sent by a task that
    /// waits for room; turns deliver nothing more until it is done (keeps per-consumer order).
    pub(crate) stalled: bool,
    /// Ack changes were appended since the last maintenance pass started.
    pub(crate) acks_dirty: bool,
    /// Not before this (ms) does the next maintenance pass start.
    pub(crate) maintain_at: i64,
    /// Transient messages from before the last restart still in the log: skipped (dropped)
    /// when reached, and not counted as ready meanwhile.
    pub(crate) stale_transient: u64,
}

/// A queue's cache goes back to the broker's budget when the queue goes (deleted, closed).
impl Drop for Inner {
    fn drop(&mut self) {
        self.cache_budget.give_back(self.cache_bytes);
    }
}

impl Inner {
    /// Forgets what a settled message held in memory.
    pub(crate) fn forget(&mut self, position: Position) {
        self.cache_take(position);
        if let Some(size) = self.sizes.remove(&position) {
            self.sized_bytes -= u64::from(size);
        }
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
    /// Marks the queue for maintenance (the ack-file fsync) when there are any.
    pub(crate) fn take_changes(&mut self) -> Vec<Vec<AckChange>> {
        let changes: Vec<Vec<AckChange>> = self
            .states
            .iter_mut()
            .map(QueueState::take_ack_changes)
            .collect();
        self.acks_dirty |= changes.iter().any(|c| !c.is_empty());
        changes
    }
}

impl Queue {
    /// Asks for a turn on a scheduler worker (see [`super::scheduler`]).
    pub(crate) fn schedule(&self) {
        if let Some(me) = self.me.upgrade() {
            self.scheduler.schedule(&me);
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn definition(&self) -> &QueueDefinition {
        &self.definition
    }

    /// The lane a message of this priority goes to.
    pub(crate) fn lane_for(&self, priority: Option<u8>) -> usize {
        usize::from(priority.unwrap_or(0)).min(self.lanes.len() - 1)
    }
}
