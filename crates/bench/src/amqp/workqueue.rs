//! The async work queue: `--producers` publishers and `--consumers` consumers on one fresh
//! durable queue, consumers sharing the messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use lapin::options::QueueDeleteOptions;
use lapin::types::FieldTable;

use super::client::{consume, produce, ConsumePlan, PublishPlan, Published};
use super::{connect, declare_queue, load_suffix, result, AmqpArgs, Totals};
use crate::pacing::share;
use crate::proc_stats;
use crate::progress::Progress;
use crate::report::RunResult;
use crate::stats::{latency_histogram, now_us};

pub async fn run(args: &AmqpArgs, progress: Arc<Progress>) -> Result<RunResult> {
    let queue = format!("{}-{}", args.queue, now_us());
    let setup = connect(&args.url).await?;
    let channel = setup.create_channel().await?;
    declare_queue(&channel, &queue, FieldTable::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(args.common.max_seconds);
    let before = args.common.broker_pid.and_then(proc_stats::sample);
    let started = Instant::now();

    let count = Arc::new(AtomicU64::new(0));
    let target = Arc::new(AtomicU64::new(args.records));
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let consumers: Vec<_> = (0..args.consumers.max(1))
        .map(|_| {
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
    let workers = async {
        let producers: Vec<_> = (0..args.producers.max(1))
            .map(|index| {
                let plan = PublishPlan {
                    url: args.url.clone(),
                    exchange: String::new(),
                    routing_key: queue.clone(),
                    count: share(args.records, index, args.producers),
                    rate: args.rate.map(|r| share(r, index, args.producers).max(1)),
                    record_bytes: args.record_bytes,
                    inflight: args.inflight,
                    pattern: args.publisher,
                    deadline,
                };
                let progress = progress.clone();
                tokio::spawn(async move { produce(&plan, &progress).await })
            })
            .collect();
        let mut published = Published::default();
        for p in producers {
            published.add(p.await??);
        }
        let produce_seconds = started.elapsed().as_secs_f64();
        target.store(published.acked, Ordering::Relaxed);
        for c in consumers {
            c.await??;
        }
        anyhow::Ok((published, produce_seconds, started.elapsed().as_secs_f64()))
    };
    let outcome = workers.await;
    let after = args.common.broker_pid.and_then(proc_stats::sample);
    // Delete the queue even after a failed run, so a broker is not left holding its backlog.
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done".into()).await;
    let (published, produce_seconds, consume_seconds) = outcome?;

    let consumed = count.load(Ordering::Relaxed);
    let scenario = format!(
        "amqp-work-queue {}p/{}c{}",
        args.producers,
        args.consumers,
        load_suffix(args.rate)
    );
    let totals = Totals {
        produced: published.acked,
        consumed,
        // A nack or a confirmed message never delivered is a failure here: nothing refuses.
        errors: progress.errors() + published.nacked + published.acked.saturating_sub(consumed),
        produce_seconds,
        consume_seconds,
    };
    let cost = proc_stats::cost(before, after, consumed as f64);
    Ok(result(args, scenario, totals, &histogram, cost))
}
