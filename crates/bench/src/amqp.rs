//! The AMQP 0-9-1 driver (lapin), usable against any broker that speaks it: Porter and RabbitMQ
//! are measured by the same code with the same durability — a durable queue, persistent
//! messages, publisher confirms, manual acks — the async work-queue scenario.
//!
//! Closed loop (no `--rate`): each producer keeps up to `--inflight` publishes unconfirmed;
//! consumers (prefetch `--prefetch`) ack every message. Open loop (`--rate R`): producers send
//! R messages/s in total on a fixed schedule and latency counts from the *intended* send time,
//! so a stall shows in the percentiles instead of silently slowing the sender.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::StreamExt;
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
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let mut consumers = Vec::new();
    for _ in 0..args.consumers {
        let (args, queue) = (args.clone(), queue.clone());
        let (consumed, histogram) = (consumed.clone(), histogram.clone());
        consumers.push(tokio::spawn(async move {
            consume(&args, &queue, &consumed, &histogram, deadline).await
        }));
    }
    let errors = Arc::new(AtomicU64::new(0));
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
    let consume_seconds = started.elapsed().as_secs_f64();
    let after = args.common.broker_pid.and_then(proc_stats::sample);
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done".into()).await;

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
    let mut pending = VecDeque::new();
    let mut acked = 0;
    let start = Instant::now();
    let start_us = now_us();
    let settle = |confirm: lapin::Result<lapin::Confirmation>, acked: &mut u64| match confirm {
        Ok(c) if c.is_ack() => *acked += 1,
        _ => {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    for n in 0..count {
        if Instant::now() > deadline {
            break;
        }
        let stamp = match rate {
            Some(rate) => {
                let due = due(n, rate);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                start_us + due.as_micros() as u64
            }
            None => now_us(),
        };
        let payload = stamped_payload(args.record_bytes, stamp);
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &payload,
                properties.clone(),
            )
            .await?;
        pending.push_back(confirm);
        while pending.len() >= args.inflight.max(1) {
            let oldest = pending.pop_front().expect("non-empty");
            settle(oldest.await, &mut acked);
        }
    }
    for confirm in pending {
        settle(confirm.await, &mut acked);
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(acked)
}

async fn consume(
    args: &AmqpArgs,
    queue: &str,
    consumed: &AtomicU64,
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
    while consumed.load(Ordering::Relaxed) < args.records && Instant::now() < deadline {
        let next = tokio::time::timeout(Duration::from_millis(200), deliveries.next()).await;
        let Ok(Some(delivery)) = next else {
            continue;
        };
        let delivery = delivery?;
        if let Some(sent) = sent_at(&delivery.data) {
            let _ = local.record(now_us().saturating_sub(sent).max(1));
        }
        delivery.ack(BasicAckOptions::default()).await?;
        consumed.fetch_add(1, Ordering::Relaxed);
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
    fn pacing_spreads_sends_evenly() {
        assert_eq!(due(0, 1000), Duration::ZERO);
        assert_eq!(due(1, 1000), Duration::from_millis(1));
        assert_eq!(due(500, 1000), Duration::from_millis(500));
        assert_eq!(due(3, 4), Duration::from_millis(750));
    }
}
