//! Reading messages back: the in-memory cache of undelivered messages, log reads with
//! read-ahead, and whether a loaded message may still be delivered (TTL, stale transient).

use std::sync::Arc;

use porter_storage::records::decode_batches;

use super::{Inner, Position, Queue, QUEUE_CACHE_BYTES_MAX, READ_AHEAD_BYTES};
use crate::error::{CoreError, Result};
use crate::message::{Message, StoredMessage};
use crate::partition::blocking;
use crate::queue::dead_letter::DeadReason;

impl Inner {
    pub(crate) fn cache_insert(&mut self, position: Position, message: Arc<StoredMessage>) {
        let len = message.message.body.len();
        if self.cache_bytes + len <= QUEUE_CACHE_BYTES_MAX
            && !self.cache.contains_key(&position)
            && self.cache_budget.try_take(len)
        {
            self.cache_bytes += len;
            self.cache.insert(position, message);
        }
    }

    pub(crate) fn cache_take(&mut self, position: Position) -> Option<Arc<StoredMessage>> {
        let message = self.cache.remove(&position)?;
        let len = message.message.body.len();
        self.cache_bytes -= len;
        self.cache_budget.give_back(len);
        Some(message)
    }

    /// Drops the whole cache (purge), giving its bytes back.
    pub(crate) fn cache_clear(&mut self) {
        self.cache.clear();
        self.cache_budget
            .give_back(std::mem::take(&mut self.cache_bytes));
    }
}

impl Queue {
    /// Why a message must not be delivered, if it must not: `Some(None)` for a transient
    /// message from before a restart (gone without dead-lettering, as in RabbitMQ),
    /// `Some(Some(Expired))` past its TTL.
    pub(crate) fn unusable(
        &self,
        stored: &StoredMessage,
        now_ms: i64,
        returns: u32,
    ) -> Option<Option<DeadReason>> {
        if stored.epoch.is_some_and(|e| e != self.epoch) {
            return Some(None);
        }
        // `x-delivery-limit`: came back unacknowledged more often than allowed.
        if self
            .args
            .delivery_limit
            .is_some_and(|limit| returns > limit)
        {
            return Some(Some(DeadReason::DeliveryLimit));
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
        // Appended but not yet committed (synced, for a durable queue): its writer's commit
        // step is coming; wait for it instead of syncing here.
        self.lanes[lane].writer.wait_committed(offset + 1).await?;
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
}
