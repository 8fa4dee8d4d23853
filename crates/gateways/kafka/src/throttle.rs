//! Kafka client quotas, enforced: each (user, client id) whose quota the core resolves has its
//! produced and fetched bytes, and the time the broker spent on its requests
//! (`request_percentage`, in microseconds against `percent × 10 000` per second), measured over
//! a sliding window of [`SAMPLES`] one-second samples
//! (Kafka's `quota.window.num` and `quota.window.size.seconds`). A request that takes the rate
//! over the quota is answered with `throttle_time_ms` and held back that long (Kafka's formula:
//! `(rate - quota) / quota × window`), so the client's rate falls to its quota whether or not it
//! honours the field (KIP-219 clients also wait on their side).
//!
//! Memory: one entry per (user, client id, direction) with a quota, at most [`CLIENTS_MAX`];
//! past it, entries idle for a window are dropped, and if none is, the table starts over.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use porter_core::quota::{
    ClientQuotas, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
};
use std::sync::Mutex;

/// One-second samples in the window.
pub const SAMPLES: u64 = 11;
/// The longest a request is held back.
pub const THROTTLE_MAX: Duration = Duration::from_secs(SAMPLES);
/// Measured clients at most.
pub const CLIENTS_MAX: usize = 10_000;

/// Which quota a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Produce,
    Fetch,
    /// Request handling time, counted in microseconds.
    Request,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Produce => PRODUCER_BYTE_RATE,
            Direction::Fetch => CONSUMER_BYTE_RATE,
            Direction::Request => REQUEST_PERCENTAGE,
        }
    }

    /// The quota as a rate of what is counted: bytes per second as set, or for requests
    /// `percent` of one thread's second, in microseconds.
    fn per_second(self, quota: f64) -> f64 {
        match self {
            Direction::Request => quota * 10_000.0,
            _ => quota,
        }
    }
}

#[derive(Debug)]
struct Rate {
    /// (second since `origin`, bytes) of the last `SAMPLES` seconds.
    samples: VecDeque<(u64, f64)>,
    last: Instant,
}

/// A measured client: (user, client id, direction).
type Client = (Option<String>, String, Direction);

/// Byte rates of the clients that have quotas.
#[derive(Debug)]
pub struct Throttle {
    origin: Instant,
    rates: Mutex<HashMap<Client, Rate>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            origin: Instant::now(),
            rates: Mutex::new(HashMap::new()),
        }
    }
}

impl Throttle {
    /// Counts `amount` (bytes, or microseconds for requests) for the client and returns how
    /// long to hold its answer (zero without a quota, or under it).
    pub fn record(
        &self,
        quotas: &ClientQuotas,
        user: Option<&str>,
        client_id: &str,
        direction: Direction,
        amount: usize,
    ) -> Duration {
        let Some(quota) = quotas.resolve(user, client_id, direction.key()) else {
            return Duration::ZERO;
        };
        let quota = direction.per_second(quota);
        self.record_at(Instant::now(), quota, user, client_id, direction, amount)
    }

    fn record_at(
        &self,
        now: Instant,
        quota: f64,
        user: Option<&str>,
        client_id: &str,
        direction: Direction,
        bytes: usize,
    ) -> Duration {
        let second = now.duration_since(self.origin).as_secs();
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let key = (user.map(str::to_string), client_id.to_string(), direction);
        if rates.len() >= CLIENTS_MAX && !rates.contains_key(&key) {
            let window = Duration::from_secs(SAMPLES);
            rates.retain(|_, r| now.duration_since(r.last) < window);
            if rates.len() >= CLIENTS_MAX {
                rates.clear();
            }
        }
        let rate = rates.entry(key).or_insert_with(|| Rate {
            samples: VecDeque::with_capacity(SAMPLES as usize),
            last: now,
        });
        rate.last = now;
        while rate
            .samples
            .front()
            .is_some_and(|(s, _)| *s + SAMPLES <= second)
        {
            rate.samples.pop_front();
        }
        match rate.samples.back_mut() {
            Some((s, total)) if *s == second => *total += bytes as f64,
            _ => rate.samples.push_back((second, bytes as f64)),
        }
        let total: f64 = rate.samples.iter().map(|(_, b)| b).sum();
        // The window spans from the oldest sample to now, at least one second.
        let oldest = rate.samples.front().map_or(second, |(s, _)| *s);
        let elapsed = (now.duration_since(self.origin).as_secs_f64() - oldest as f64).max(1.0);
        let observed = total / elapsed;
        if observed <= quota {
            return Duration::ZERO;
        }
        let seconds = (observed - quota) / quota * elapsed;
        Duration::from_secs_f64(seconds).min(THROTTLE_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_quota_is_held_back_in_proportion() {
        let throttle = Throttle::default();
        let now = throttle.origin + Duration::from_millis(500);
        let under = throttle.record_at(now, 1000.0, Some("alice"), "app", Direction::Produce, 800);
        assert_eq!(under, Duration::ZERO);
        // 3000 bytes in the first second against 1000 B/s: two seconds of throttle.
        let over = throttle.record_at(now, 1000.0, Some("alice"), "app", Direction::Produce, 2200);
        assert_eq!(over, Duration::from_secs(2));
        // Another client is measured on its own.
        let other = throttle.record_at(now, 1000.0, Some("bob"), "app", Direction::Produce, 500);
        assert_eq!(other, Duration::ZERO);
        // Fetches count against another quota.
        let fetch = throttle.record_at(now, 1000.0, Some("alice"), "app", Direction::Fetch, 500);
        assert_eq!(fetch, Duration::ZERO);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let throttle = Throttle::default();
        let start = throttle.origin;
        let held = throttle.record_at(start, 100.0, None, "c", Direction::Produce, 10_000);
        assert_eq!(held, THROTTLE_MAX);
        let later = start + Duration::from_secs(SAMPLES + 1);
        assert_eq!(
            throttle.record_at(later, 100.0, None, "c", Direction::Produce, 10),
            Duration::ZERO
        );
    }
}
