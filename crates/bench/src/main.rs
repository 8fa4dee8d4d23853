//! porter-bench: one client code path per protocol, pointed at any broker by address, so Porter
//! and its peers are measured the same way. Every run is bounded in records and time.
//!
//! - [`stats`]: latency histograms and throughput.
//! - [`proc_stats`]: the broker's CPU seconds and peak RSS, read from /proc for a pid.
//! - [`kafka`]: the Kafka-protocol driver (rdkafka).
//! - [`amqp`]: the AMQP 0-9-1 driver (lapin): the durable work queue.
//! - [`mqtt`]: the MQTT 3.1.1 driver (rumqttc): fan-out and chat.
//! - [`report`]: the human table and the JSON result.

mod amqp;
mod kafka;
mod mqtt;
mod proc_stats;
mod report;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Durable work queue over AMQP 0-9-1 (lapin): persistent messages, confirms, manual acks.
    Amqp(amqp::AmqpArgs),
    /// MQTT 3.1.1 (rumqttc): fan-out to N subscribers, or thousands of chat clients in rooms.
    Mqtt(mqtt::MqttArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Pid of the broker process, to report its CPU seconds and peak RSS.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A label for this run in the report (e.g. "porter" or "kafka").
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Stop after this many seconds even if records remain.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = match cli.command {
        Command::Kafka(args) => runtime.block_on(kafka::run(args))?,
        Command::Amqp(args) => runtime.block_on(amqp::run(args))?,
        Command::Mqtt(args) => runtime.block_on(mqtt::run(args))?,
    };
    report::print(&result);
    if let Some(path) = &result.json_path {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(())
}
