//! The publisher and consumer every AMQP scenario uses.
//!
//! Publishes and acks are pipelined, not awaited one by one: lapin resolves each only after its
//! I/O thread wrote the frame, and awaiting them in turn measured the thread hand-off (~10k
//! msgs/s on either broker), not the broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};

use super::{connect, PublisherPattern};
use crate::pacing::{due, interval, next_slot};
use crate::progress::Progress;
use crate::stats::{latency_histogram, now_us, sent_at, stamped_payload};

/// How long a partial `--ack-every` batch may wait for its ack, and how often a consumer
/// notices that its target moved (the producers finished) while no delivery comes.
const ACK_FLUSH: Duration = Duration::from_millis(50);
/// Credit a rate-capped consumer keeps after an idle spell (see [`next_slot`]).
const PACE_SLACK: Duration = Duration::from_millis(20);

/// What one publisher sends, and where.
#[derive(Clone, Debug)]
pub struct PublishPlan {
    pub url: String,
    /// "" for the default exchange (then `routing_key` is the queue).
    pub exchange: String,
    pub routing_key: String,
    pub count: u64,
    /// Open loop: msgs/s of this publisher.
    pub rate: Option<u64>,
    pub record_bytes: usize,
    pub inflight: usize,
    pub pattern: PublisherPattern,
    pub deadline: Instant,
}

/// How a publisher's messages fared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub sent: u64,
    /// Confirmed with basic.ack: the broker has them.
    pub acked: u64,
    /// Refused with basic.nack (e.g. a full `reject-publish` queue).
    pub nacked: u64,
    /// Still unconfirmed at the deadline, or the publish failed.
    pub failed: u64,
}

impl Published {
    pub fn add(&mut self, other: Published) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.nacked += other.nacked;
        self.failed += other.failed;
    }
}

/// Publishes `plan.count` persistent messages with confirms.
///
/// Each message is one future (publish, then its confirm) in a `FuturesUnordered` of at most
/// `inflight`: lapin writes whatever is queued in one go, as an application with many
/// outstanding publishes does. Acks count as produced in `progress`; failures (not nacks, which
/// a scenario may expect) as errors.
pub async fn produce(plan: &PublishPlan, progress: &Progress) -> Result<Published> {
    let connection = connect(&plan.url).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let properties = BasicProperties::default().with_delivery_mode(2);
    let limit = plan.inflight.max(1);
    let mut inflight = FuturesUnordered::new();
    let mut outcome = Published::default();
    let start = Instant::now();
    let start_us = now_us();
    let deadline = tokio::time::sleep_until(tokio::time::Instant::from_std(plan.deadline));
    tokio::pin!(deadline);
    while outcome.sent < plan.count || !inflight.is_empty() {
        let can_send = outcome.sent < plan.count && inflight.len() < limit;
        let due_at = plan
            .rate
            .map(|rate| tokio::time::Instant::from_std(start + due(outcome.sent, rate)));
        tokio::select! {
            biased;
            Some(confirm) = inflight.next(), if !inflight.is_empty() => {
                let confirm: lapin::Result<Confirmation> = confirm;
                match confirm {
                    Ok(c) if c.is_ack() => {
                        outcome.acked += 1;
                        progress.produced(1);
                    }
                    Ok(Confirmation::Nack(_)) => outcome.nacked += 1,
                    _ => {
                        outcome.failed += 1;
                        progress.error(1);
                    }
                }
            }
            _ = &mut deadline => break,
            _ = async {
                if let Some(at) = due_at {
                    tokio::time::sleep_until(at).await;
                }
            }, if can_send => {
                let stamp = match plan.rate {
                    Some(rate) => start_us + due(outcome.sent, rate).as_micros() as u64,
                    None => now_us(),
                };
                let payload = stamped_payload(plan.record_bytes, stamp);
                match plan.pattern {
                    PublisherPattern::Pipelined => {
                        inflight.push(publish(channel.clone(), plan, payload, properties.clone()).boxed());
                    }
                    PublisherPattern::Awaited => {
                        // Await lapin's hand-off of this publish before the next one; only
                        // its confirm stays outstanding.
                        let confirm = channel
                            .basic_publish(
                                plan.exchange.as_str().into(),
                                plan.routing_key.as_str().into(),
                                BasicPublishOptions::default(),
                                &payload,
                                properties.clone(),
                            )
                            .await;
                        inflight.push(async move { confirm?.await }.boxed());
                    }
                }
                outcome.sent += 1;
            },
        }
    }
    // Past the deadline: what is still unconfirmed counts as failed.
    outcome.failed += inflight.len() as u64;
    progress.error(inflight.len() as u64);
    drop(inflight);
    let _ = connection.close(200, "done".into()).await;
    Ok(outcome)
}

/// One persistent publish and its confirm.
async fn publish(
    channel: lapin::Channel,
    plan: &PublishPlan,
    payload: Vec<u8>,
    properties: BasicProperties,
) -> lapin::Result<Confirmation> {
    channel
        .basic_publish(
            plan.exchange.as_str().into(),
            plan.routing_key.as_str().into(),
            BasicPublishOptions::default(),
            &payload,
            properties,
        )
        .await?
        .await
}

/// What one consumer reads, and when it stops.
#[derive(Clone, Debug)]
pub struct ConsumePlan {
    pub url: String,
    pub queue: String,
    pub prefetch: u16,
    pub ack_every: usize,
    /// Deliveries counted so far (shared by consumers of one queue).
    pub count: Arc<AtomicU64>,
    /// Stop once `count` reaches this; producers lower it to what the broker accepted when they
    /// finish, so a consumer neither waits for refused messages nor stops early.
    pub target: Arc<AtomicU64>,
    /// At most this many msgs/s (the peak scenario's slow consumer).
    pub pace: Option<u64>,
    pub deadline: Instant,
}

