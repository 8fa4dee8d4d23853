//! A once-per-second progress line on stderr while a run goes (produced, consumed, their current
//! rates, errors; queue depth when a scenario polls it), so a long or stuck run is visible before
//! its report. Both drivers count into one [`Progress`]; `--quiet` turns the line off.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the line is printed.
const PERIOD: Duration = Duration::from_secs(1);

/// Counters the drivers bump as they go. Relaxed atomics: the line is a view, not a result.
#[derive(Debug)]
pub struct Progress {
    produced: AtomicU64,
    consumed: AtomicU64,
    errors: AtomicU64,
    /// Queue depth last seen, or -1 when the scenario does not poll it.
    depth: AtomicI64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            produced: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            depth: AtomicI64::new(-1),
        }
    }
}

/// One reading of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub produced: u64,
    pub consumed: u64,
    pub errors: u64,
    pub depth: Option<u64>,
}

impl Progress {
    pub fn produced(&self, n: u64) {
        self.produced.fetch_add(n, Ordering::Relaxed);
    }

    pub fn consumed(&self, n: u64) {
        self.consumed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn error(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn set_depth(&self, depth: u64) {
        self.depth
            .store(i64::try_from(depth).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            produced: self.produced.load(Ordering::Relaxed),
            consumed: self.consumed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            depth: u64::try_from(self.depth.load(Ordering::Relaxed)).ok(),
        }
    }
}

/// The progress line for `now` after `elapsed`, with rates over the `seconds` since `before`.
pub fn line(elapsed: Duration, now: Snapshot, before: Snapshot, seconds: f64) -> String {
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds.max(f64::EPSILON);
    let mut line = format!(
        "[{:>4}s] produced {:>10} ({:>8.0}/s)  consumed {:>10} ({:>8.0}/s)  errors {}",
        elapsed.as_secs(),
        now.produced,
        rate(now.produced, before.produced),
        now.consumed,
        rate(now.consumed, before.consumed),
        now.errors
    );
    if let Some(depth) = now.depth {
        line.push_str(&format!("  depth {depth}"));
    }
    line
}

/// Prints the line every [`PERIOD`] on its own thread until dropped (then stops at once).
pub struct Reporter {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts printing `progress`; with `quiet` nothing is printed and no thread is started.
    pub fn start(progress: Arc<Progress>, quiet: bool) -> Reporter {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = (!quiet).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let (mut before, mut at) = (progress.snapshot(), started);
                let (lock, signal) = &*stop;
                let mut stopped = lock.lock().expect("progress lock");
                loop {
                    let (guard, timeout) = signal
                        .wait_timeout_while(stopped, PERIOD, |stop| !*stop)
                        .expect("progress lock");
                    stopped = guard;
                    if !timeout.timed_out() {
                        return;
                    }
                    let now = progress.snapshot();
                    let seconds = at.elapsed().as_secs_f64();
                    eprintln!("{}", line(started.elapsed(), now, before, seconds));
                    (before, at) = (now, Instant::now());
                }
            })
        });
        Reporter { stop, thread }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let (lock, signal) = &*self.stop;
        *lock.lock().expect("progress lock") = true;
        signal.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_counts_and_rates() {
        let before = Snapshot {
            produced: 1000,
            consumed: 500,
            ..Snapshot::default()
        };
        let now = Snapshot {
            produced: 3000,
            consumed: 1500,
            errors: 2,
            depth: None,
        };
        let l = line(Duration::from_secs(7), now, before, 2.0);
        assert!(l.starts_with("[   7s]"), "{l}");
        assert!(l.contains("produced       3000 (    1000/s)"), "{l}");
        assert!(l.contains("consumed       1500 (     500/s)"), "{l}");
        assert!(l.ends_with("errors 2"), "{l}");
        let with_depth = Snapshot {
            depth: Some(42),
            ..now
        };
        assert!(line(Duration::ZERO, with_depth, before, 1.0).ends_with("depth 42"));
    }

    #[test]
    fn counters_add_up() {
        let p = Progress::default();
        p.produced(3);
        p.consumed(2);
        p.error(1);
        assert_eq!(p.snapshot().depth, None);
        p.set_depth(9);
        let s = p.snapshot();
        assert_eq!(
            (s.produced, s.consumed, s.errors, s.depth),
            (3, 2, 1, Some(9))
        );
    }

    #[test]
    fn reporter_stops_promptly_when_dropped() {
        let started = Instant::now();
        drop(Reporter::start(Arc::new(Progress::default()), false));
        drop(Reporter::start(Arc::new(Progress::default()), true));
        assert!(started.elapsed() < PERIOD);
    }
}
