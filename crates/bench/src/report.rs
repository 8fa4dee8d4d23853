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
    println!("errors {}", r.errors);
}
