//! Opening a queue (its lanes' logs and ack files, restored state, transient leftovers),
//! closing it, and deleting it off the caller's path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use porter_storage::records::decode_batches;
use porter_storage::{FileCache, FlushMode, Log, LogConfig};
use std::sync::atomic::{AtomicBool, AtomicU8};

use super::{
    Inner, LaneFiles, Queue, QUEUE_BATCH_BYTES_MAX, QUEUE_SEGMENT_BYTES, TRANSIENT_MARKER,
};
use crate::error::{CoreError, Result};
use crate::message::Message;
use crate::partition::now_ms;
use crate::queue::ack_log::{AckLog, SharedAckLog};
use crate::queue::api::{ConsumerEvent, ConsumerSink};
use crate::queue::definition::{QueueArguments, QueueDefinition};
use crate::queue::scheduler::{QueueScheduler, TurnState};
use crate::queue::state::QueueState;
use crate::Broker;

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

/// What every queue of a broker shares.
pub(crate) struct QueueEnv {
    /// The descriptors of every queue's logs and ack files.
    pub(crate) files: Arc<FileCache>,
    /// This broker incarnation (see `StoredMessage::epoch`).
    pub(crate) epoch: u64,
    pub(crate) broker: Weak<Broker>,
    pub(crate) scheduler: Arc<QueueScheduler>,
    /// Bodies all queues keep in memory (see `CacheBudget`).
    pub(crate) cache_budget: Arc<crate::queue::cache_budget::CacheBudget>,
}

impl Queue {
    /// Opens (creating if missing) the queue's files under `dir` and, if it has work waiting
    /// (a backlog, `x-expires`, a prefix to reclaim), schedules its first turn. Blocking; call
    /// on the blocking pool.
    pub(crate) fn open(
        definition: QueueDefinition,
        vhost: &str,
        dir: &Path,
        after_crash: bool,
        env: QueueEnv,
    ) -> Result<Arc<Queue>> {
        let QueueEnv {
            files,
            epoch,
            broker,
            scheduler,
            cache_budget,
        } = env;
        let args = QueueArguments::parse(&definition.arguments)
            .map_err(|e| CoreError::Metadata(e.to_string()))?;
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
        // The broker's writer threads; the broker is alive while it opens its queues.
        let committer = broker
            .upgrade()
            .map(|b| Arc::clone(&b.committer))
            .ok_or(CoreError::ShuttingDown)?;
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
            let mut acks = AckLog::open(&dir.join(format!("acks{suffix}")), files.clone())?;
            let mut state = QueueState::restore(
                acks.persisted(),
                log.log_start_offset(),
                log.log_end_offset(),
            )?;
            // A queue opened for the first time (just declared: empty log, nothing in its ack
            // file) writes its first delivered watermark now, with the declare's own disk work,
            // instead of an fsync before its first delivery; the watermark never covers more
            // than the log after a restart (`restore` clamps it), so reserving it early
            // promises nothing false. Reopened queues keep the fsync at their first delivery,
            // so 100k queues still open at start without 100k fsyncs.
            let first_open = log.log_end_offset() == 0 && acks.persisted().is_empty();
            if first_open {
                if let Some(change) = state.reserve_watermark() {
                    acks.append(&[change])?;
                    if definition.durable {
                        acks.sync()?;
                    }
                }
            }
            state.set_single_active(args.single_active_consumer);
            states.push(state);
            let log = Arc::new(log);
            lanes.push(LaneFiles {
                writer: committer.register(Arc::clone(&log)),
                log,
                acks: Arc::new(SharedAckLog::new(acks)),
                pending_acks: Arc::default(),
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
        let queue = Arc::new_cyclic(|me| Queue {
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
                cache_budget,
                sizes: BTreeMap::new(),
                sized_bytes: 0,
                dead: Vec::new(),
                head_check: restored_backlog,
                deleted: false,
                stalled: false,
                acks_dirty: false,
                maintain_at: 0,
                stale_transient,
            }),
            broker,
            me: me.clone(),
            key: scheduler.next_key(),
            turn_state: AtomicU8::new(TurnState::Idle as u8),
            scheduler,
            maintaining: AtomicBool::new(false),
            transient_marked: std::sync::atomic::AtomicBool::new(false),
            definition,
        });
        // A restored backlog may hold expired messages; x-expires and a reclaimable prefix need
        // a deadline. Anything else waits, costing nothing, until it is used.
        if restored_backlog || queue.args.expires_ms.is_some() || queue.needs_maintenance() {
            queue.schedule();
        }
        Ok(queue)
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

    /// Takes the queue off the scheduler and tells consumers (server-sent cancel). With `delete_files`,
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
        self.scheduler.clear_deadline(self.key);
        for (tag, sink) in sinks {
            let _ = sink.try_send(ConsumerEvent::Cancelled { consumer_tag: tag });
        }
        for lane in &self.lanes {
            if delete_files {
                lane.log.delete()?;
            } else {
                // Ack changes the writer thread did not take yet (it has stopped at shutdown).
                lane.pending_acks.write_to(&lane.acks)?;
                lane.acks.sync()?;
                lane.log.flush()?;
                lane.log.close()?;
            }
            lane.acks.lock().release();
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
