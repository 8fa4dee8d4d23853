//! The RocketMQ 5 driver: the official Rust client (crate `rocketmq` 5.0.0, apache/rocketmq-clients)
//! over gRPC, usable against Porter's gateway or a RocketMQ proxy.
//!
//! Closed loop (no `--rate`): `--in-flight` tasks share `--producers` producers (each its own
//! gRPC connection) and send `--records` messages as fast as their answers come back; then
//! `--receivers` SimpleConsumer loops receive batches of `--receive-batch` and ack every message
//! (the client acks one message per AckMessage call; the acks of a batch go out concurrently).
//! Send and receive throughput, and the broker's CPU per million messages, are measured per
//! phase, so a slow receive never hides in the send number.
//! Open loop (`--rate R`): the receivers run while the senders send R messages/s in total on a
//! fixed schedule; latency counts from each message's *intended* send time (stamped into its body).
//!
//! The driver's own CPU (`driver_cpu_seconds`) and the whole machine's are reported next to the
//! broker's: on a small machine client and broker share the cores, and the client's gRPC stack
//! costs about as much per message as the broker's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::rocketmq::conf::{ClientOption, LoggingFormat, ProducerOption, SimpleConsumerOption};
use ::rocketmq::model::common::{FilterExpression, FilterType};
use ::rocketmq::model::message::MessageBuilder;
use ::rocketmq::{Producer, SimpleConsumer};
use anyhow::{anyhow, Context as _, Result};
use futures::future::join_all;

use crate::pacing::due;
use crate::proc_stats::{self, ProcSample};
use crate::progress::Progress;
use crate::report::{rate_suffix, RunResult};
use crate::stats::{latency_histogram, now_us, sent_at, stamped_payload, Latency};
use crate::CommonArgs;

/// How long an empty receive waits for messages (the client's long-polling timeout, which it
/// also uses as that call's deadline).
const LONG_POLL: Duration = Duration::from_secs(2);
/// Invisible duration of received messages: far longer than a batch takes to ack.
const INVISIBLE: Duration = Duration::from_secs(60);
/// Open loop: senders sleep only when a message is due this far ahead (a sleep overshoots).
const PACING_TICK: Duration = Duration::from_micros(500);

#[derive(clap::Args, Debug, Clone)]
pub struct RocketmqArgs {
    /// The gRPC endpoint (Porter's --rocketmq-listen, or a RocketMQ proxy).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub endpoint: String,
    /// Topic name prefix; each run uses a fresh (auto-created) topic.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    #[arg(long, default_value_t = 100)]
    pub record_bytes: usize,
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Sends in flight at once: tasks that each send, await the answer, and send again.
    #[arg(long, default_value_t = 128)]
    pub in_flight: usize,
    /// Producer clients, each with its own gRPC connection; the tasks are dealt out among them.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Messages per SendMessage call: 1 is `Producer::send`, more is `Producer::batch_send`.
    #[arg(long, default_value_t = 1)]
    pub send_batch: usize,
    /// Concurrent SimpleConsumer receive loops (one client each).
    #[arg(long, default_value_t = 4)]
    pub receivers: usize,
    /// Messages one ReceiveMessage asks for (RocketMQ's clients: at most 32).
    #[arg(long, default_value_t = 32)]
    pub receive_batch: i32,
    /// Send only: no receive phase.
    #[arg(long)]
    pub no_receive: bool,
    /// Open loop: messages per second, all senders together, received concurrently.
    #[arg(long, conflicts_with = "rates")]
    pub rate: Option<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: RocketmqArgs, progress: Arc<Progress>) -> Result<RunResult> {
    let topic = format!("{}-{}", args.topic, now_us());
    let producers = start_producers(&args, &topic).await?;
    let receivers = if args.no_receive {
        Vec::new()
    } else {
        start_receivers(&args, &topic).await?
    };
    let mut result = match args.rate {
        None => closed_loop(&args, &topic, &producers, &receivers, &progress).await?,
        Some(rate) => open_loop(&args, &topic, rate, &producers, &receivers, &progress).await?,
    };
    for p in unwrap_all(producers)? {
        p.shutdown().await.map_err(|e| anyhow!("{e:?}"))?;
    }
    for c in unwrap_all(receivers)? {
        c.shutdown().await.map_err(|e| anyhow!("{e:?}"))?;
    }
    result.rate = args.rate;
    result.label = args.common.label.clone();
    result.record_bytes = args.record_bytes;
    result.json_path = args.common.json.clone();
    Ok(result)
}

