//! Publishing into a queue: one message appended to its lane's log, then `x-max-length(-bytes)`
//! and `x-overflow` applied.

use std::sync::Arc;

use super::{DeadLetter, Inner, Queue, TRANSIENT_MARKER};
use crate::error::{CoreError, Result};
use crate::message::{Message, StoredMessage};
use crate::partition::now_ms;
use crate::queue::dead_letter::DeadReason;
use crate::queue::definition::Overflow;
use porter_storage::Offset;

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
    /// Appends one published message (on its lane's writer thread) and applies `x-max-length`.
    pub(crate) async fn append(self: &Arc<Self>, message: &Message) -> Result<AppendOutcome> {
        let now = now_ms();
        let transient = !message.properties.is_persistent();
        let batch = message.encode(now, transient.then_some(self.epoch));
        let lane = self.lane_for(message.properties.priority);
        let stored = Arc::new(StoredMessage {
            message: Arc::new(message.clone()),
            enqueued_ms: now,
            epoch: transient.then_some(self.epoch),
        });
        let this = self.clone();
        let append = move |log: &porter_storage::Log| -> Result<(AppendOutcome, bool)> {
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
                                message: Some(stored.message.clone()),
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
            // Encoded (and CRC'd) by `Message::encode`: no second CRC pass.
            let info = log.append_prepared(batch, now)?;
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
        // On the writer thread, so no write(2) runs on a reactor thread; offsets still reach
        // the state in log order (the state's lock is held across the append there).
        let (outcome, wake) = self.lanes[lane].writer.write(append).await?;
        self.persist_changes()?;
        if wake {
            self.schedule();
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
}