/// Consumes until the target (or the deadline), recording end-to-end latency when each message
/// is processed; returns when the last one was.
///
/// Acks are sent without waiting for each one to be written (a `FuturesUnordered`, like the
/// producer's publishes); with `ack_every > 1` one `multiple` ack covers that many deliveries.
pub async fn consume(
    plan: ConsumePlan,
    histogram: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    progress: Arc<Progress>,
) -> Result<Option<Instant>> {
    let connection = connect(&plan.url).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(plan.prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            plan.queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming from {}", plan.queue))?;
    let mut local = latency_histogram();
    let mut acks = FuturesUnordered::new();
    let mut batch = AckBatch::new(plan.ack_every);
    let pace = plan.pace.map(interval);
    let (mut slot, mut last) = (None, None);
    // `channel.basic_ack`, not `delivery.ack`: lapin runs each `Acker` ack as its own task, so
    // `multiple` acks could reach the wire out of order ("unknown delivery tag"). Polling the
    // ack once here queues its frame in delivery order; only the write confirmation is awaited
    // later.
    let send_ack = async |(tag, multiple): (u64, bool), acks: &mut FuturesUnordered<_>| {
        let mut ack = Box::pin(channel.basic_ack(tag, BasicAckOptions { multiple }));
        match futures::poll!(ack.as_mut()) {
            Poll::Ready(result) => settle_ack(result, &progress),
            Poll::Pending => acks.push(ack),
        }
    };
    let deadline = tokio::time::sleep_until(tokio::time::Instant::from_std(plan.deadline));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(ACK_FLUSH);
    while plan.count.load(Ordering::Relaxed) < plan.target.load(Ordering::Relaxed) {
        tokio::select! {
            biased;
            Some(result) = acks.next(), if !acks.is_empty() => settle_ack(result, &progress),
            next = deliveries.next() => {
                let Some(delivery) = next else { break };
                let delivery = delivery?;
                if let Some(every) = pace {
                    let at = next_slot(slot, Instant::now(), every, PACE_SLACK);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    slot = Some(at);
                }
                if let Some(sent) = sent_at(&delivery.data) {
                    let _ = local.record(now_us().saturating_sub(sent).max(1));
                }
                plan.count.fetch_add(1, Ordering::Relaxed);
                progress.consumed(1);
                last = Some(Instant::now());
                if let Some(due) = batch.push(delivery.delivery_tag) {
                    send_ack(due, &mut acks).await;
                }
            }
            _ = tick.tick() => {
                // At most ACK_FLUSH between a delivery and its ack, even in a partial batch.
                if let Some(due) = batch.flush() {
                    send_ack(due, &mut acks).await;
                }
            }
            _ = &mut deadline => break,
        }
    }
    if let Some(due) = batch.flush() {
        send_ack(due, &mut acks).await;
    }
    while let Some(result) = acks.next().await {
        settle_ack(result, &progress);
    }
    histogram
        .lock()
        .expect("histogram lock")
        .add(&local)
        .context("merging histograms")?;
    let _ = connection.close(200, "done".into()).await;
    Ok(last)
}

fn settle_ack(result: lapin::Result<()>, progress: &Progress) {
    if result.is_err() {
        progress.error(1);
    }
}

/// Which deliveries to ack: every one (`every` = 1, `multiple` = false), or the newest of each
/// `every` deliveries with `multiple` = true, which covers the ones before it on the channel.
struct AckBatch<T> {
    every: usize,
    pending: usize,
    newest: Option<T>,
}

impl<T> AckBatch<T> {
    fn new(every: usize) -> Self {
        AckBatch {
            every: every.max(1),
            pending: 0,
            newest: None,
        }
    }

    /// A delivery arrived; returns the ack to send now (the delivery's, and `multiple`), if any.
    fn push(&mut self, delivery: T) -> Option<(T, bool)> {
        self.pending += 1;
        if self.pending >= self.every {
            self.pending = 0;
            self.newest = None;
            Some((delivery, self.every > 1))
        } else {
            self.newest = Some(delivery);
            None
        }
    }

    /// The ack covering a partial batch, if one is pending.
    fn flush(&mut self) -> Option<(T, bool)> {
        self.pending = 0;
        self.newest.take().map(|delivery| (delivery, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_every_delivery_by_default() {
        let mut batch = AckBatch::new(1);
        assert_eq!(batch.push(1), Some((1, false)));
        assert_eq!(batch.push(2), Some((2, false)));
        assert_eq!(batch.flush(), None);
    }

    #[test]
    fn acks_in_batches_with_multiple() {
        let mut batch = AckBatch::new(3);
        assert_eq!(batch.push(1), None);
        assert_eq!(batch.push(2), None);
        assert_eq!(batch.push(3), Some((3, true)));
        assert_eq!(batch.flush(), None, "nothing left after a full batch");
        assert_eq!(batch.push(4), None);
        assert_eq!(
            batch.flush(),
            Some((4, true)),
            "a partial batch is acked up to its newest"
        );
        assert_eq!(batch.push(5), None, "a flush starts a new batch");
        assert_eq!(batch.push(6), None);
        assert_eq!(batch.push(7), Some((7, true)));
    }

    #[test]
    fn published_adds_up() {
        let mut total = Published::default();
        let one = Published {
            sent: 4,
            acked: 2,
            nacked: 1,
            failed: 1,
        };
        total.add(one);
        total.add(one);
        assert_eq!(total.sent, 8);
        assert_eq!(total.acked + total.nacked + total.failed, total.sent);
    }
}
