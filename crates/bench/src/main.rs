//! porter-bench: one client code path per protocol, pointed at any broker by address, so Porter
//! and its peers are measured the same way. Every run is bounded in records and time.
//!
//! - [`stats`]: latency histograms and throughput.
//! - [`pacing`]: open-loop schedules and rate caps, shared by the drivers.
//! - [`progress`]: the once-per-second progress line on stderr.
//! - [`proc_stats`]: the broker's CPU seconds and RSS, read from /proc for a pid.
//! - [`kafka`]: the Kafka-protocol driver (rdkafka).
//! - [`amqp`]: the AMQP 0-9-1 driver (lapin): work queue, fan-out, peak shaving.
//! - [`report`]: the human table and the JSON result.
//! - [`chart`]: SVG charts from result JSON.

mod amqp;
mod chart;
mod kafka;
mod pacing;
mod proc_stats;
mod progress;
mod report;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::progress::{Progress, Reporter};
use crate::report::RunResult;

#[derive(Parser, Debug)]
#[command(name = "porter-bench", about = "Broker benchmarks with real clients")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce and consume over the Kafka protocol (librdkafka).
    Kafka(kafka::KafkaArgs),
    /// AMQP 0-9-1 (lapin): durable work queue, fan-out or peak shaving; persistent messages,
    /// confirms, manual acks.
    Amqp(amqp::AmqpArgs),
    /// SVG charts from result JSON files (or directories of them).
    Chart(chart::ChartArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Pid of the broker process, to report its CPU seconds and peak RSS.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Write the result as JSON to this file (with --rates, one file per rate: x-rateR.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A label for this run in the report (e.g. "porter" or "kafka").
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Stop after this many seconds even if records remain.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
    /// Open-loop sweep: run once at each of these rates (msgs/s, comma-separated), in turn.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub rates: Vec<u64>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Kafka(args) => sweep(&args.common, |rate, progress| {
            let mut point = args.clone();
            point.rate = rate.or(point.rate);
            point.common.json = json_path(&args.common, rate);
            runtime.block_on(kafka::run(point, progress))
        }),
        Command::Amqp(args) => sweep(&args.common, |rate, progress| {
            let mut point = args.clone();
            point.rate = rate.or(point.rate);
            point.common.json = json_path(&args.common, rate);
            runtime.block_on(amqp::run(point, progress))
        }),
        Command::Chart(args) => {
            for path in chart::run(&args)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

/// Where a run writes its JSON: `--json` itself, or with a sweep a file per rate next to it.
fn json_path(common: &CommonArgs, rate: Option<u64>) -> Option<PathBuf> {
    let path = common.json.as_ref()?;
    Some(match rate {
        Some(rate) if !common.rates.is_empty() => report::sweep_path(path, rate),
        _ => path.clone(),
    })
}

/// Runs one point (no `--rates`) or one per rate, each with its own progress line, report and
/// JSON. A failed point stops the sweep: later rates would only fail harder.
fn sweep(
    common: &CommonArgs,
    mut point: impl FnMut(Option<u64>, Arc<Progress>) -> anyhow::Result<RunResult>,
) -> anyhow::Result<()> {
    let rates: Vec<Option<u64>> = match common.rates.as_slice() {
        [] => vec![None],
        rates => rates.iter().copied().map(Some).collect(),
    };
    for rate in rates {
        let progress = Arc::new(Progress::default());
        let reporter = Reporter::start(progress.clone(), common.quiet);
        let result = point(rate, progress);
        drop(reporter);
        let result = result?;
        report::print(&result);
        if let Some(path) = &result.json_path {
            std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
        }
    }
    Ok(())
}
