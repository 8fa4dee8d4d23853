//! Latency histograms for `/metrics`: fixed buckets (Prometheus's cumulative `le` form when
//! read), relaxed atomic counters so recording costs a few nanoseconds and never a lock on the
//! hot path, and [`Operations`], a bounded table of histograms by operation name ("Produce",
//! "basic.publish", ...).
//!
//! A leaf crate because both the core (fsync latency, in the commit seam) and the gateway kit
//! (request latency per connection's listener) record into it, and neither may depend on the
//! other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// Bucket upper bounds in seconds, from 50 µs (an fsync on a fast disk, a metadata request) to
/// 10 s (a long-polling fetch). Anything slower lands in `+Inf`.
pub const BUCKETS_SECONDS: [f64; 15] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
    10.0,
];

/// Operations one table holds at most; more distinct names are counted under `"other"`. Kafka
/// has ~70 API keys and AMQP ~40 methods, so this is never reached by a known protocol.
pub const OPERATIONS_MAX: usize = 128;

/// One latency distribution.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative), plus the `+Inf` overflow last.
    counts: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A histogram read at one moment, cumulative as Prometheus wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// (upper bound in seconds, observations at or below it), ascending; `+Inf` is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS_SECONDS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(BUCKETS_SECONDS.len());
        for (bound, count) in BUCKETS_SECONDS.iter().zip(&self.counts) {
            running += count.load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let count = running + self.counts[BUCKETS_SECONDS.len()].load(Ordering::Relaxed);
        Snapshot {
            buckets,
            count,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Histograms by operation name, at most [`OPERATIONS_MAX`] of them.
#[derive(Debug, Default)]
pub struct Operations {
    entries: RwLock<Vec<(&'static str, Arc<Histogram>)>>,
}

impl Operations {
    /// Records one `operation` that took `elapsed`.
    pub fn record(&self, operation: &'static str, elapsed: Duration) {
        if let Some((_, histogram)) = self.entries.read().iter().find(|(n, _)| *n == operation) {
            histogram.record(elapsed);
            return;
        }
        let mut entries = self.entries.write();
        let name = if entries.len() >= OPERATIONS_MAX - 1 {
            "other"
        } else {
            operation
        };
        let index = match entries.iter().position(|(n, _)| *n == name) {
            Some(index) => index,
            None => {
                entries.push((name, Arc::default()));
                entries.len() - 1
            }
        };
        entries[index].1.record(elapsed);
    }

    /// Every operation's histogram, by name.
    pub fn snapshot(&self) -> Vec<(&'static str, Snapshot)> {
        let mut all: Vec<_> = self
            .entries
            .read()
            .iter()
            .map(|(name, histogram)| (*name, histogram.snapshot()))
            .collect();
        all.sort_by_key(|(name, _)| *name);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_adds_up() {
        let histogram = Histogram::default();
        for micros in [30, 80, 80, 700, 20_000_000] {
            histogram.record(Duration::from_micros(micros));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 5);
        assert_eq!(snapshot.buckets[0], (0.00005, 1));
        assert_eq!(snapshot.buckets[1], (0.0001, 3));
        assert_eq!(snapshot.buckets[4], (0.001, 4));
        assert_eq!(
            snapshot.buckets.last().unwrap().1,
            4,
            "20 s is only in +Inf"
        );
        assert!((snapshot.sum_seconds - 20.00089).abs() < 1e-9);
        assert!(snapshot.buckets.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn the_table_is_bounded() {
        let operations = Operations::default();
        let names: Vec<&'static str> = (0..OPERATIONS_MAX * 2)
            .map(|i| &*Box::leak(format!("op{i}").into_boxed_str()))
            .collect();
        for name in &names {
            operations.record(name, Duration::from_millis(1));
        }
        let snapshot = operations.snapshot();
        assert_eq!(snapshot.len(), OPERATIONS_MAX);
        let other = snapshot.iter().find(|(n, _)| *n == "other").unwrap();
        assert_eq!(
            other.1.count as usize,
            OPERATIONS_MAX * 2 - (OPERATIONS_MAX - 1)
        );
    }
}
