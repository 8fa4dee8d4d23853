//! Peak shaving: a queue absorbing a burst its consumers cannot keep up with.
//!
//! The queue is bounded (`x-max-length` = `--max-length`, `x-overflow` = `reject-publish`, so a
//! full queue nacks publishes instead of dropping old messages or growing without bound), its
//! consumers together process at most `--consume-rate` msgs/s, and one producer bursts at
//! [`BURST_FACTOR`] times that for `--burst-seconds`. Reported: what was accepted (confirmed) and
//! refused (nacked), the deepest the queue got (queue.declare passive, every [`DEPTH_POLL`]),
//! the broker's RSS over the run (every [`RSS_SAMPLE`]) and the drain time from the burst's end
//! to the last accepted message consumed. The same on Porter and RabbitMQ: both implement
//! reject-publish with publisher confirms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::watch;

use super::client::{consume, produce, ConsumePlan, PublishPlan};
use super::{connect, declare_queue, result, AmqpArgs, Totals};
use crate::pacing::share;
use crate::proc_stats;
use crate::progress::Progress;
use crate::report::{PeakResult, RunResult, TimePoint};
use crate::stats::{latency_histogram, now_us};

/// The burst's rate as a multiple of what the consumers take.
pub const BURST_FACTOR: u64 = 10;
/// How often the queue depth is polled.
const DEPTH_POLL: Duration = Duration::from_millis(100);
/// How often the broker's RSS is sampled.
const RSS_SAMPLE: Duration = Duration::from_millis(250);
/// A burst longer than this is a typo (it would outlast any --max-seconds).
const MAX_BURST_SECONDS: f64 = 3600.0;

pub async fn run(args: &AmqpArgs, progress: Arc<Progress>) -> Result<RunResult> {
    anyhow::ensure!(args.consume_rate >= 1, "--consume-rate must be at least 1");
    anyhow::ensure!(
        args.burst_seconds > 0.0 && args.burst_seconds <= MAX_BURST_SECONDS,
        "--burst-seconds must be in (0, {MAX_BURST_SECONDS}]"
    );
    anyhow::ensure!(args.max_length >= 1, "--max-length must be at least 1");
    let queue = format!("{}-peak-{}", args.queue, now_us());
    let setup = connect(&args.url).await?;
    let channel = setup.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(i64::try_from(args.max_length).unwrap_or(i64::MAX)),
    );
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    declare_queue(&channel, &queue, arguments).await?;
    let outcome = measure(args, &queue, progress).await;
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done".into()).await;
    outcome
}

