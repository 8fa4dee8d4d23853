//! Publishing into a queue: the messages of one burst (see [`crate::publish`]) appended to their
//! lanes' logs, one write per lane on the lane's writer thread ([`crate::commit`]), then
//! `x-max-length(-bytes)` and `x-overflow` applied.

use std::sync::Arc;

use porter_storage::Log;

use super::{DeadLetter, Inner, Queue, TRANSIENT_MARKER};
use crate::commit::Written;
use crate::error::{CoreError, Result};
use crate::publish::Prepared;
use crate::queue::dead_letter::DeadReason;
use crate::queue::definition::Overflow;
use porter_storage::Offset;

/// What one queue did with a published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendOutcome {
    /// In `lane`'s log; durable once that log is synced to `end`.
    Appended { lane: usize, end: Offset },
    /// Refused by `x-overflow = reject-publish(-dlx)`.
    Rejected,
    /// The queue is being deleted.
    Gone,
}

type WriteResult = (Vec<AppendOutcome>, bool);

/// A write queued on a lane's writer thread, or already done.
enum QueuedWrite {
    Queued(Written<WriteResult>),
    Done(WriteResult),
}

/// A burst's writes to one queue, queued on its writer threads (see [`Queue::start_append`]).
pub(crate) struct PendingAppend {
    queue: Arc<Queue>,
    entries: usize,
    /// Per write: the indexes of the burst's entries it holds, and the write.
    writes: Vec<(Vec<usize>, QueuedWrite)>,
}

impl PendingAppend {
    /// Waits for the writes; one outcome per entry, in burst order.
    pub(crate) async fn finish(self) -> Result<Vec<AppendOutcome>> {
        let mut outcomes = vec![AppendOutcome::Gone; self.entries];
        let mut wake = false;
        for (run, write) in self.writes {
            let (written, woke) = match write {
                QueuedWrite::Queued(pending) => pending.await?,
                QueuedWrite::Done(done) => done,
            };
            for (&i, outcome) in run.iter().zip(written) {
                outcomes[i] = outcome;
            }
            wake |= woke;
        }
        self.queue.persist_changes()?;
        if wake {
            self.queue.schedule();
        }
        Ok(outcomes)
    }
}

impl Queue {
    /// Appends a burst of encoded messages, in order; one outcome per entry:
    /// [`Self::start_append`], then [`PendingAppend::finish`].
    pub(crate) async fn append_prepared(
        self: &Arc<Self>,
        entries: &[&Prepared],
    ) -> Result<Vec<AppendOutcome>> {
        self.start_append(entries).await?.finish().await
    }

    /// Queues the burst's writes on the lanes' writer threads and returns once they are queued,
    /// so a fan-out queues every destination's write before waiting for any (one writer
    /// round trip per burst, not one per queue). Without a length limit each lane gets one
    /// write for all its entries; with one, each entry is checked and appended on its own, since
    /// each one's overflow decision depends on those before it (across lanes, each is awaited
    /// before the next is queued). Offsets reach the state in log order because each lane's
    /// log is appended to only by its writer thread; only length-limited queues hold the
    /// state's lock across the write.
    pub(crate) async fn start_append(
        self: &Arc<Self>,
        entries: &[&Prepared],
    ) -> Result<PendingAppend> {
        let mut mark_transient = entries.iter().any(|e| e.is_transient());
        let limited = self.args.max_length.is_some() || self.args.max_length_bytes.is_some();
        // (lane, indexes of the entries it takes) per write.
        let mut runs: Vec<(usize, Vec<usize>)> = Vec::new();
        let lanes: Vec<usize> = entries
            .iter()
            .map(|e| self.lane_for(e.stored.message.properties.priority))
            .collect();
        if limited {
            runs.extend(lanes.iter().enumerate().map(|(i, &lane)| (lane, vec![i])));
        } else {
            for lane in 0..self.lanes.len() {
                let run: Vec<usize> = (0..entries.len()).filter(|&i| lanes[i] == lane).collect();
                if !run.is_empty() {
                    runs.push((lane, run));
                }
            }
        }
        let in_order = limited && self.lanes.len() > 1;
        let mut pending = PendingAppend {
            queue: Arc::clone(self),
            entries: entries.len(),
            writes: Vec::with_capacity(runs.len()),
        };
        for (lane, run) in runs {
            let batch: Vec<Prepared> = run.iter().map(|&i| entries[i].clone()).collect();
            let this = self.clone();
            let mark = std::mem::take(&mut mark_transient);
            let write = move |log: &Log| -> Result<(Vec<AppendOutcome>, bool)> {
                if limited {
                    // Each overflow decision must see the appends before it, in every lane: the
                    // state's lock is held across this one-message write.
                    let mut inner = this.inner.lock();
                    if inner.deleted {
                        return Ok((vec![AppendOutcome::Gone; batch.len()], false));
                    }
                    if mark {
                        this.mark_transient()?;
                    }
                    let was_empty = inner.ready() == 0;
                    let outcome = this.append_limited(log, &mut inner, lane, &batch[0])?;
                    let wake = this.needs_turn(&inner, was_empty);
                    return Ok((vec![outcome], wake));
                }
                // No length limit: nothing to decide before the write, so it runs without the
                // state's lock, and reactor tasks taking that lock (acks, deliveries) never
                // wait for a disk write. Offsets still reach the state in log order: this lane's
                // log is appended to only here, on its one writer thread.
                let gone = || Ok((vec![AppendOutcome::Gone; batch.len()], false));
                if this.inner.lock().deleted {
                    return gone();
                }
                if mark {
                    this.mark_transient()?;
                }
                let base = match this.write_log(log, &batch) {
                    Ok(base) => base,
                    // Deleted while we wrote: nobody will read it.
                    Err(CoreError::Closed) => return gone(),
                    Err(e) => return Err(e),
                };
                let mut inner = this.inner.lock();
                if inner.deleted {
                    return gone();
                }
                let was_empty = inner.ready() == 0;
                this.record_run(&mut inner, lane, &batch, base);
                let outcomes = (0..batch.len())
                    .map(|k| AppendOutcome::Appended {
                        lane,
                        end: base + k as Offset + 1,
                    })
                    .collect();
                let wake = this.needs_turn(&inner, was_empty);
                Ok((outcomes, wake))
            };
            let written = self.lanes[lane].writer.enqueue(write).await?;
            let write = if in_order {
                QueuedWrite::Done(written.await?)
            } else {
                QueuedWrite::Queued(written)
            };
            pending.writes.push((run, write));
        }
        Ok(pending)
    }

