//! porter-bench: one client code path per protocol, pointed at any broker by address, so Porter
//! and its peers are measured the same way. Every run is bounded in records and time.
//!
//! - [`stats`]: latency histograms and throughput.
//! - [`pacing`]: open-loop schedules and rate caps, shared by the drivers.
//! - [`progress`]: the once-per-second progress line on stderr.
//! - [`proc_stats`]: the broker's CPU seconds and RSS, read from /proc for a pid.
//! - [`kafka`]: the Kafka-protocol driver (rdkafka).
//! - [`amqp`]: the AMQP 0-9-1 driver (lapin): work queue, fan-out, peak shaving.
//! - [`mqtt`]: the MQTT 3.1.1 driver (rumqttc): fan-out and chat.
//! - [`rocketmq`]: the RocketMQ 5 driver (the official Rust client, gRPC): send, receive, ack.
//! - [`idle`]: many idle connections (AMQP, Kafka or MQTT) and the broker's RSS per connection.
//! - [`report`]: the human table and the JSON result.
//! - [`chart`]: SVG charts from result JSON.

mod amqp;
mod chart;
mod idle;
mod kafka;
mod kafka_raw;
mod kafka_slow;
mod kafka_wire;
mod mqtt;
mod pacing;
mod proc_stats;
mod progress;
mod report;
mod rocketmq;
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
    /// Many idle connections (AMQP, Kafka or MQTT, each through its handshake): the broker's RSS per
    /// idle connection.
    Idle(idle::IdleArgs),
    /// MQTT 3.1.1 (rumqttc): fan-out to N subscribers, or thousands of chat clients in rooms.
    Mqtt(mqtt::MqttArgs),
    /// RocketMQ 5 (the official Rust client, gRPC): concurrent sends, SimpleConsumer receives
    /// and acks.
    Rocketmq(rocketmq::RocketmqArgs),
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
    /// Open loop: send for this many seconds at the rate (records = rate x duration) instead of
    /// --records, so every point of a sweep lasts as long.
    #[arg(long)]
    pub duration: Option<u64>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// After the run, wait this many seconds and sample the broker's RSS again (with
    /// --broker-pid): does the broker give memory back after a burst?
    #[arg(long, default_value_t = 0)]
    pub settle_seconds: u64,
}

/// One point of a sweep: a driver's `args` at `rate` (else its own `--rate`), sized by
/// `--duration`, writing its own JSON. A macro rather than a trait: the drivers' argument structs
/// share these field names, nothing else.
macro_rules! point {
    ($args:expr, $rate:expr) => {{
        let mut point = $args.clone();
        point.rate = $rate.or(point.rate);
        point.records = records(&$args.common, point.rate, point.records);
        point.common.json = json_path(&$args.common, $rate);
        point
    }};
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Kafka(args) => sweep(&args.common, |rate, progress| {
            runtime.block_on(kafka::run(point!(args, rate), progress))
        }),
        Command::Amqp(args) => sweep(&args.common, |rate, progress| {
            runtime.block_on(amqp::run(point!(args, rate), progress))
        }),
        Command::Rocketmq(args) => sweep(&args.common, |rate, progress| {
            runtime.block_on(rocketmq::run(point!(args, rate), progress))
        }),
        Command::Mqtt(args) => sweep(&args.common, |rate, progress| {
            let mut point = point!(args, rate);
            point.progress = Some(progress);
            runtime.block_on(mqtt::run(point))
        }),
        Command::Idle(args) => runtime.block_on(idle::run(args)).map(drop),
        Command::Chart(args) => {
            for path in chart::run(&args)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

/// Records of one run: `--records`, or with `--duration` in open loop, rate x duration.
fn records(common: &CommonArgs, rate: Option<u64>, records: u64) -> u64 {
    match (common.duration, rate) {
        (Some(seconds), Some(rate)) => rate.saturating_mul(seconds).max(1),
        _ => records,
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
        let rss_before = common.broker_pid.and_then(proc_stats::rss_kib);
        let result = point(rate, progress);
        drop(reporter);
        let mut result = result?;
        result.broker_rss_before_kib = rss_before;
        result.broker_rss_end_kib = common.broker_pid.and_then(proc_stats::rss_kib);
        if let (Some(pid), 1..) = (common.broker_pid, common.settle_seconds) {
            std::thread::sleep(std::time::Duration::from_secs(common.settle_seconds));
            result.settle_seconds = Some(common.settle_seconds);
            result.broker_rss_after_settle_kib = proc_stats::rss_kib(pid);
        }
        report::print(&result);
        if let Some(path) = &result.json_path {
            std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(duration: Option<u64>, rates: Vec<u64>) -> CommonArgs {
        CommonArgs {
            broker_pid: None,
            json: Some(PathBuf::from("out/r.json")),
            label: "run".into(),
            max_seconds: 60,
            rates,
            duration,
            quiet: true,
            settle_seconds: 0,
        }
    }

    #[test]
    fn duration_sizes_open_loop_runs_only() {
        assert_eq!(records(&common(Some(10), vec![]), Some(2000), 5), 20_000);
        assert_eq!(
            records(&common(Some(10), vec![]), None, 5),
            5,
            "closed loop keeps --records"
        );
        assert_eq!(records(&common(None, vec![]), Some(2000), 5), 5);
    }

    #[test]
    fn a_sweep_writes_a_file_per_rate() {
        let sweep = common(None, vec![100, 200]);
        assert_eq!(
            json_path(&sweep, Some(200)),
            Some(PathBuf::from("out/r-rate200.json"))
        );
        let single = common(None, vec![]);
        assert_eq!(
            json_path(&single, Some(200)),
            Some(PathBuf::from("out/r.json"))
        );
    }

    #[test]
    fn cli_parses_a_sweep() {
        let cli = Cli::try_parse_from([
            "porter-bench",
            "amqp",
            "--rates",
            "2000,4000,8000",
            "--duration",
            "5",
            "--quiet",
        ])
        .unwrap();
        let Command::Amqp(args) = cli.command else {
            panic!("amqp expected")
        };
        assert_eq!(args.common.rates, [2000, 4000, 8000]);
        assert_eq!(args.common.duration, Some(5));
        assert!(
            Cli::try_parse_from(["porter-bench", "amqp", "--rate", "1", "--rates", "2"]).is_err(),
            "--rate and --rates exclude each other"
        );
    }
}
