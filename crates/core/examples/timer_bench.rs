//! Measures the durable timers (`porter_core::timer`):
//!
//! - `schedule [N] [CONCURRENCY]`: N timers (100-byte payloads, due in an hour) scheduled
//!   through the `TimerService` by CONCURRENCY tasks; throughput, fsyncs are shared per group.
//! - `fire [RATE] [SECONDS]`: RATE × SECONDS timers due evenly at RATE per second, scheduled
//!   ahead, then received (and confirmed) as they fire; lateness p50/p99/max.
//! - `rss [N]`: N pending timers spread over a day; RSS after scheduling and after a reopen.
//!
//! `cargo run --release -p porter-core --example timer_bench -- fire 50000 10`. Files go under
//! `$TIMER_DIR` (default `target/timer-bench`), on a real disk so fsyncs cost what they cost.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use porter_core::timer::{now_ms, TimerConfig, TimerService, TimerStore};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let root = std::env::var("TIMER_DIR").unwrap_or_else(|_| "target/timer-bench".into());
    let dir = std::path::Path::new(&root).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The default config, with `$TIMER_BUCKET_MS` as the bucket width if set.
fn config() -> TimerConfig {
    let mut config = TimerConfig::default();
    if let Some(width) = std::env::var("TIMER_BUCKET_MS")
        .ok()
        .and_then(|w| w.parse().ok())
    {
        config.bucket_width_ms = width;
    }
    config
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

async fn schedule_all(service: &Arc<TimerService>, dues: Vec<i64>, concurrency: usize) {
    let dues = Arc::new(dues);
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let service = service.clone();
            let dues = dues.clone();
            tokio::spawn(async move {
                let payload = Bytes::from(vec![7u8; 100]);
                for i in (t..dues.len()).step_by(concurrency) {
                    service.schedule(dues[i], payload.clone()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "fire".into());
    match mode.as_str() {
        "schedule" => {
            let n = arg(2, 200_000) as usize;
            let concurrency = arg(3, 256) as usize;
            let store = TimerStore::open(&fresh_dir("schedule"), TimerConfig::default()).unwrap();
            let (service, _due) = TimerService::start(store, 1024).unwrap();
            let service = Arc::new(service);
            let due = now_ms() + 3_600_000;
            let (cpu, started) = (cpu_seconds(), Instant::now());
            schedule_all(&service, vec![due; n], concurrency).await;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "schedule: {n} timers, {concurrency} concurrent: {:.0} timers/s, {:.2} µs CPU per timer",
                n as f64 / secs,
                (cpu_seconds() - cpu) * 1e6 / n as f64
            );
            service.shutdown().await;
        }
        "fire" => {
            let rate = arg(2, 50_000) as i64;
            let seconds = arg(3, 10) as i64;
            let n = (rate * seconds) as usize;
            let store = TimerStore::open(&fresh_dir("fire"), config()).unwrap();
            let (service, mut due_rx) = TimerService::start(store, 4096).unwrap();
            let service = Arc::new(service);
            // Due evenly from 15 s from now, enough to schedule them all first.
            let start = now_ms() + 15_000;
            let dues: Vec<i64> = (0..n as i64).map(|i| start + i * 1000 / rate).collect();
            let started = Instant::now();
            schedule_all(&service, dues, 256).await;
            println!(
                "fire: scheduled {n} in {:.1} s; firing {rate}/s for {seconds} s",
                started.elapsed().as_secs_f64()
            );
            assert!(
                now_ms() < start,
                "scheduling took longer than the head start"
            );
            let cpu = cpu_seconds();
            let mut lateness_us = Vec::with_capacity(n);
            let mut early = 0;
            let mut batch = Vec::new();
            while lateness_us.len() < n {
                let t = due_rx.recv().await.unwrap();
                let late = now_us() - t.due_ms * 1000;
                if late < 0 {
                    early += 1;
                }
                lateness_us.push(late);
                batch.push(t.id);
                if batch.len() >= 256 || due_rx.is_empty() {
                    service.fired(std::mem::take(&mut batch));
                }
            }
            service.fired(batch);
            let cpu = cpu_seconds() - cpu;
            lateness_us.sort_unstable();
            let q = |p: f64| lateness_us[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
            println!(
                "fire: lateness p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; early {early}; \
                 {:.2} µs CPU per fired timer; RSS {} MiB",
                q(0.5),
                q(0.99),
                q(0.999),
                q(1.0),
                cpu * 1e6 / n as f64,
                rss_bytes() >> 20
            );
            service.shutdown().await;
        }
        "rss" => {
            let n = arg(2, 1_000_000);
            let dir = fresh_dir("rss");
            let before = rss_bytes();
            let base = now_ms() + 60_000;
            let mut store = TimerStore::open(&dir, config()).unwrap();
            let (cpu, started) = (cpu_seconds(), Instant::now());
            let payload = vec![7u8; 100];
            for i in 0..n {
                let delta = (i.wrapping_mul(2_654_435_761) % 86_400_000) as i64;
                store.schedule(base + delta, &payload).unwrap();
                if i % 1_000 == 999 {
                    store.sync().unwrap();
                }
            }
            store.sync().unwrap();
            println!(
                "rss: {n} pending over a day ({} bucket files): scheduled in {:.1} s ({:.2} µs CPU each, \
                 a sync per 1000), RSS {} MiB (+{} MiB), in memory {}",
                store.bucket_files(),
                started.elapsed().as_secs_f64(),
                (cpu_seconds() - cpu) * 1e6 / n as f64,
                rss_bytes() >> 20,
                (rss_bytes().saturating_sub(before)) >> 20,
                store.in_memory()
            );
            store.close().unwrap();
            let started = Instant::now();
            let store = TimerStore::open(&dir, config()).unwrap();
            println!(
                "rss: reopened in {:.2} s: pending {}, RSS {} MiB, in memory {}",
                started.elapsed().as_secs_f64(),
                store.pending(),
                rss_bytes() >> 20,
                store.in_memory()
            );
        }
        other => eprintln!("unknown mode {other}: schedule | fire | rss"),
    }
}
