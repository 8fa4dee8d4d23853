//! End-to-end latency from timestamps carried in the payload, into an HdrHistogram.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Microsecond histogram up to one minute, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles in microseconds; `#[serde(default)]` so results written before a field existed
/// still parse.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Microseconds since the Unix epoch: producer and consumer run on one machine, one clock.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Payload of `size` bytes (at least 8) starting with the send time.
pub fn stamped_payload(size: usize, sent_us: u64) -> Vec<u8> {
    let mut payload = vec![b'x'; size.max(8)];
    payload[..8].copy_from_slice(&sent_us.to_be_bytes());
    payload
}

pub fn sent_at(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_its_send_time() {
        let p = stamped_payload(100, 123_456);
        assert_eq!(p.len(), 100);
        assert_eq!(sent_at(&p), Some(123_456));
        assert_eq!(stamped_payload(3, 1).len(), 8);
    }

    #[test]
    fn quantiles() {
        let mut h = latency_histogram();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((495..=505).contains(&l.p50_us));
        assert!((985..=995).contains(&l.p99_us));
        assert_eq!(l.max_us, 1000);
        assert!((998..=1000).contains(&l.p999_us));
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(Latency::of(&latency_histogram()), Latency::default());
    }

    #[test]
    fn quantiles_of_a_skewed_distribution() {
        // 990 fast samples and 10 slow ones: p50 is fast, p99.9 and max see the tail.
        let mut h = latency_histogram();
        for _ in 0..990 {
            h.record(100).unwrap();
        }
        for _ in 0..10 {
            h.record(50_000).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.p50_us, 100);
        assert_eq!(l.p99_us, 100, "the 990th of 1000 samples is still fast");
        assert!((49_950..=50_050).contains(&l.p999_us), "{l:?}");
        assert!((49_950..=50_050).contains(&l.max_us), "{l:?}");
    }

    #[test]
    fn values_beyond_the_bound_are_refused_not_clamped() {
        // Drivers ignore the error: a latency over a minute is dropped, never recorded as less.
        let mut h = latency_histogram();
        assert!(h.record(120_000_000).is_err());
        assert!(h.is_empty());
    }

    #[test]
    fn merged_histograms_count_both() {
        let (mut a, mut b) = (latency_histogram(), latency_histogram());
        a.record(10).unwrap();
        b.record(1_000).unwrap();
        a.add(&b).unwrap();
        let l = Latency::of(&a);
        assert_eq!((l.count, l.max_us), (2, 1_000));
    }
}
