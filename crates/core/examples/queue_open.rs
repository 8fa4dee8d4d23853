//! Open time and memory of many idle durable queues: declares `N` (default 100,000) durable
//! queues, stops the broker cleanly, then re-runs itself to open the data directory in a fresh
//! process and prints the open time, the RSS growth and the bytes per queue.
//!
//! `cargo run --release -p porter-core --example queue_open [N]`. The data directory is a
//! temporary one under `$QUEUE_OPEN_DIR` (default `/dev/shm` when it exists: declaring 100k
//! queues on a disk costs ~3 fsyncs each, minutes that measure the disk, not the broker).

use std::time::Instant;

use porter_core::queue::QueueDefinition;
use porter_core::{Broker, BrokerConfig};

fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    }
}

fn durable(name: String) -> QueueDefinition {
    QueueDefinition {
        name,
        id: Default::default(),
        durable: true,
        exclusive_owner: None,
        auto_delete: false,
        arguments: Default::default(),
    }
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn create(dir: &std::path::Path, n: usize) {
    let broker = Broker::open(config(dir)).unwrap();
    let vhost = broker.vhost("/").unwrap();
    let start = Instant::now();
    for i in 0..n {
        vhost
            .declare_queue(durable(format!("q{i}")), false, 1)
            .await
            .unwrap();
    }
    println!(
        "declared {n} durable queues in {:.2?} ({:.0} us each)",
        start.elapsed(),
        start.elapsed().as_micros() as f64 / n as f64
    );
    let start = Instant::now();
    broker.shutdown().await.unwrap();
    println!("clean shutdown in {:.2?}", start.elapsed());
}

async fn open(dir: &std::path::Path, n: usize) {
    let before = rss_bytes();
    let start = Instant::now();
    let broker = Broker::open(config(dir)).unwrap();
    let elapsed = start.elapsed();
    let after = rss_bytes();
    let vhost = broker.vhost("/").unwrap();
    assert!(vhost.queue(&format!("q{}", n - 1), 1).is_ok());
    println!(
        "opened {n} idle durable queues in {elapsed:.2?}; RSS {} MiB -> {} MiB: {} bytes per queue",
        before >> 20,
        after >> 20,
        (after.saturating_sub(before)) / n as u64
    );
    // Idle: nothing scheduled, no timers.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    println!(
        "after 2 s idle: RSS {} MiB, scheduler (queues ready, queues with a timer) = {:?}",
        rss_bytes() >> 20,
        broker.queue_scheduler_pending()
    );
    let start = Instant::now();
    broker.shutdown().await.unwrap();
    println!("clean shutdown in {:.2?}", start.elapsed());
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--create DIR N` and `--open DIR N` run one phase on a kept directory (for profiling).
    match args.get(1).map(String::as_str) {
        Some("--open") => {
            return open(std::path::Path::new(&args[2]), args[3].parse().unwrap()).await
        }
        Some("--create") => {
            return create(std::path::Path::new(&args[2]), args[3].parse().unwrap()).await
        }
        _ => {}
    }
    let n: usize = args.get(1).map_or(100_000, |n| n.parse().unwrap());
    let root = std::env::var("QUEUE_OPEN_DIR").unwrap_or_else(|_| {
        if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            std::env::temp_dir().to_string_lossy().into_owned()
        }
    });
    let dir = tempfile::tempdir_in(root).unwrap();
    create(dir.path(), n).await;
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--open")
        .arg(dir.path())
        .arg(n.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
