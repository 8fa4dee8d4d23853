//! Raw consumers: the broker's fetch ceiling when librdkafka's per-message consumer path is the
//! limit on this machine (issue 14: librdkafka consumers topped out near 0.45 M rec/s on the same
//! two cores as the broker, with the broker mostly idle). Each raw consumer is one connection
//! and one thread that sends Fetch v4 for its partitions, reads the whole answer, and counts
//! records from the batch headers without decoding records or checking CRCs: what a consumer
//! must at least do, so the figure is the broker's (and the loopback's), not an application's.
//! Reported beside the librdkafka figure, never instead of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::kafka_wire::{count_records, fetch_response, response_size, FetchRequest};
use crate::progress::Progress;

/// Bytes asked for per fetch and per partition (librdkafka's defaults: fetch.max.bytes 50 MiB,
/// max.partition.fetch.bytes 1 MiB), and the largest answer accepted.
const FETCH_MAX_BYTES: i32 = 50 << 20;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: usize = 64 << 20;

/// Reads `partitions` of `topic` from offset 0 over one connection to the first of `brokers`,
/// adding each record to `consumed` (shared by all raw consumers) until it reaches `until` or
/// `give_up` passes.
pub fn consume(
    brokers: &str,
    topic: &str,
    partitions: &[i32],
    consumed: &AtomicU64,
    until: u64,
    give_up: Instant,
    progress: &Progress,
) -> Result<()> {
    let address = brokers.split(',').next().unwrap_or(brokers);
    let mut stream = TcpStream::connect(address)
        .with_context(|| format!("raw consumer connecting to {address}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = FetchRequest {
        client_id: "porter-bench-raw-consumer",
        topic,
        max_wait_ms: 100,
        max_bytes: FETCH_MAX_BYTES,
        partition_max_bytes: PARTITION_MAX_BYTES,
    };
    let mut offsets: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, 0)).collect();
    let mut body = Vec::new();
    let mut correlation_id = 0i32;
    while consumed.load(Ordering::Relaxed) < until && Instant::now() < give_up {
        correlation_id = correlation_id.wrapping_add(1);
        stream.write_all(&request.encode(correlation_id, &offsets))?;
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix)?;
        body.resize(response_size(prefix, RESPONSE_MAX_BYTES)?, 0);
        stream.read_exact(&mut body)?;
        let (answered, fetched) = fetch_response(&body)?;
        if answered != correlation_id {
            bail!("fetch answer {answered} for request {correlation_id}");
        }
        for partition in fetched {
            if partition.error_code != 0 {
                progress.error(1);
                continue;
            }
            let (records, next) = count_records(partition.records);
            if let (Some(next), Some(slot)) = (
                next,
                offsets.iter_mut().find(|(p, _)| *p == partition.partition),
            ) {
                slot.1 = next;
            }
            consumed.fetch_add(records, Ordering::Relaxed);
            progress.consumed(records);
        }
    }
    Ok(())
}
