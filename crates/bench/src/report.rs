//! The result of a run: a human table on stdout and JSON for scripts and `porter-bench chart`.
//!
//! The JSON only ever gains fields, and every struct reads with `#[serde(default)]`, so results
//! written by an older porter-bench still load (as charts of old runs next to new ones do).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::kafka_slow::SlowReaderResult;
use crate::proc_stats::ProcSample;
use crate::stats::Latency;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunResult {
    pub label: String,
    /// What ran; an open-loop run ends in " @RATE/s", the rest is the same at every rate.
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
    /// Open loop: the asked rate (msgs/s, all producers), so a latency-vs-throughput curve can be
    /// drawn from achieved against asked; `None` for a closed-loop run.
    pub rate: Option<u64>,
    /// Fan-out: queues bound to the exchange, each with its own consumer; `consumed` counts
    /// deliveries, so up to `produced` times this.
    pub subscribers: Option<usize>,
    /// Peak shaving: what the bounded queue accepted and refused, and how the broker coped.
    pub peak: Option<PeakResult>,
    // Added for MQTT; absent from the JSON of the other drivers, so their results are unchanged.
    /// MQTT QoS of publishes and subscriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    /// Client connections the run held open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Deliveries the broker owed for the publishes it accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_deliveries: Option<u64>,
    /// Owed deliveries that never arrived (also counted in `errors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// CPU seconds of the benchmark driver itself, to show it was not the bottleneck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_cpu_seconds: Option<f64>,
    /// CPU seconds the whole machine was busy during the load (all processes and the kernel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_busy_cpu_seconds: Option<f64>,
    /// RocketMQ closed loop: broker CPU seconds per million messages sent, over the send phase
    /// alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produce_broker_cpu_seconds_per_million: Option<f64>,
    /// Kafka closed loop: broker CPU seconds per million records consumed, over the consume
    /// phase alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_broker_cpu_seconds_per_million: Option<f64>,
    /// Kafka closed loop with `--slow-readers`: what the broker's RSS did meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_readers: Option<SlowReaderResult>,
    /// Broker VmRSS just before the run, at its end, and `settle_seconds` after it
    /// (`--settle-seconds`): whether memory taken by a burst is given back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_rss_before_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_rss_end_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_rss_after_settle_kib: Option<u64>,
    /// AMQP chat: what connecting, declaring and binding the clients cost, before the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupResult>,
    #[serde(skip)]
    pub json_path: Option<PathBuf>,
}

/// A set-up phase (the chat clients connecting, declaring and binding): its wall time and the
/// CPU the broker and the driver spent on it, so a slow set-up shows which side bound it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupResult {
    pub clients: u64,
    pub seconds: f64,
    pub broker_cpu_seconds: Option<f64>,
    pub driver_cpu_seconds: f64,
}

/// A burst into a bounded queue (`x-max-length`, `x-overflow = reject-publish`) drained by
/// rate-capped consumers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeakResult {
    pub max_length: u64,
    /// msgs/s all consumers together.
    pub consume_rate: u64,
    /// msgs/s the producer bursts at.
    pub burst_rate: u64,
    pub burst_seconds: f64,
    pub published: u64,
    /// Publishes the broker confirmed (accepted into the queue).
    pub confirmed: u64,
    /// Publishes the broker refused (basic.nack: the queue was full).
    pub nacked: u64,
    /// Publishes still unconfirmed when the run stopped.
    pub unconfirmed: u64,
    /// Largest message count queue.declare (passive) reported: messages ready, so not those
    /// delivered to a consumer and not yet acked (up to `--prefetch` per consumer).
    pub max_queue_depth: u64,
    /// From the burst's end (its last confirm) to the last accepted message consumed; `None` if
    /// the queue never drained before `--max-seconds`.
    pub drain_seconds: Option<f64>,
    /// Largest broker RSS sampled during the run (not VmHWM, which spans the broker's life).
    pub broker_rss_peak_kib: Option<u64>,
    /// Broker RSS over time, from the run's start.
    pub rss_timeline: Vec<TimePoint>,
    /// Queue depth over time, from the run's start.
    pub depth_timeline: Vec<TimePoint>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimePoint {
    pub t_ms: u64,
    pub value: u64,
}