    /// Tells the next start to look for (and not count) transient messages left over: a
    /// marker file, written once per incarnation. On a writer thread.
    fn mark_transient(&self) -> Result<()> {
        if self
            .transient_marked
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let marker = self.dir.join(TRANSIENT_MARKER);
        std::fs::File::create(&marker).map_err(|e| CoreError::Io {
            path: marker,
            source: e,
        })?;
        Ok(())
    }

    /// Under `x-max-length(-bytes)`: one entry, after its overflow check; drop-head after it.
    fn append_limited(
        &self,
        log: &Log,
        inner: &mut Inner,
        lane: usize,
        entry: &Prepared,
    ) -> Result<AppendOutcome> {
        let len = entry.stored.message.body.len() as u64;
        if self.would_overflow(inner, len) {
            match self.args.overflow {
                Overflow::DropHead => {}
                Overflow::RejectPublish => return Ok(AppendOutcome::Rejected),
                Overflow::RejectPublishDlx => {
                    if self.args.dead_letter_exchange.is_some() {
                        inner.dead.push(DeadLetter {
                            position: None,
                            message: Some(entry.stored.message.clone()),
                            reason: DeadReason::MaxLen,
                        });
                    }
                    return Ok(AppendOutcome::Rejected);
                }
            }
        }
        let offset = self.write_run(log, inner, lane, std::slice::from_ref(entry))?;
        self.drop_head_over_limit(inner);
        Ok(AppendOutcome::Appended {
            lane,
            end: offset + 1,
        })
    }

    /// Writes `run` (one message per batch) to `lane`'s log in one append and records each in
    /// the state and cache; returns the first one's offset. Caller holds `inner`.
    fn write_run(
        &self,
        log: &Log,
        inner: &mut Inner,
        lane: usize,
        run: &[Prepared],
    ) -> Result<Offset> {
        let base = self.write_log(log, run)?;
        self.record_run(inner, lane, run, base);
        Ok(base)
    }

    /// Appends `run` (one message per batch) to a lane's log in one write; returns the first
    /// one's offset. On the lane's writer thread.
    fn write_log(&self, log: &Log, run: &[Prepared]) -> Result<Offset> {
        let now = run[0].stored.enqueued_ms;
        let entries: Vec<&Prepared> = run.iter().collect();
        // Encoded (and CRC'd) once by `Prepared::new`: no second CRC pass.
        let info = log.append_prepared(Prepared::concat(&entries), now)?;
        debug_assert_eq!(
            info.last_offset - info.base_offset + 1,
            run.len() as Offset,
            "one message per batch"
        );
        Ok(info.base_offset)
    }

    /// Records `run`, written at `base`, in the lane's state and the cache.
    fn record_run(&self, inner: &mut Inner, lane: usize, run: &[Prepared], base: Offset) {
        for (k, entry) in run.iter().enumerate() {
            let offset = base + k as Offset;
            let position = (lane, offset);
            inner.states[lane].on_append(offset);
            if self.args.max_length_bytes.is_some() {
                let len = entry.stored.message.body.len();
                inner.sizes.insert(position, len as u32);
                inner.sized_bytes += len as u64;
            }
            if entry.stored.message.properties.expiration.is_some() {
                inner.head_check = true;
            }
            inner.cache_insert(position, entry.stored.clone());
        }
    }

    /// Whether the queue needs a turn after an append: someone can take the messages, the
    /// first message's expiry must be scheduled, or dead letters wait to be republished
    /// (reject-publish-dlx, drop-head). One per publish would cost a worker's time for nothing.
    fn needs_turn(&self, inner: &Inner, was_empty: bool) -> bool {
        !inner.consumers.is_empty() || was_empty || !inner.dead.is_empty()
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