fn unwrap_all<T>(clients: Vec<Arc<T>>) -> Result<Vec<T>> {
    clients
        .into_iter()
        .map(|c| Arc::into_inner(c).ok_or_else(|| anyhow!("a client is still in use")))
        .collect()
}

fn client_option(args: &RocketmqArgs) -> ClientOption {
    let mut option = ClientOption::default();
    option.set_access_url(args.endpoint.clone());
    option.set_enable_tls(false);
    option.set_timeout(Duration::from_secs(10));
    option.set_long_polling_timeout(LONG_POLL);
    option
}

async fn start_producers(args: &RocketmqArgs, topic: &str) -> Result<Vec<Arc<Producer>>> {
    let mut producers = Vec::new();
    for _ in 0..args.producers.max(1) {
        let mut option = ProducerOption::default();
        option.set_topics(vec![topic]);
        option.set_logging_format(LoggingFormat::Terminal);
        let mut producer =
            Producer::new(option, client_option(args)).map_err(|e| anyhow!("{e:?}"))?;
        producer
            .start()
            .await
            .map_err(|e| anyhow!("starting a producer: {e:?}"))?;
        producers.push(Arc::new(producer));
    }
    Ok(producers)
}

async fn start_receivers(args: &RocketmqArgs, topic: &str) -> Result<Vec<Arc<SimpleConsumer>>> {
    let mut receivers = Vec::new();
    for _ in 0..args.receivers.max(1) {
        let mut option = SimpleConsumerOption::default();
        option.set_consumer_group(format!("{topic}-readers"));
        option.set_topics(vec![topic]);
        let mut consumer =
            SimpleConsumer::new(option, client_option(args)).map_err(|e| anyhow!("{e:?}"))?;
        consumer
            .start()
            .await
            .map_err(|e| anyhow!("starting a consumer: {e:?}"))?;
        receivers.push(Arc::new(consumer));
    }
    Ok(receivers)
}

/// The broker's and this process's CPU, and the machine's busy CPU, at one moment.
#[derive(Clone, Copy)]
struct Clock {
    at: Instant,
    broker: Option<ProcSample>,
    driver: Option<ProcSample>,
    machine: Option<f64>,
}

impl Clock {
    fn now(args: &RocketmqArgs) -> Clock {
        Clock {
            at: Instant::now(),
            broker: args.common.broker_pid.and_then(proc_stats::sample),
            driver: proc_stats::sample(std::process::id()),
            machine: proc_stats::machine_busy_seconds(),
        }
    }

    fn seconds_since(&self, before: &Clock) -> f64 {
        self.at.duration_since(before.at).as_secs_f64()
    }
}