/// The suffix an open-loop scenario ends in.
pub fn rate_suffix(rate: u64) -> String {
    format!(" @{rate}/s")
}

/// Where one point of a `--rates` sweep writes its JSON: `x.json` becomes `x-rate2000.json`.
pub fn sweep_path(path: &Path, rate: u64) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-rate{rate}.{}", ext.to_string_lossy()),
        None => format!("{stem}-rate{rate}"),
    };
    path.with_file_name(name)
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
    if let Some(n) = r.subscribers {
        println!(
            "fan-out  {n} subscribers: {} deliveries of {} expected",
            r.consumed,
            r.produced * n as u64
        );
    }
    let l = &r.end_to_end;
    println!(
        "end-to-end latency  p50 {:>7} us  p99 {:>7} us  p99.9 {:>7} us  max {:>8} us  ({} samples)",
        l.p50_us, l.p99_us, l.p999_us, l.max_us, l.count
    );
    if let Some(p) = &r.peak {
        println!(
            "peak  burst {} msgs/s for {:.1}s into max-length {}, consumers {} msgs/s",
            p.burst_rate, p.burst_seconds, p.max_length, p.consume_rate
        );
        println!(
            "peak  published {}  confirmed {}  nacked {}  unconfirmed {}  max depth {}",
            p.published, p.confirmed, p.nacked, p.unconfirmed, p.max_queue_depth
        );
        let drain = p
            .drain_seconds
            .map_or("not drained".to_string(), |s| format!("{s:.2} s"));
        let rss = p
            .broker_rss_peak_kib
            .map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        println!("peak  drain {drain}  broker rss peak {rss}");
    }
    if let Some(b) = &r.broker {
        println!(
            "broker  cpu {:.2} s  peak rss {:.1} MiB  cpu per million records {:.3} s",
            b.cpu_seconds,
            b.rss_peak_kib as f64 / 1024.0,
            r.broker_cpu_seconds_per_million.unwrap_or(0.0)
        );
    }
    if let Some(cpu) = r.produce_broker_cpu_seconds_per_million {
        println!("broker  produce phase cpu per million records {cpu:.3} s");
    }
    if let Some(cpu) = r.consume_broker_cpu_seconds_per_million {
        println!("broker  consume phase cpu per million records {cpu:.3} s");
    }
    if let Some(s) = &r.slow_readers {
        println!(
            "slow readers  {} x {} unread fetches of {} MiB: broker rss {:.1} -> peak {:.1} MiB",
            s.readers,
            s.fetches_each,
            s.fetch_max_bytes >> 20,
            s.broker_rss_before_kib as f64 / 1024.0,
            s.broker_rss_peak_kib as f64 / 1024.0
        );
    }
    if let (Some(before), Some(end)) = (r.broker_rss_before_kib, r.broker_rss_end_kib) {
        let settled = match (r.settle_seconds, r.broker_rss_after_settle_kib) {
            (Some(s), Some(kib)) => format!("  {s} s later {:.1} MiB", kib as f64 / 1024.0),
            _ => String::new(),
        };
        println!(
            "broker  rss before {:.1} MiB  at the end {:.1} MiB{settled}",
            before as f64 / 1024.0,
            end as f64 / 1024.0
        );
    }
    if let Some(s) = &r.setup {
        let broker = s
            .broker_cpu_seconds
            .map_or("-".to_string(), |cpu| format!("{cpu:.2} s"));
        println!(
            "set-up  {} clients in {:.2} s  broker cpu {broker}  driver cpu {:.2} s",
            s.clients, s.seconds, s.driver_cpu_seconds
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

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> RunResult {
        RunResult {
            label: "porter".into(),
            scenario: format!("amqp-work-queue 1p/1c{}", rate_suffix(2000)),
            record_bytes: 100,
            produced: 20_000,
            consumed: 20_000,
            errors: 0,
            produce_seconds: 10.0,
            consume_seconds: 10.1,
            produce_records_per_sec: 2000.0,
            produce_mb_per_sec: 0.2,
            consume_records_per_sec: 1980.2,
            end_to_end: Latency {
                count: 20_000,
                p50_us: 300,
                p99_us: 900,
                p999_us: 2000,
                max_us: 5000,
            },
            broker: Some(ProcSample {
                cpu_seconds: 1.5,
                rss_peak_kib: 40_000,
            }),
            broker_cpu_seconds_per_million: Some(75.0),
            rate: Some(2000),
            subscribers: Some(10),
            peak: Some(PeakResult {
                max_length: 1000,
                consume_rate: 100,
                burst_rate: 1000,
                burst_seconds: 2.0,
                published: 2000,
                confirmed: 1200,
                nacked: 800,
                unconfirmed: 0,
                max_queue_depth: 1000,
                drain_seconds: Some(10.5),
                broker_rss_peak_kib: Some(50_000),
                rss_timeline: vec![TimePoint {
                    t_ms: 250,
                    value: 49_000,
                }],
                depth_timeline: vec![TimePoint {
                    t_ms: 100,
                    value: 7,
                }],
            }),
            qos: Some(1),
            connections: Some(11),
            expected_deliveries: Some(200_000),
            lost: Some(0),
            driver_cpu_seconds: Some(2.5),
            machine_busy_cpu_seconds: Some(19.0),
            consume_broker_cpu_seconds_per_million: Some(0.05),
            produce_broker_cpu_seconds_per_million: Some(0.05),
            slow_readers: Some(SlowReaderResult {
                readers: 1,
                fetches_each: 40,
                fetch_max_bytes: 50 << 20,
                broker_rss_before_kib: 30_000,
                broker_rss_peak_kib: 34_000,
            }),
            broker_rss_before_kib: Some(12_000),
            broker_rss_end_kib: Some(160_000),
            settle_seconds: Some(30),
            broker_rss_after_settle_kib: Some(20_000),
            setup: Some(SetupResult {
                clients: 2000,
                seconds: 4.5,
                broker_cpu_seconds: Some(1.25),
                driver_cpu_seconds: 2.0,
            }),
            json_path: Some("/tmp/not-serialized.json".into()),
        }
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let written = full();
        let text = serde_json::to_string_pretty(&written).unwrap();
        assert!(
            !text.contains("not-serialized"),
            "the output path is not data"
        );
        let read: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(
            read,
            RunResult {
                json_path: None,
                ..written
            }
        );
    }

    #[test]
    fn json_of_an_older_porter_bench_still_parses() {
        // A result as porter-bench wrote it before rate, subscribers and peak existed.
        let old = r#"{
          "label": "rabbitmq", "scenario": "amqp-work-queue 1p/1c", "record_bytes": 100,
          "produced": 200000, "consumed": 200000, "errors": 0,
          "produce_seconds": 20.5, "consume_seconds": 20.6,
          "produce_records_per_sec": 9756.1, "produce_mb_per_sec": 0.98,
          "consume_records_per_sec": 9708.7,
          "end_to_end": {"count": 200000, "p50_us": 1200, "p99_us": 5000, "p999_us": 9000,
                         "max_us": 20000},
          "broker": {"cpu_seconds": 30.1, "rss_peak_kib": 150000},
          "broker_cpu_seconds_per_million": 75.3
        }"#;
        let r: RunResult = serde_json::from_str(old).unwrap();
        assert_eq!(r.label, "rabbitmq");
        assert_eq!(r.end_to_end.p99_us, 5000);
        assert_eq!(r.broker.unwrap().rss_peak_kib, 150_000);
        assert_eq!((r.rate, r.subscribers, r.peak), (None, None, None));
        // Missing fields inside nested objects default too.
        let sparse: RunResult =
            serde_json::from_str(r#"{"label": "x", "end_to_end": {"p50_us": 3}}"#).unwrap();
        assert_eq!(sparse.end_to_end.p50_us, 3);
        assert_eq!(sparse.end_to_end.count, 0);
    }

    #[test]
    fn sweep_points_get_their_own_files() {
        assert_eq!(
            sweep_path(Path::new("out/porter-100B.json"), 2000),
            Path::new("out/porter-100B-rate2000.json")
        );
        assert_eq!(sweep_path(Path::new("x"), 5), Path::new("x-rate5"));
    }
}
