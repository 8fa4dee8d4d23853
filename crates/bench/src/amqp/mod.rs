//! The AMQP 0-9-1 driver (lapin), usable against any broker that speaks it: Porter and RabbitMQ
//! are measured by the same code with the same durability — durable queues, persistent
//! messages, publisher confirms, manual acks. Scenarios (`--scenario`):
//!
//! - [`workqueue`] (default): producers and consumers on one durable queue.
//! - [`fanout`]: one publisher to a fanout exchange, `--subscribers` durable queues each with its
//!   own consumer; deliveries/s and latency.
//! - [`chat`]: thousands of clients in rooms, each with an inbox; transient, no-ack, paced.
//! - [`peak`]: peak shaving — a burst at 10× what rate-capped consumers take, into a bounded
//!   queue that refuses publishes when full; what was accepted, refused, and how the broker
//!   coped (queue depth, RSS, drain time).
//!
//! Closed loop (no `--rate`): each producer keeps up to `--inflight` publishes unconfirmed.
//! Open loop (`--rate R`, or a sweep with `--rates`): producers send R messages/s in total on a
//! fixed schedule and latency counts from the *intended* send time, so a stall shows in the
//! percentiles instead of silently slowing the sender. [`client`] has the publisher and consumer
//! all scenarios share.

mod chat;
mod client;
mod fanout;
mod peak;
mod workqueue;

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::proc_stats::ProcSample;
use crate::progress::Progress;
use crate::report::{rate_suffix, RunResult};
use crate::stats::Latency;
use crate::CommonArgs;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Producers and consumers on one durable queue.
    WorkQueue,
    /// One publisher, a fanout exchange, `--subscribers` queues each with a consumer.
    Fanout,
    /// A burst into a bounded queue drained by rate-capped consumers.
    Peak,
    /// `--connections` clients in `--rooms` rooms, each with its own inbox; paced load.
    Chat,
}

/// How a publisher hands its messages to lapin (see `--publisher`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublisherPattern {
    Pipelined,
    Awaited,
}

#[derive(clap::Args, Debug, Clone)]
pub struct AmqpArgs {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    pub url: String,
    #[arg(long, value_enum, default_value_t = Scenario::WorkQueue)]
    pub scenario: Scenario,
    /// Queue (and exchange) name prefix; each run declares fresh ones and deletes them after.
    #[arg(long, default_value = "bench")]
    pub queue: String,
    #[arg(long, default_value_t = 100)]
    pub record_bytes: usize,
    /// Messages to publish (work queue, fan-out; the peak scenario's burst sets its own).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Producer connections (work queue; fan-out and peak use one publisher).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer connections (work queue, peak; fan-out has one per subscriber queue).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// basic.qos prefetch count of each consumer.
    #[arg(long, default_value_t = 100)]
    pub prefetch: u16,
    /// Unconfirmed publishes each producer keeps in flight.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// How a producer publishes: `pipelined` queues many publishes for lapin to coalesce into one
    /// write; `awaited` awaits each `basic_publish` (lapin's hand-off to its I/O thread) before the
    /// next, keeping only the confirms outstanding (up to `--inflight`), as most applications do.
    #[arg(long, value_enum, default_value_t = PublisherPattern::Pipelined)]
    pub publisher: PublisherPattern,
    /// Ack every delivery (1), or one `multiple` ack per this many deliveries (at most
    /// `--prefetch`; a partial batch is acked within 50 ms).
    #[arg(long, default_value_t = 1)]
    pub ack_every: usize,
    /// Open loop: messages per second, all producers together.
    #[arg(long, conflicts_with = "rates")]
    pub rate: Option<u64>,
    /// Fan-out: queues bound to the exchange, each with its own consumer connection.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Peak: x-max-length of the bounded queue (x-overflow = reject-publish).
    #[arg(long, default_value_t = 10_000)]
    pub max_length: u64,
    /// Peak: messages per second all consumers together process (the producer bursts at
    /// 10 times this).
    #[arg(long, default_value_t = 1_000)]
    pub consume_rate: u64,
    /// Peak: how long the burst lasts.
    #[arg(long, default_value_t = 5.0)]
    pub burst_seconds: f64,
    #[command(flatten)]
    pub chat: crate::mqtt::plan::ChatArgs,
    /// Chat: clients connecting, declaring and binding at once during the set-up (a window:
    /// each that finishes lets the next start).
    #[arg(long, default_value_t = 32)]
    pub joining_at_once: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: AmqpArgs, progress: Arc<Progress>) -> Result<RunResult> {
    anyhow::ensure!(
        args.ack_every >= 1 && args.ack_every <= usize::from(args.prefetch.max(1)),
        "--ack-every must be between 1 and --prefetch"
    );
    match args.scenario {
        Scenario::WorkQueue => workqueue::run(&args, progress).await,
        Scenario::Fanout => fanout::run(&args, progress).await,
        Scenario::Peak => peak::run(&args, progress).await,
        Scenario::Chat => chat::run(&args, progress).await,
    }
}

async fn connect(url: &str) -> Result<Connection> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Connects proposing `frame_max` (a server offering less still wins). lapin sizes each
/// connection's send and receive buffers at 32 frames and fills them with zeros when the
/// frame size is settled, so at RabbitMQ's and Porter's 128 KiB a connection writes 8 MiB of
/// buffers before its first method; for thousands of connections carrying small messages that
/// page faulting, not the broker, is what a set-up measures.
async fn connect_with_frame_max(url: &str, frame_max: u32) -> Result<Connection> {
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|e: String| anyhow::anyhow!("parsing {url}: {e}"))?;
    uri.query.frame_max = Some(frame_max);
    Connection::connect_uri(uri, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Declares a fresh durable queue with `arguments`.
async fn declare_queue(channel: &Channel, queue: &str, arguments: FieldTable) -> Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .with_context(|| format!("declaring queue {queue}"))?;
    Ok(())
}

/// " @RATE/s" for an open-loop run, "" for a closed-loop one.
fn load_suffix(rate: Option<u64>) -> String {
    rate.map(rate_suffix).unwrap_or_default()
}

/// Counts every scenario reports the same way.
struct Totals {
    produced: u64,
    consumed: u64,
    errors: u64,
    produce_seconds: f64,
    consume_seconds: f64,
}

/// The common part of a scenario's result; the scenario adds its own fields.
fn result(
    args: &AmqpArgs,
    scenario: String,
    totals: Totals,
    histogram: &Mutex<hdrhistogram::Histogram<u64>>,
    broker: (Option<ProcSample>, Option<f64>),
) -> RunResult {
    let Totals {
        produced,
        consumed,
        errors,
        produce_seconds,
        consume_seconds,
    } = totals;
    RunResult {
        label: args.common.label.clone(),
        scenario,
        record_bytes: args.record_bytes,
        produced,
        consumed,
        errors,
        produce_seconds,
        consume_seconds,
        produce_records_per_sec: produced as f64 / produce_seconds.max(f64::EPSILON),
        produce_mb_per_sec: (produced as f64 * args.record_bytes as f64)
            / produce_seconds.max(f64::EPSILON)
            / 1e6,
        consume_records_per_sec: consumed as f64 / consume_seconds.max(f64::EPSILON),
        end_to_end: Latency::of(&histogram.lock().expect("histogram lock")),
        broker: broker.0,
        broker_cpu_seconds_per_million: broker.1,
        rate: args.rate,
        json_path: args.common.json.clone(),
        ..RunResult::default()
    }
}