/// Sends `total` messages from `in_flight` tasks; with `rate`, message n waits until it is due
/// (from `started`) and carries that intended time in its body, else the time it is sent.
async fn send_all(
    args: &RocketmqArgs,
    topic: &str,
    producers: &[Arc<Producer>],
    total: u64,
    rate: Option<u64>,
    progress: &Arc<Progress>,
) -> Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let started_us = now_us();
    let deadline = started + Duration::from_secs(args.common.max_seconds);
    let batch = args.send_batch.max(1) as u64;
    let tasks: Vec<_> = (0..args.in_flight.max(1))
        .map(|index| {
            let producer = producers[index % producers.len()].clone();
            let (next, progress, topic) = (next.clone(), progress.clone(), topic.to_string());
            let record_bytes = args.record_bytes;
            tokio::spawn(async move {
                let mut sent = 0u64;
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first >= total || Instant::now() > deadline {
                        return sent;
                    }
                    let n = batch.min(total - first);
                    let stamp_us = match rate {
                        Some(rate) => {
                            let intended = due(first, rate);
                            if let Some(wait) = intended.checked_sub(started.elapsed()) {
                                if wait >= PACING_TICK {
                                    tokio::time::sleep(wait).await;
                                }
                            }
                            started_us + intended.as_micros() as u64
                        }
                        None => now_us(),
                    };
                    let messages: Vec<_> = (0..n)
                        .map(|_| {
                            MessageBuilder::builder()
                                .set_topic(topic.clone())
                                .set_body(stamped_payload(record_bytes, stamp_us))
                                .build()
                                .expect("a message with a topic and a body")
                        })
                        .collect();
                    let outcome = if n == 1 {
                        let m = messages.into_iter().next().expect("one message");
                        producer.send(m).await.map(drop)
                    } else {
                        producer.batch_send(messages).await.map(drop)
                    };
                    match outcome {
                        Ok(()) => {
                            sent += n;
                            progress.produced(n);
                        }
                        Err(_) => progress.error(n),
                    }
                }
            })
        })
        .collect();
    let mut sent = 0;
    for t in join_all(tasks).await {
        sent += t.context("a send task panicked")?;
    }
    Ok(sent)
}

/// Receives (and acks) until `want` messages came in total, `until` passes, or `stop` is set
/// by the senders failing; returns the merged latency histogram of the receivers.
async fn receive_all(
    args: &RocketmqArgs,
    topic: &str,
    receivers: &[Arc<SimpleConsumer>],
    want: Arc<AtomicU64>,
    until: Instant,
    progress: &Arc<Progress>,
) -> Result<(u64, hdrhistogram::Histogram<u64>)> {
    let received = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = receivers
        .iter()
        .map(|consumer| {
            let (consumer, received, want) = (consumer.clone(), received.clone(), want.clone());
            let (progress, topic, batch) =
                (progress.clone(), topic.to_string(), args.receive_batch);
            tokio::spawn(async move {
                let all = FilterExpression::new(FilterType::Tag, "*");
                let mut histogram = latency_histogram();
                while received.load(Ordering::Relaxed) < want.load(Ordering::Relaxed)
                    && Instant::now() < until
                {
                    let messages = match consumer.receive_with(&topic, &all, batch, INVISIBLE).await
                    {
                        Ok(messages) => messages,
                        // An empty long poll ends as the client's own deadline (it equals the
                        // long poll, and Porter waits the whole long poll): nothing came.
                        Err(e) if format!("{e:?}").contains("Timeout expired") => continue,
                        Err(_) => {
                            progress.error(1);
                            continue;
                        }
                    };
                    let now = now_us();
                    for m in &messages {
                        if let Some(sent) = sent_at(m.body()) {
                            let _ = histogram.record(now.saturating_sub(sent).max(1));
                        }
                    }
                    let acks = join_all(messages.iter().map(|m| consumer.ack(m))).await;
                    let failed = acks.iter().filter(|a| a.is_err()).count() as u64;
                    progress.error(failed);
                    received.fetch_add(messages.len() as u64, Ordering::Relaxed);
                    progress.consumed(messages.len() as u64);
                }
                histogram
            })
        })
        .collect();
    let mut histogram = latency_histogram();
    for t in join_all(tasks).await {
        histogram.add(t.context("a receive task panicked")?)?;
    }
    Ok((received.load(Ordering::Relaxed), histogram))
}

