//! The AMQP 0-9-1 driver (lapin), usable against any broker that speaks it: Porter and RabbitMQ
//! are measured by the same code with the same durability — a durable queue, persistent
//! messages, publisher confirms, manual acks — the async work-queue scenario.
//!
//! Closed loop (no `--rate`): each producer keeps up to `--inflight` publishes unconfirmed;
//! consumers (prefetch `--prefetch`) ack every message (or, with `--ack-every N`, one `multiple`
//! ack per N). Publishes and acks are pipelined, not awaited one by one: lapin resolves each only
//! after its I/O thread wrote the frame, and awaiting them in turn measured the thread hand-off
//! (~10k msgs/s on either broker), not the broker. Open loop (`--rate R`): producers send
//! R messages/s in total on a fixed schedule and latency counts from the *intended* send time,
//! so a stall shows in the percentiles instead of silently slowing the sender.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::proc_stats;
use crate::report::RunResult;
use crate::stats::{latency_histogram, now_us, sent_at, stamped_payload, Latency};
use crate::CommonArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct AmqpArgs {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    pub url: String,
    /// Queue name prefix; each run declares a fresh durable queue and deletes it after.
    #[arg(long, default_value = "bench")]
    pub queue: String,
    #[arg(long, default_value_t = 100)]
    pub record_bytes: usize,
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer connections.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// basic.qos prefetch count of each consumer.
    #[arg(long, default_value_t = 100)]
    pub prefetch: u16,
    /// Unconfirmed publishes each producer keeps in flight (closed loop).
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Ack every delivery (1), or one `multiple` ack per this many deliveries (at most
    /// `--prefetch`; a partial batch is acked within 50 ms).
    #[arg(long, default_value_t = 1)]
    pub ack_every: usize,
    /// Open loop: messages per second, all producers together.
    #[arg(long)]
    pub rate: Option<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Messages producer `index` of `of` sends: the total split as evenly as possible.
pub fn share(total: u64, index: usize, of: usize) -> u64 {
    let of = of.max(1) as u64;
    total / of + u64::from((index as u64) < total % of)
}

/// When message `n` of a producer sending `rate` per second is due, from the start.
pub fn due(n: u64, rate: u64) -> Duration {
    Duration::from_nanos(n.saturating_mul(1_000_000_000) / rate.max(1))
}

pub async fn run(args: AmqpArgs) -> Result<RunResult> {
    anyhow::ensure!(
        args.ack_every >= 1 && args.ack_every <= usize::from(args.prefetch.max(1)),
        "--ack-every must be between 1 and --prefetch"
    );
    let queue = format!("{}-{}", args.queue, now_us());
    let setup = connect(&args.url).await?;
    let channel = setup.create_channel().await?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("declaring the benchmark queue")?;
    let deadline = Instant::now() + Duration::from_secs(args.common.max_seconds);
    let before = args.common.broker_pid.and_then(proc_stats::sample);
    let started = Instant::now();

    let consumed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let mut consumers = Vec::new();
    for _ in 0..args.consumers {
        let (args, queue, errors) = (args.clone(), queue.clone(), errors.clone());
        let (consumed, histogram) = (consumed.clone(), histogram.clone());
        consumers.push(tokio::spawn(async move {
            consume(&args, &queue, &consumed, &errors, &histogram, deadline).await
        }));
    }
    let workers = async {
        let mut producers = Vec::new();
        for index in 0..args.producers {
            let (args, queue, errors) = (args.clone(), queue.clone(), errors.clone());
            producers.push(tokio::spawn(async move {
                produce(&args, &queue, index, &errors, deadline).await
            }));
        }
        let mut produced = 0;
        for p in producers {
            produced += p.await??;
        }
        let produce_seconds = started.elapsed().as_secs_f64();
        for c in consumers {
            c.await??;
        }
        anyhow::Ok((produced, produce_seconds, started.elapsed().as_secs_f64()))
    };
    let outcome = workers.await;
    let after = args.common.broker_pid.and_then(proc_stats::sample);
    // Delete the queue even after a failed run, so a broker is not left holding its backlog.
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done".into()).await;
    let (produced, produce_seconds, consume_seconds) = outcome?;

    let consumed = consumed.load(Ordering::Relaxed);
    let latency = Latency::of(&histogram.lock().expect("histogram lock"));
    let mut result = RunResult {
        label: args.common.label.clone(),
        scenario: match args.rate {
            None => format!("amqp-work-queue {}p/{}c", args.producers, args.consumers),
            Some(rate) => format!(
                "amqp-work-queue {}p/{}c @{rate}/s",
                args.producers, args.consumers
            ),
        },
        record_bytes: args.record_bytes,
        produced,
        consumed,
        errors: errors.load(Ordering::Relaxed) + produced.saturating_sub(consumed),
        produce_seconds,
        consume_seconds,
        produce_records_per_sec: produced as f64 / produce_seconds,
        produce_mb_per_sec: (produced as f64 * args.record_bytes as f64) / produce_seconds / 1e6,
        consume_records_per_sec: consumed as f64 / consume_seconds,
        end_to_end: latency,
        json_path: args.common.json.clone(),
        ..RunResult::default()
    };
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = a.cpu_seconds - b.cpu_seconds;
        result.broker = Some(proc_stats::ProcSample {
            cpu_seconds: cpu,
            rss_peak_kib: a.rss_peak_kib,
        });
        if consumed > 0 {
            result.broker_cpu_seconds_per_million = Some(cpu / (consumed as f64 / 1e6));
        }
    }
    Ok(result)
}

async fn connect(url: &str) -> Result<Connection> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Publishes this producer's share with confirms; returns how many were confirmed with an ack.
///
/// lapin's `basic_publish` resolves only once its I/O thread has written the frames, so awaiting
/// each publish in turn would cap a producer at one publish per thread round trip. Instead each
/// message is one future (publish, then its confirm) in a `FuturesUnordered` of at most
/// `--inflight`: lapin writes whatever is queued in one go, as an application with many
/// outstanding publishes does.
async fn produce(
    args: &AmqpArgs,
    queue: &str,
    index: usize,
    errors: &AtomicU64,
    deadline: Instant,
) -> Result<u64> {
    let connection = connect(&args.url).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let count = share(args.records, index, args.producers);
    let rate = args.rate.map(|r| share(r, index, args.producers).max(1));
    let properties = BasicProperties::default().with_delivery_mode(2);
    let limit = args.inflight.max(1);
    let mut inflight = FuturesUnordered::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    let start = Instant::now();
    let start_us = now_us();
    let deadline = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
    tokio::pin!(deadline);
    while sent < count || !inflight.is_empty() {
        let can_send = sent < count && inflight.len() < limit;
        let due_at = rate.map(|rate| tokio::time::Instant::from_std(start + due(sent, rate)));
        tokio::select! {
            biased;
            Some(confirm) = inflight.next(), if !inflight.is_empty() => {
                let confirm: lapin::Result<lapin::Confirmation> = confirm;
                match confirm {
                    Ok(c) if c.is_ack() => acked += 1,
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = &mut deadline => break,
            _ = async {
                if let Some(at) = due_at {
                    tokio::time::sleep_until(at).await;
                }
            }, if can_send => {
                let stamp = match rate {
                    Some(rate) => start_us + due(sent, rate).as_micros() as u64,
                    None => now_us(),
                };
                let payload = stamped_payload(args.record_bytes, stamp);
                inflight.push(publish(channel.clone(), queue, payload, properties.clone()));
                sent += 1;
            },
        }
    }
    // Past the deadline: what is still unconfirmed counts as an error.
    errors.fetch_add(inflight.len() as u64, Ordering::Relaxed);
    drop(inflight);
    let _ = connection.close(200, "done".into()).await;
    Ok(acked)
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

fn settle_ack(result: lapin::Result<()>, errors: &AtomicU64) {
    if result.is_err() {
        errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// One persistent publish and its confirm.
async fn publish(
    channel: lapin::Channel,
    queue: &str,
    payload: Vec<u8>,
    properties: BasicProperties,
) -> lapin::Result<lapin::Confirmation> {
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &payload,
            properties,
        )
        .await?
        .await
}

/// Consumes until all records arrived (or the deadline), recording end-to-end latency.
///
/// Acks are sent without waiting for each one to be written (a `FuturesUnordered`, like the
/// producer's publishes); with `--ack-every N > 1` one `multiple` ack covers N deliveries.
async fn consume(
    args: &AmqpArgs,
    queue: &str,
    consumed: &AtomicU64,
    errors: &AtomicU64,
    histogram: &Mutex<hdrhistogram::Histogram<u64>>,
    deadline: Instant,
) -> Result<()> {
    let connection = connect(&args.url).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(args.prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut local = latency_histogram();
    let mut acks = FuturesUnordered::new();
    let mut batch = AckBatch::new(args.ack_every);
    // `channel.basic_ack`, not `delivery.ack`: lapin runs each `Acker` ack as its own task, so
    // `multiple` acks could reach the wire out of order ("unknown delivery tag"). Polling the
    // ack once here queues its frame in delivery order; only the write confirmation is awaited
    // later.
    let send_ack = async |(tag, multiple): (u64, bool), acks: &mut FuturesUnordered<_>| {
        let mut ack = Box::pin(channel.basic_ack(tag, BasicAckOptions { multiple }));
        match futures::poll!(ack.as_mut()) {
            Poll::Ready(result) => settle_ack(result, errors),
            Poll::Pending => acks.push(ack),
        }
    };
    let deadline = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while consumed.load(Ordering::Relaxed) < args.records {
        tokio::select! {
            biased;
            Some(result) = acks.next(), if !acks.is_empty() => settle_ack(result, errors),
            next = deliveries.next() => {
                let Some(delivery) = next else { break };
                let delivery = delivery?;
                if let Some(sent) = sent_at(&delivery.data) {
                    let _ = local.record(now_us().saturating_sub(sent).max(1));
                }
                consumed.fetch_add(1, Ordering::Relaxed);
                if let Some(due) = batch.push(delivery.delivery_tag) {
                    send_ack(due, &mut acks).await;
                }
            }
            _ = tick.tick() => {
                // At most 50 ms between a delivery and its ack, even in a partial batch.
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
        settle_ack(result, errors);
    }
    histogram
        .lock()
        .expect("histogram lock")
        .add(&local)
        .context("merging histograms")?;
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (total, of) in [(10, 3), (7, 7), (5, 8), (1_000_000, 4)] {
            let shares: Vec<u64> = (0..of).map(|i| share(total, i, of)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total);
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(max - min <= 1, "{shares:?}");
        }
    }

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
    fn pacing_spreads_sends_evenly() {
        assert_eq!(due(0, 1000), Duration::ZERO);
        assert_eq!(due(1, 1000), Duration::from_millis(1));
        assert_eq!(due(500, 1000), Duration::from_millis(500));
        assert_eq!(due(3, 4), Duration::from_millis(750));
    }
}
