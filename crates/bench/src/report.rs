//! The result of a run: a human table on stdout and JSON for scripts.

use std::path::PathBuf;

use serde::Serialize;

use crate::proc_stats::ProcSample;
use crate::stats::Latency;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunResult {
    pub label: String,
    pub scenario: String,
    pub record_bytes: usize,
    pub produced: u64,
    pub consumed: u64,
    pub errors: u64,
    pub produce_seconds: f64,
    pub consume_seconds: f64,
    pub produce_records_per_sec: f64,
    pub produce_mb_per_sec: f64,
    pub consume_records_per_sec: f64,
    pub end_to_end: Latency,
    pub broker: Option<ProcSample>,
    /// Broker CPU seconds per million records produced and consumed.
    pub broker_cpu_seconds_per_million: Option<f64>,
    // Added for MQTT; absent from the JSON of the other drivers, so their results are unchanged.
    /// MQTT QoS of publishes and subscriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    /// Fan-out: subscribers of the one topic (`consumed` counts deliveries to all of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribers: Option<u64>,
    /// Client connections the run held open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Deliveries the broker owed for the publishes it accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_deliveries: Option<u64>,
    /// Owed deliveries that never arrived (also counted in `errors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Open loop: the offered rate, messages published per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// CPU seconds of the benchmark driver itself, to show it was not the bottleneck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_cpu_seconds: Option<f64>,
    /// CPU seconds the whole machine was busy during the load (all processes and the kernel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_busy_cpu_seconds: Option<f64>,
    #[serde(skip)]
    pub json_path: Option<PathBuf>,
}

pub fn print(r: &RunResult) {
    println!(
        "== {} / {} ({} B records)",
        r.label, r.scenario, r.record_bytes
    );
    println!(
        "produced {:>10} in {:>7.2}s  {:>12.0} rec/s  {:>8.1} MB/s",
        r.produced, r.produce_seconds, r.produce_records_per_sec, r.produce_mb_per_sec
    );
    println!(
        "consumed {:>10} in {:>7.2}s  {:>12.0} rec/s",
        r.consumed, r.consume_seconds, r.consume_records_per_sec
    );
    let l = &r.end_to_end;
    println!(
        "end-to-end latency  p50 {:>7} us  p99 {:>7} us  p99.9 {:>7} us  max {:>8} us  ({} samples)",
        l.p50_us, l.p99_us, l.p999_us, l.max_us, l.count
    );
    if let Some(b) = &r.broker {
        println!(
            "broker  cpu {:.2} s  peak rss {:.1} MiB  cpu per million records {:.3} s",
            b.cpu_seconds,
            b.rss_peak_kib as f64 / 1024.0,
            r.broker_cpu_seconds_per_million.unwrap_or(0.0)
        );
    }
    if let (Some(expected), Some(lost)) = (r.expected_deliveries, r.lost) {
        println!("deliveries expected {expected}  lost {lost}");
    }
    if let Some(cpu) = r.driver_cpu_seconds {
        let busy = r.produce_seconds.max(r.consume_seconds);
        println!(
            "driver  cpu {cpu:.2} s  ({:.0}% of one core over the run)",
            100.0 * cpu / busy.max(f64::EPSILON)
        );
    }
    if let Some(busy) = r.machine_busy_cpu_seconds {
        let ours = r.broker.map_or(0.0, |b| b.cpu_seconds) + r.driver_cpu_seconds.unwrap_or(0.0);
        println!(
            "machine busy {busy:.2} cpu s, of which broker + driver {ours:.2} s; the rest is \
             kernel network work and anything else running"
        );
    }
    println!("errors {}", r.errors);
}
