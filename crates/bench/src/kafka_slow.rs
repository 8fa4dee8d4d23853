//! The Kafka "slow reader" scenario (issue 14): raw connections that pipeline Fetch requests
//! for everything in the topic, up to 50 MiB each, and never read their sockets, held open while
//! the ordinary consumers run. What it shows: how much the broker's RSS grows for answers
//! nobody reads (sampled VmRSS, not VmHWM, which spans the broker's life), and whether the
//! other consumers are slowed (their throughput and CPU are reported as usual).
//!
//! The requests are encoded by hand (Fetch v4, the oldest version Porter serves, with the
//! non-flexible request header v1): porter-bench talks to brokers only through real clients
//! otherwise, and no client library lets an application pipeline fetches and not read them.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

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
        for n in 0..fetches {
            let correlation_id = (reader * fetches + n) as i32;
            stream
                .write_all(&fetch_request(correlation_id, topic, partitions, max_bytes))
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

/// `size | header v1 | Fetch v4` for all `partitions` of `topic` from offset 0.
fn fetch_request(correlation_id: i32, topic: &str, partitions: i32, max_bytes: i32) -> Vec<u8> {
    const FETCH: i16 = 1;
    const CLIENT_ID: &[u8] = b"porter-bench-slow-reader";
    let mut b = vec![0u8; 4]; // size, patched below
    b.extend_from_slice(&FETCH.to_be_bytes());
    b.extend_from_slice(&4i16.to_be_bytes()); // version
    b.extend_from_slice(&correlation_id.to_be_bytes());
    b.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    b.extend_from_slice(CLIENT_ID);
    b.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id: a consumer
    b.extend_from_slice(&0i32.to_be_bytes()); // max_wait_ms
    b.extend_from_slice(&1i32.to_be_bytes()); // min_bytes
    b.extend_from_slice(&max_bytes.to_be_bytes());
    b.push(0); // isolation_level: read uncommitted
    b.extend_from_slice(&1i32.to_be_bytes()); // one topic
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&partitions.to_be_bytes());
    for p in 0..partitions {
        b.extend_from_slice(&p.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes()); // fetch_offset
        b.extend_from_slice(&max_bytes.to_be_bytes()); // partition_max_bytes
    }
    let size = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&size.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_request_is_sized_and_laid_out_as_v4() {
        let b = fetch_request(7, "t", 2, 1000);
        assert_eq!(
            i32::from_be_bytes(b[..4].try_into().unwrap()) as usize,
            b.len() - 4
        );
        assert_eq!(&b[4..8], &[0, 1, 0, 4]);
        assert_eq!(i32::from_be_bytes(b[8..12].try_into().unwrap()), 7);
        // header 8 + client id 2+24, body 4*4+1, topics 4 + name 2+1 + count 4, 2 partitions × 16
        assert_eq!(b.len() - 4, 8 + 26 + 17 + 11 + 32);
    }
}
