//! [`QueueScheduler`]: the one place queue work runs, shared by every queue of a broker, so that
//! an idle queue costs memory and nothing else: no task, no timer, no wake-up.
//!
//! - **Needs attention**: a queue that has something to do (a publish with a consumer waiting, a
//!   new consumer, an ack that frees prefetch room, a due deadline) is put on the ready list by
//!   [`Queue::schedule`]. A queue is on the list at most once (its [`TurnState`] says so), and a
//!   queue is never run by two workers at once: a wake-up during a turn marks it to run again.
//! - **Workers**: [`QUEUE_WORKERS`] tasks pull queues off the list and run one *turn* each
//!   (`Queue::turn`): a bounded amount of work (deliveries, dead letters, expiries), after which
//!   a queue with more to do goes to the back of the list. A busy queue thus cannot starve the
//!   others.
//! - **Timers**: one ordered set of `(deadline, queue key)` for everything a queue waits for in
//!   time (message TTL at the head, `x-expires`, the ack-file fsync and log reclaim). Each queue
//!   has at most one entry, its earliest deadline, recomputed at the end of each turn; one timer
//!   task sleeps until the first and schedules what is due.
//!
//! Workers start on the first schedule from inside a tokio runtime (a broker opened by a
//! blocking test has nothing to deliver) and stop with [`QueueScheduler::stop`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::limits::QUEUE_WORKERS;
use super::runtime::Queue;
use crate::partition::now_ms;

/// Identifies a queue in the timer set; unique per broker incarnation.
pub(crate) type QueueKey = u64;

/// Where a queue is in the scheduler, kept in the queue as an `AtomicU8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TurnState {
    /// Nothing to do; not on the ready list.
    Idle = 0,
    /// On the ready list, waiting for a worker.
    Queued = 1,
    /// A worker runs its turn.
    Running = 2,
    /// A worker runs its turn and something new arrived meanwhile: run it again after.
    RunAgain = 3,
}

impl TurnState {
    fn from_u8(v: u8) -> TurnState {
        match v {
            0 => TurnState::Idle,
            1 => TurnState::Queued,
            2 => TurnState::Running,
            _ => TurnState::RunAgain,
        }
    }
}

/// What a turn leaves behind.
pub(crate) struct TurnOutcome {
    /// The bound per turn was reached with work left: run again after the others.
    pub(crate) more: bool,
    /// When the queue next needs a turn without being woken (ms since the epoch).
    pub(crate) deadline: Option<i64>,
}

#[derive(Default)]
struct Timers {
    by_deadline: BTreeMap<(i64, QueueKey), Weak<Queue>>,
    deadline_of: HashMap<QueueKey, i64>,
}

impl Timers {
    fn clear(&mut self, key: QueueKey) {
        if let Some(old) = self.deadline_of.remove(&key) {
            self.by_deadline.remove(&(old, key));
        }
    }
}

pub struct QueueScheduler {
    ready: Mutex<VecDeque<Arc<Queue>>>,
    ready_signal: Notify,
    timers: Mutex<Timers>,
    /// Rung when the earliest deadline moved earlier.
    timer_signal: Notify,
    next_key: AtomicU64,
    started: Once,
    stop: CancellationToken,
}

impl std::fmt::Debug for QueueScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueScheduler")
            .field("ready", &self.ready.lock().len())
            .field("timers", &self.timers.lock().by_deadline.len())
            .finish()
    }
}

impl QueueScheduler {
    pub fn new() -> Arc<QueueScheduler> {
        Arc::new(QueueScheduler {
            ready: Mutex::new(VecDeque::new()),
            ready_signal: Notify::new(),
            timers: Mutex::new(Timers::default()),
            timer_signal: Notify::new(),
            next_key: AtomicU64::new(1),
            started: Once::new(),
            stop: CancellationToken::new(),
        })
    }

