//! The Kafka "slow reader" scenario (issue 14): raw connections that pipeline Fetch requests
//! for everything in the topic, up to 50 MiB each, and never read their sockets, held open while
//! the ordinary consumers run. What it shows: how much the broker's RSS grows for answers
//! nobody reads (sampled VmRSS, not VmHWM, which spans the broker's life), and whether the
//! other consumers are slowed (their throughput and CPU are reported as usual).
//!
//! The requests are encoded by hand (see `kafka_wire`): porter-bench talks to brokers only through
//! real clients otherwise, and no client library lets an application pipeline fetches and not
//! read them.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::kafka_wire::FetchRequest;
use crate::proc_stats;

/// What the slow readers cost the broker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowReaderResult {
    pub readers: usize,
    pub fetches_each: usize,
    pub fetch_max_bytes: i32,
    /// Broker VmRSS just before the slow readers connected.
    pub broker_rss_before_kib: u64,
    /// Largest broker VmRSS sampled (every 20 ms) while they were connected.
    pub broker_rss_peak_kib: u64,
}

/// Open slow-reader connections and the RSS sampler; [`SlowReaders::finish`] ends both.
pub struct SlowReaders {
    streams: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: Option<std::thread::JoinHandle<()>>,
    result: SlowReaderResult,
}

/// `readers` connections to the first of `brokers`, each sending `fetches` Fetch requests for
/// every partition of `topic` from offset 0, at most `max_bytes` each (and per partition).
pub fn start(
    brokers: &str,
    topic: &str,
    partitions: i32,
    readers: usize,
    fetches: usize,
    max_bytes: i32,
    broker_pid: Option<u32>,
) -> Result<SlowReaders> {
    let before = broker_pid.and_then(proc_stats::rss_kib).unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = broker_pid.map(|pid| {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = proc_stats::rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });
    let address = brokers.split(',').next().unwrap_or(brokers);
    let mut streams = Vec::with_capacity(readers);
    for reader in 0..readers {
        let mut stream = TcpStream::connect(address)
            .with_context(|| format!("slow reader connecting to {address}"))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let request = FetchRequest {
            client_id: "porter-bench-slow-reader",
            topic,
            max_wait_ms: 0,
            max_bytes,
            partition_max_bytes: max_bytes,
        };
        let from_start: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
        for n in 0..fetches {
            let correlation_id = (reader * fetches + n) as i32;
            stream
                .write_all(&request.encode(correlation_id, &from_start))
                .context("slow reader sending a fetch")?;
        }
        streams.push(stream);
    }
    Ok(SlowReaders {
        streams,
        stop,
        peak,
        sampler,
        result: SlowReaderResult {
            readers,
            fetches_each: fetches,
            fetch_max_bytes: max_bytes,
            broker_rss_before_kib: before,
            broker_rss_peak_kib: 0,
        },
    })
}

impl SlowReaders {
    /// Stops sampling, closes the connections and says what the broker's RSS did.
    pub fn finish(mut self) -> SlowReaderResult {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        drop(std::mem::take(&mut self.streams));
        self.result.broker_rss_peak_kib = self.peak.load(Ordering::Relaxed);
        self.result
    }
}
