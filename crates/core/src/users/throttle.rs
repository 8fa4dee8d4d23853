//! Failed logins, counted per source address: past [`FAILURES_MAX`] in a [`WINDOW`], the
//! source's logins are refused at once (no password stretched, no credential compared) until
//! its window ends, and that is logged once instead of every attempt. A password guesser or a
//! client looping on a wrong password then costs a hash-map lookup per attempt, not 1.75 ms of
//! PBKDF2 (BENCHMARKS.md), and fills the log with one line a minute.
//!
//! Memory: at most [`SOURCES_MAX`] addresses are tracked (~64 bytes each); when full, windows
//! that ended are dropped, and if none has, the table starts over (a flood from that many
//! addresses is no longer slowed by this, but costs no more memory).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failed logins one source may make per window before it is refused.
pub const FAILURES_MAX: u32 = 20;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at most.
pub const SOURCES_MAX: usize = 65_536;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failed logins per source address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    sources: Mutex<HashMap<IpAddr, Window>>,
}

impl LoginThrottle {
    /// `Some(seconds left)` when `source` is refused now.
    pub fn refused(&self, source: IpAddr) -> Option<u64> {
        self.refused_at(source, Instant::now())
    }

    fn refused_at(&self, source: IpAddr, now: Instant) -> Option<u64> {
        let sources = self.sources.lock();
        let window = sources.get(&source)?;
        let ends = window.started + WINDOW;
        (window.failures >= FAILURES_MAX && now < ends).then(|| (ends - now).as_secs().max(1))
    }

    /// Counts a failed login from `source`.
    pub fn failed(&self, source: IpAddr) {
        self.failed_at(source, Instant::now())
    }

    fn failed_at(&self, source: IpAddr, now: Instant) {
        let mut sources = self.sources.lock();
        if sources.len() >= SOURCES_MAX && !sources.contains_key(&source) {
            sources.retain(|_, w| now < w.started + WINDOW);
            if sources.len() >= SOURCES_MAX {
                sources.clear();
            }
        }
        let window = sources.entry(source).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= window.started + WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures += 1;
        if window.failures == FAILURES_MAX {
            tracing::warn!(%source, failures = FAILURES_MAX, window_secs = WINDOW.as_secs(),
                "too many failed logins from this address: its logins are refused until the window ends");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_refused_after_its_failures_until_the_window_ends() {
        let throttle = LoginThrottle::default();
        let guesser: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        let start = Instant::now();
        for _ in 0..FAILURES_MAX - 1 {
            throttle.failed_at(guesser, start);
        }
        assert_eq!(throttle.refused_at(guesser, start), None);
        throttle.failed_at(guesser, start);
        assert_eq!(throttle.refused_at(guesser, start), Some(WINDOW.as_secs()));
        assert_eq!(throttle.refused_at(other, start), None, "per source");
        let later = start + WINDOW;
        assert_eq!(
            throttle.refused_at(guesser, later),
            None,
            "the window ended"
        );
        throttle.failed_at(guesser, later);
        assert_eq!(throttle.refused_at(guesser, later), None, "a new window");
    }

    #[test]
    fn the_table_is_bounded() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..SOURCES_MAX as u32 + 10 {
            throttle.failed_at(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(throttle.sources.lock().len() <= SOURCES_MAX);
    }
}