    /// A key for a newly opened queue.
    pub(crate) fn next_key(&self) -> QueueKey {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Stops the workers and the timer task (broker shutdown). Queues scheduled later are not
    /// run.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Queues waiting for a worker, and queues with a deadline: for tests and metrics.
    pub fn pending(&self) -> (usize, usize) {
        (
            self.ready.lock().len(),
            self.timers.lock().by_deadline.len(),
        )
    }

    fn ensure_started(self: &Arc<Self>) {
        if self.started.is_completed() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.started.call_once(|| {
            for _ in 0..QUEUE_WORKERS {
                runtime.spawn(Arc::clone(self).work());
            }
            runtime.spawn(Arc::clone(self).run_timers());
        });
    }

    /// Puts `queue` on the ready list unless it is there or running (see [`TurnState`]).
    pub(crate) fn schedule(self: &Arc<Self>, queue: &Arc<Queue>) {
        let mut state = queue.turn_state.load(Ordering::Acquire);
        loop {
            let next = match TurnState::from_u8(state) {
                TurnState::Idle => TurnState::Queued,
                TurnState::Running => TurnState::RunAgain,
                TurnState::Queued | TurnState::RunAgain => return,
            };
            match queue.turn_state.compare_exchange_weak(
                state,
                next as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if next == TurnState::Queued {
                        self.push(Arc::clone(queue));
                    }
                    return;
                }
                Err(actual) => state = actual,
            }
        }
    }

    fn push(self: &Arc<Self>, queue: Arc<Queue>) {
        self.ready.lock().push_back(queue);
        self.ready_signal.notify_one();
        self.ensure_started();
    }

    /// Sets the queue's one deadline (replacing the previous one); `None` clears it.
    pub(crate) fn set_deadline(self: &Arc<Self>, queue: &Arc<Queue>, at: Option<i64>) {
        let key = queue.key;
        let earlier = {
            let mut timers = self.timers.lock();
            timers.clear(key);
            let Some(at) = at else { return };
            let first = timers.by_deadline.keys().next().map(|&(first, _)| first);
            timers.deadline_of.insert(key, at);
            timers.by_deadline.insert((at, key), Arc::downgrade(queue));
            first.is_none_or(|first| at < first)
        };
        if earlier {
            self.timer_signal.notify_one();
        }
        self.ensure_started();
    }

    /// Forgets the deadline of a closed queue.
    pub(crate) fn clear_deadline(&self, key: QueueKey) {
        self.timers.lock().clear(key);
    }

    /// A worker: runs turns until stopped.
    async fn work(self: Arc<Self>) {
        loop {
            let next = self.ready.lock().pop_front();
            let Some(queue) = next else {
                tokio::select! {
                    _ = self.ready_signal.notified() => continue,
                    _ = self.stop.cancelled() => return,
                }
            };
            if self.stop.is_cancelled() {
                return;
            }
            queue
                .turn_state
                .store(TurnState::Running as u8, Ordering::Release);
            let outcome = queue.turn().await;
            self.set_deadline(&queue, outcome.deadline);
            let again = outcome.more
                || queue
                    .turn_state
                    .compare_exchange(
                        TurnState::Running as u8,
                        TurnState::Idle as u8,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_err();
            if again {
                // More to do, or woken during the turn: to the back of the list.
                queue
                    .turn_state
                    .store(TurnState::Queued as u8, Ordering::Release);
                self.push(queue);
            }
            // Let the reactor's other tasks (connections) run between turns.
            tokio::task::yield_now().await;
        }
    }

    /// The timer task: schedules queues whose deadline has come.
    async fn run_timers(self: Arc<Self>) {
        /// Upper bound on one sleep, so a clock step cannot strand a deadline.
        const TIMER_SLEEP_MAX_MS: i64 = 1_000;
        loop {
            let now = now_ms();
            let (due, first) = {
                let mut timers = self.timers.lock();
                let mut due = Vec::new();
                while let Some((&(at, key), _)) = timers.by_deadline.first_key_value() {
                    if at > now {
                        break;
                    }
                    let weak = timers.by_deadline.remove(&(at, key)).expect("first key");
                    timers.deadline_of.remove(&key);
                    due.push(weak);
                }
                let first = timers.by_deadline.keys().next().map(|&(at, _)| at);
                (due, first)
            };
            for queue in due.iter().filter_map(Weak::upgrade) {
                self.schedule(&queue);
            }
            let sleep_ms = first.map_or(TIMER_SLEEP_MAX_MS, |at| {
                (at - now).clamp(1, TIMER_SLEEP_MAX_MS)
            });
            tokio::select! {
                _ = self.timer_signal.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }
}
