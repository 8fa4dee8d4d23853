//! Failed logins, counted per source address and user: past [`FAILURES_MAX`] for one user in a
//! [`WINDOW`] (a password guesser, a client looping on a wrong password), or past
//! [`SOURCE_FAILURES_MAX`] for all users together (a guesser trying names), that source's logins
//! as that user (or as anyone) are refused at once, no password stretched or credential
//! compared, until its window ends, and that is logged once instead of every attempt. An
//! attempt then costs a hash-map lookup, not 1.75 ms of PBKDF2 (BENCHMARKS.md). Counting per
//! user too keeps one misconfigured client from locking out every other user behind the same
//! address.
//!
//! Memory: at most [`SOURCES_MAX`] addresses are tracked, each with at most
//! [`USERS_PER_SOURCE_MAX`] user counts (~100 bytes each); when full, windows that ended are
//! dropped, and if none has, the table starts over (a flood from that many addresses is no
//! longer slowed by this, but costs no more memory).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failed logins as one user from one source per window before they are refused.
pub const FAILURES_MAX: u32 = 20;
/// Failed logins as anyone from one source per window before they are all refused.
pub const SOURCE_FAILURES_MAX: u32 = 200;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at most.
pub const SOURCES_MAX: usize = 65_536;
/// Users counted per source at most (beyond, only the source's total counts).
pub const USERS_PER_SOURCE_MAX: usize = 64;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
    by_user: HashMap<String, u32>,
}

impl Window {
    fn new(started: Instant) -> Window {
        Window {
            started,
            failures: 0,
            by_user: HashMap::new(),
        }
    }
}

/// Failed logins per source address and user.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    sources: Mutex<HashMap<IpAddr, Window>>,
}

impl LoginThrottle {
    /// `Some(seconds left)` when `source` is refused logins as `user` now.
    pub fn refused(&self, source: IpAddr, user: &str) -> Option<u64> {
        self.refused_at(source, user, Instant::now())
    }

    fn refused_at(&self, source: IpAddr, user: &str, now: Instant) -> Option<u64> {
        let sources = self.sources.lock();
        let window = sources.get(&source)?;
        let ends = window.started + WINDOW;
        let over = window.failures >= SOURCE_FAILURES_MAX
            || window.by_user.get(user).is_some_and(|n| *n >= FAILURES_MAX);
        (over && now < ends).then(|| (ends - now).as_secs().max(1))
    }

    /// Counts a failed login from `source` as `user`.
    pub fn failed(&self, source: IpAddr, user: &str) {
        self.failed_at(source, user, Instant::now())
    }

    fn failed_at(&self, source: IpAddr, user: &str, now: Instant) {
        let mut sources = self.sources.lock();
        if sources.len() >= SOURCES_MAX && !sources.contains_key(&source) {
            sources.retain(|_, w| now < w.started + WINDOW);
            if sources.len() >= SOURCES_MAX {
                sources.clear();
            }
        }
        let window = sources.entry(source).or_insert_with(|| Window::new(now));
        if now >= window.started + WINDOW {
            *window = Window::new(now);
        }
        window.failures += 1;
        if window.failures == SOURCE_FAILURES_MAX {
            tracing::warn!(%source, failures = SOURCE_FAILURES_MAX, window_secs = WINDOW.as_secs(),
                "too many failed logins from this address: all its logins are refused until the window ends");
        }
        let users = window.by_user.len();
        let count = match window.by_user.get_mut(user) {
            Some(count) => count,
            None if users < USERS_PER_SOURCE_MAX => {
                window.by_user.entry(user.to_string()).or_default()
            }
            None => return,
        };
        *count += 1;
        if *count == FAILURES_MAX {
            tracing::warn!(%source, user, failures = FAILURES_MAX, window_secs = WINDOW.as_secs(),
                "too many failed logins from this address: its logins as this user are refused until the window ends");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_refused_as_a_user_after_its_failures_until_the_window_ends() {
        let throttle = LoginThrottle::default();
        let guesser: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        let start = Instant::now();
        for _ in 0..FAILURES_MAX - 1 {
            throttle.failed_at(guesser, "admin", start);
        }
        assert_eq!(throttle.refused_at(guesser, "admin", start), None);
        throttle.failed_at(guesser, "admin", start);
        assert_eq!(
            throttle.refused_at(guesser, "admin", start),
            Some(WINDOW.as_secs())
        );
        assert_eq!(
            throttle.refused_at(guesser, "alice", start),
            None,
            "per user"
        );
        assert_eq!(
            throttle.refused_at(other, "admin", start),
            None,
            "per source"
        );
        let later = start + WINDOW;
        assert_eq!(
            throttle.refused_at(guesser, "admin", later),
            None,
            "the window ended"
        );
        throttle.failed_at(guesser, "admin", later);
        assert_eq!(
            throttle.refused_at(guesser, "admin", later),
            None,
            "a new window"
        );
    }

    #[test]
    fn a_source_guessing_many_users_is_refused_as_anyone() {
        let throttle = LoginThrottle::default();
        let guesser: IpAddr = "192.0.2.9".parse().unwrap();
        let now = Instant::now();
        for i in 0..SOURCE_FAILURES_MAX {
            throttle.failed_at(guesser, &format!("user{i}"), now);
        }
        assert!(throttle.refused_at(guesser, "somebody-else", now).is_some());
        assert!(throttle.sources.lock()[&guesser].by_user.len() <= USERS_PER_SOURCE_MAX);
    }

    #[test]
    fn the_table_is_bounded() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..SOURCES_MAX as u32 + 10 {
            throttle.failed_at(IpAddr::from(i.to_be_bytes()), "u", now);
        }
        assert!(throttle.sources.lock().len() <= SOURCES_MAX);
    }
}