async fn measure(args: &AmqpArgs, queue: &str, progress: Arc<Progress>) -> Result<RunResult> {
    let burst_rate = args.consume_rate.saturating_mul(BURST_FACTOR);
    let burst = (burst_rate as f64 * args.burst_seconds).round() as u64;
    let deadline = Instant::now() + Duration::from_secs(args.common.max_seconds);
    let before = args.common.broker_pid.and_then(proc_stats::sample);
    let started = Instant::now();
    let (stop_monitor, stopped) = watch::channel(false);
    let monitor = tokio::spawn(monitor(
        args.url.clone(),
        queue.to_string(),
        args.common.broker_pid,
        started,
        stopped,
        progress.clone(),
    ));

    // Until the burst is over nobody knows how many messages the queue accepts.
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let count = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let consumers: Vec<_> = (0..args.consumers.max(1))
        .map(|index| {
            let plan = ConsumePlan {
                url: args.url.clone(),
                queue: queue.to_string(),
                prefetch: args.prefetch,
                ack_every: args.ack_every,
                count: count.clone(),
                target: target.clone(),
                pace: Some(share(args.consume_rate, index, args.consumers).max(1)),
                deadline,
            };
            tokio::spawn(consume(plan, histogram.clone(), progress.clone()))
        })
        .collect();
    let plan = PublishPlan {
        url: args.url.clone(),
        exchange: String::new(),
        routing_key: queue.to_string(),
        count: burst,
        rate: Some(burst_rate),
        record_bytes: args.record_bytes,
        inflight: args.inflight,
        pattern: args.publisher,
        deadline,
    };
    let published = produce(&plan, &progress).await;
    let burst_end = Instant::now();
    target.store(published.as_ref().map_or(0, |p| p.acked), Ordering::Relaxed);
    let mut last_consumed = None;
    let mut consumer_error = None;
    for c in consumers {
        match c.await? {
            Ok(last) => last_consumed = last_consumed.max(last),
            Err(e) => consumer_error = Some(e),
        }
    }
    let consume_seconds = started.elapsed().as_secs_f64();
    let _ = stop_monitor.send(true);
    let (depth_timeline, rss_timeline) = monitor.await?;
    let after = args.common.broker_pid.and_then(proc_stats::sample);
    let published = published?;
    if let Some(e) = consumer_error {
        return Err(e);
    }

    let consumed = count.load(Ordering::Relaxed);
    let drained = consumed >= published.acked;
    let drain_seconds = drained.then(|| {
        last_consumed.map_or(0.0, |at| {
            at.saturating_duration_since(burst_end).as_secs_f64()
        })
    });
    let peak = PeakResult {
        max_length: args.max_length,
        consume_rate: args.consume_rate,
        burst_rate,
        burst_seconds: args.burst_seconds,
        published: published.sent,
        confirmed: published.acked,
        nacked: published.nacked,
        unconfirmed: published.failed,
        max_queue_depth: depth_timeline.iter().map(|p| p.value).max().unwrap_or(0),
        drain_seconds,
        broker_rss_peak_kib: rss_timeline.iter().map(|p| p.value).max(),
        rss_timeline,
        depth_timeline,
    };
    let scenario = format!(
        "amqp-peak {}/s x{BURST_FACTOR} into max-length {}",
        args.consume_rate, args.max_length
    );
    let totals = Totals {
        produced: published.acked,
        consumed,
        // Nacks are the point of the scenario; losing an accepted message is not.
        errors: progress.errors() + published.acked.saturating_sub(consumed),
        produce_seconds: burst_end.duration_since(started).as_secs_f64(),
        consume_seconds,
    };
    let cost = proc_stats::cost(before, after, consumed as f64);
    let mut r = result(args, scenario, totals, &histogram, cost);
    r.peak = Some(peak);
    Ok(r)
}

/// Polls the queue depth and samples the broker's RSS until told to stop; returns both
/// timelines (ms from `started`). A failed poll ends the depth timeline, not the run.
async fn monitor(
    url: String,
    queue: String,
    broker_pid: Option<u32>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> (Vec<TimePoint>, Vec<TimePoint>) {
    let (mut depths, mut rss) = (Vec::new(), Vec::new());
    let connection = connect(&url).await.ok();
    let mut channel = match &connection {
        Some(c) => c.create_channel().await.ok(),
        None => None,
    };
    let mut depth_tick = tokio::time::interval(DEPTH_POLL);
    let mut rss_tick = tokio::time::interval(RSS_SAMPLE);
    let at = || started.elapsed().as_millis() as u64;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = depth_tick.tick(), if channel.is_some() => {
                let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
                let declared = channel
                    .as_ref()
                    .expect("checked by the branch guard")
                    .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                    .await;
                match declared {
                    Ok(q) => {
                        let depth = u64::from(q.message_count());
                        progress.set_depth(depth);
                        depths.push(TimePoint { t_ms: at(), value: depth });
                    }
                    Err(e) => {
                        eprintln!("peak: polling the queue depth failed, stopped polling: {e}");
                        channel = None;
                    }
                }
            }
            _ = rss_tick.tick(), if broker_pid.is_some() => {
                if let Some(kib) = broker_pid.and_then(proc_stats::rss_kib) {
                    rss.push(TimePoint { t_ms: at(), value: kib });
                }
            }
        }
    }
    if let Some(c) = connection {
        let _ = c.close(200, "done".into()).await;
    }
    (depths, rss)
}