async fn closed_loop(
    args: &RocketmqArgs,
    topic: &str,
    producers: &[Arc<Producer>],
    receivers: &[Arc<SimpleConsumer>],
    progress: &Arc<Progress>,
) -> Result<RunResult> {
    let start = Clock::now(args);
    let produced = send_all(args, topic, producers, args.records, None, progress).await?;
    let sent = Clock::now(args);
    let (consumed, _) = if receivers.is_empty() {
        (0, latency_histogram())
    } else {
        let until = Instant::now() + Duration::from_secs(args.common.max_seconds);
        let want = Arc::new(AtomicU64::new(produced));
        receive_all(args, topic, receivers, want, until, progress).await?
    };
    let end = Clock::now(args);
    let produce_seconds = sent.seconds_since(&start);
    let consume_seconds = end.seconds_since(&sent);
    let (broker, per_million) =
        proc_stats::cost(start.broker, end.broker, (produced + consumed) as f64 / 2.0);
    Ok(RunResult {
        scenario: format!(
            "rocketmq closed loop, {} in flight over {} producer(s), send batch {}, {} receiver(s) x {}",
            args.in_flight, args.producers, args.send_batch, args.receivers, args.receive_batch
        ),
        produced,
        consumed,
        errors: progress.errors(),
        produce_seconds,
        consume_seconds,
        produce_records_per_sec: produced as f64 / produce_seconds,
        produce_mb_per_sec: produced as f64 * args.record_bytes as f64 / produce_seconds / 1e6,
        consume_records_per_sec: consumed as f64 / consume_seconds.max(f64::EPSILON),
        broker,
        broker_cpu_seconds_per_million: per_million,
        produce_broker_cpu_seconds_per_million: proc_stats::cost(
            start.broker,
            sent.broker,
            produced as f64,
        )
        .1,
        consume_broker_cpu_seconds_per_million: (consumed > 0)
            .then(|| proc_stats::cost(sent.broker, end.broker, consumed as f64).1)
            .flatten(),
        driver_cpu_seconds: cpu_between(start.driver, end.driver),
        machine_busy_cpu_seconds: end.machine.zip(start.machine).map(|(a, b)| a - b),
        ..RunResult::default()
    })
}

async fn open_loop(
    args: &RocketmqArgs,
    topic: &str,
    rate: u64,
    producers: &[Arc<Producer>],
    receivers: &[Arc<SimpleConsumer>],
    progress: &Arc<Progress>,
) -> Result<RunResult> {
    let total = args
        .records
        .min(rate.saturating_mul(args.common.max_seconds).max(1));
    let start = Clock::now(args);
    // The receivers wait for `total` until the senders say how many they really sent.
    let want = Arc::new(AtomicU64::new(total));
    let until = Instant::now() + Duration::from_secs(args.common.max_seconds + 30);
    let receiving = (!receivers.is_empty()).then(|| {
        let (args, topic, receivers) = (args.clone(), topic.to_string(), receivers.to_vec());
        let (want, progress) = (want.clone(), progress.clone());
        tokio::spawn(
            async move { receive_all(&args, &topic, &receivers, want, until, &progress).await },
        )
    });
    let produced = send_all(args, topic, producers, total, Some(rate), progress).await?;
    want.store(produced, Ordering::Relaxed);
    let sent = Clock::now(args);
    let (consumed, histogram) = match receiving {
        Some(task) => task.await.context("the receivers panicked")??,
        None => (0, latency_histogram()),
    };
    let end = Clock::now(args);
    let (broker, per_million) =
        proc_stats::cost(start.broker, end.broker, (produced + consumed) as f64 / 2.0);
    let produce_seconds = sent.seconds_since(&start);
    let consume_seconds = end.seconds_since(&start);
    Ok(RunResult {
        scenario: format!(
            "rocketmq open loop, {} in flight over {} producer(s), {} receiver(s) x {}{}",
            args.in_flight,
            args.producers,
            args.receivers,
            args.receive_batch,
            rate_suffix(rate)
        ),
        produced,
        consumed,
        errors: progress.errors(),
        produce_seconds,
        consume_seconds,
        produce_records_per_sec: produced as f64 / produce_seconds,
        produce_mb_per_sec: produced as f64 * args.record_bytes as f64 / produce_seconds / 1e6,
        consume_records_per_sec: consumed as f64 / consume_seconds,
        end_to_end: Latency::of(&histogram),
        broker,
        broker_cpu_seconds_per_million: per_million,
        driver_cpu_seconds: cpu_between(start.driver, end.driver),
        machine_busy_cpu_seconds: end.machine.zip(start.machine).map(|(a, b)| a - b),
        ..RunResult::default()
    })
}

fn cpu_between(before: Option<ProcSample>, after: Option<ProcSample>) -> Option<f64> {
    Some(after?.cpu_seconds - before?.cpu_seconds)
}
