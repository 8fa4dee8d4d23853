//! Fan-out: one publisher to a durable fanout exchange, `--subscribers` durable queues bound to it,
//! each with its own consumer connection. Every message is delivered once per queue, so the
//! figure is deliveries/s (and the broker's cost per delivery) as subscribers grow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::ExchangeKind;

use super::client::{consume, produce, ConsumePlan, PublishPlan};
use super::{connect, declare_queue, load_suffix, result, AmqpArgs, Totals};
use crate::proc_stats;
use crate::progress::Progress;
use crate::report::RunResult;
use crate::stats::{latency_histogram, now_us};

/// More subscribers than this is a typo, not a benchmark (each is a connection).
const MAX_SUBSCRIBERS: usize = 10_000;

pub async fn run(args: &AmqpArgs, progress: Arc<Progress>) -> Result<RunResult> {
    let subscribers = args.subscribers;
    anyhow::ensure!(
        (1..=MAX_SUBSCRIBERS).contains(&subscribers),
        "--subscribers must be between 1 and {MAX_SUBSCRIBERS}"
    );
    let prefix = format!("{}-{}", args.queue, now_us());
    let exchange = format!("{prefix}-fanout");
    let queues: Vec<String> = (0..subscribers).map(|i| format!("{prefix}-{i}")).collect();
    let setup = connect(&args.url).await?;
    let channel = setup.create_channel().await?;
    let declared = async {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring the fanout exchange")?;
        for queue in &queues {
            declare_queue(&channel, queue, FieldTable::default()).await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("binding {queue}"))?;
        }
        anyhow::Ok(())
    };
    let outcome = match declared.await {
        Ok(()) => measure(args, &exchange, &queues, progress.clone()).await,
        Err(e) => Err(e),
    };
    // Delete what was declared even after a failed run: no backlog left on the broker.
    for queue in &queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done".into()).await;
    outcome
}

async fn measure(
    args: &AmqpArgs,
    exchange: &str,
    queues: &[String],
    progress: Arc<Progress>,
) -> Result<RunResult> {
    let deadline = Instant::now() + Duration::from_secs(args.common.max_seconds);
    let before = args.common.broker_pid.and_then(proc_stats::sample);
    let started = Instant::now();
    // Each queue gets every message: one count per consumer, one target for all.
    let target = Arc::new(AtomicU64::new(args.records));
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let counts: Vec<_> = queues.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let consumers: Vec<_> = queues
        .iter()
        .zip(&counts)
        .map(|(queue, count)| {
            let plan = ConsumePlan {
                url: args.url.clone(),
                queue: queue.clone(),
                prefetch: args.prefetch,
                ack_every: args.ack_every,
                count: count.clone(),
                target: target.clone(),
                pace: None,
                deadline,
            };
            tokio::spawn(consume(plan, histogram.clone(), progress.clone()))
        })
        .collect();
    let plan = PublishPlan {
        url: args.url.clone(),
        exchange: exchange.to_string(),
        routing_key: String::new(),
        count: args.records,
        rate: args.rate,
        record_bytes: args.record_bytes,
        inflight: args.inflight,
        pattern: args.publisher,
        deadline,
    };
    let published = produce(&plan, &progress).await;
    let produce_seconds = started.elapsed().as_secs_f64();
    if let Ok(p) = &published {
        target.store(p.acked, Ordering::Relaxed);
    } else {
        target.store(0, Ordering::Relaxed);
    }
    for c in consumers {
        c.await??;
    }
    let consume_seconds = started.elapsed().as_secs_f64();
    let after = args.common.broker_pid.and_then(proc_stats::sample);
    let published = published?;

    let consumed: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let expected = published.acked * queues.len() as u64;
    let scenario = format!("amqp-fanout 1p/{}q{}", queues.len(), load_suffix(args.rate));
    let totals = Totals {
        produced: published.acked,
        consumed,
        errors: progress.errors() + published.nacked + expected.saturating_sub(consumed),
        produce_seconds,
        consume_seconds,
    };
    let cost = proc_stats::cost(before, after, consumed as f64);
    let mut r = result(args, scenario, totals, &histogram, cost);
    r.subscribers = Some(queues.len());
    Ok(r)
}
