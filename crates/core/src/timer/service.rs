//! [`TimerService`]: a [`TimerStore`] on its own thread, with an async face.
//!
//! The thread loops: take every queued request (schedules, fired marks), write them all, hand
//! out what is due, then one fdatasync for the whole group before answering the schedules — so
//! many concurrent schedules share a sync. Then it sleeps until the next due time, or until a
//! request arrives (a new, earlier timer wakes it). Fired marks alone are synced at most every
//! `MARK_SYNC_INTERVAL` (100 ms): losing them only refires. Due timers go out on a bounded channel; when
//! the consumer is slow the channel fills and the thread keeps what it took (at most one batch)
//! and stops taking more, while still serving schedules. The consumer delivers each timer and
//! then calls [`TimerService::fired`]; one it never confirms fires again after a restart.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{DueTimer, TimerId, TimerStore};
use crate::error::{CoreError, Result};

/// Schedules admitted and not yet answered; more wait (asynchronously) for a slot. Each holds
/// its payload, so with the gateway's message size limit this bounds the bytes queued here.
pub const SCHEDULE_REQUESTS_MAX: usize = 4_096;
/// Default capacity of the due-timer channel.
pub const DUE_CHANNEL_DEFAULT: usize = 4_096;
/// Timers taken from the store per step: the most the thread holds when the channel is full.
const FIRE_BATCH: usize = 1_024;
/// Longest sleep without a due time, to notice a wall-clock jump or a stop.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Fired marks alone are synced at most this often: a mark lost in a crash only makes its timer
/// fire again, and a sync per firing step (many per millisecond at 50k timers/s) would delay
/// the next due timers by an fdatasync each time. Schedules are synced at once.
const MARK_SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Retry interval while the due channel is full.
const FULL_CHANNEL_WAIT: Duration = Duration::from_millis(1);

enum Request {
    Schedule {
        due_ms: i64,
        payload: Bytes,
        reply: oneshot::Sender<Result<TimerId>>,
        _permit: OwnedSemaphorePermit,
    },
    Fired(Vec<TimerId>),
}

#[derive(Default)]
struct Queue {
    requests: Vec<Request>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Timers scheduled and not fired, as of the thread's last pass (the management API's
    /// delayed-message count).
    pending: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn push(&self, request: Request) {
        self.queue.lock().requests.push(request);
        self.wake.notify_one();
    }
}

/// Durable timers for async callers. Dropping it stops the thread and waits for its final sync
/// and checkpoint; [`shutdown`](Self::shutdown) does the same without blocking the caller.
pub struct TimerService {
    shared: Arc<Shared>,
    admission: Arc<Semaphore>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl TimerService {
    /// Starts the thread that owns `store`; due timers arrive on the returned receiver, which
    /// holds at most `due_capacity` of them.
    pub fn start(
        store: TimerStore,
        due_capacity: usize,
    ) -> Result<(TimerService, mpsc::Receiver<DueTimer>)> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            pending: std::sync::atomic::AtomicU64::new(store.pending()),
        });
        let (due_tx, due_rx) = mpsc::channel(due_capacity.max(1));
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("porter-timers".into())
            .spawn(move || run(store, &thread_shared, due_tx))
            .map_err(CoreError::Disk)?;
        Ok((
            TimerService {
                shared,
                admission: Arc::new(Semaphore::new(SCHEDULE_REQUESTS_MAX)),
                thread: Mutex::new(Some(thread)),
            },
            due_rx,
        ))
    }

    /// Files a timer; resolves once it is durable (fdatasync'ed with its group).
    pub async fn schedule(&self, due_ms: i64, payload: Bytes) -> Result<TimerId> {
        let permit = self
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        self.shared.push(Request::Schedule {
            due_ms,
            payload,
            reply,
            _permit: permit,
        });
        answer.await.map_err(|_| CoreError::ShuttingDown)?
    }

    /// Timers scheduled and not yet fired (as of the timer thread's last pass).
    pub fn pending(&self) -> u64 {
        self.shared
            .pending
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// These due timers were delivered: marked fired, durably with the thread's next sync.
    pub fn fired(&self, ids: Vec<TimerId>) {
        if !ids.is_empty() {
            self.shared.push(Request::Fired(ids));
        }
    }

    /// Stops the thread after a final sync and checkpoint, and waits for it.
    pub async fn shutdown(&self) {
        self.stop();
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn stop(&self) {
        self.shared.queue.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for TimerService {
    /// Stops the thread and waits for its final sync and checkpoint (a few ms; nothing after
    /// [`TimerService::shutdown`]), so a store reopened in the same directory right after (a
    /// broker restarted in-process, as tests do) never races the old thread's files.
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

fn run(mut store: TimerStore, shared: &Shared, due_tx: mpsc::Sender<DueTimer>) {
    let mut held: VecDeque<DueTimer> = VecDeque::new();
    let mut replies = Vec::new();
    // Fired marks written and not yet synced, since when.
    let mut marks_since: Option<std::time::Instant> = None;
    loop {
        let (requests, stop) = {
            let mut queue = shared.queue.lock();
            (std::mem::take(&mut queue.requests), queue.stop)
        };
        for request in requests {
            match request {
                Request::Schedule {
                    due_ms,
                    payload,
                    reply,
                    _permit,
                } => match store.schedule(due_ms, &payload) {
                    Ok(id) => replies.push((reply, id)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Request::Fired(ids) => {
                    marks_since.get_or_insert_with(std::time::Instant::now);
                    if let Err(e) = store.mark_fired(&ids) {
                        tracing::error!(error = %e, "timer store: marking timers fired failed");
                    }
                }
            }
        }
        let fired = fire(&mut store, &mut held, &due_tx);
        shared
            .pending
            .store(store.pending(), std::sync::atomic::Ordering::Relaxed);
        let marks_due = marks_since.is_some_and(|t| stop || t.elapsed() >= MARK_SYNC_INTERVAL);
        if !replies.is_empty() || marks_due {
            marks_since = None;
            match store.sync() {
                Ok(()) => {
                    for (reply, id) in replies.drain(..) {
                        let _ = reply.send(Ok(id));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "timer store: sync failed");
                    for (reply, _) in replies.drain(..) {
                        let _ =
                            reply.send(Err(CoreError::Disk(std::io::Error::other(e.to_string()))));
                    }
                }
            }
        }
        if stop || fired == Fired::Closed {
            break;
        }
        let marks_wait = marks_since.map_or(IDLE_WAIT, |t| {
            MARK_SYNC_INTERVAL.saturating_sub(t.elapsed())
        });
        let wait = if fired == Fired::Failed {
            IDLE_WAIT // a disk error: retry, without spinning on it
        } else if !held.is_empty() {
            FULL_CHANNEL_WAIT
        } else if store.in_flight() >= store.config().in_flight_max {
            IDLE_WAIT // until the consumer confirms some (`fired` wakes us)
        } else {
            match store.next_due_ms() {
                Some(due) => until(due).min(IDLE_WAIT),
                None => IDLE_WAIT,
            }
        };
        let wait = wait.min(marks_wait);
        let mut queue = shared.queue.lock();
        if queue.requests.is_empty() && !queue.stop && !wait.is_zero() {
            shared.wake.wait_for(&mut queue, wait);
        }
    }
    if let Err(e) = store.close() {
        tracing::error!(error = %e, "timer store: close failed");
    }
}

#[derive(PartialEq, Eq)]
enum Fired {
    /// Nothing more due now, or the channel is full.
    Done,
    /// The receiver is gone: the service is over.
    Closed,
    /// Reading the store failed.
    Failed,
}

/// Hands out what is due: first what the channel refused last time, then fresh batches until
/// nothing is due or the channel is full.
fn fire(
    store: &mut TimerStore,
    held: &mut VecDeque<DueTimer>,
    due_tx: &mpsc::Sender<DueTimer>,
) -> Fired {
    loop {
        while let Some(timer) = held.pop_front() {
            match due_tx.try_send(timer) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(timer)) => {
                    held.push_front(timer);
                    return Fired::Done;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Fired::Closed,
            }
        }
        match store.take_due(super::now_ms(), FIRE_BATCH) {
            Ok(batch) if batch.is_empty() => return Fired::Done,
            Ok(batch) => held.extend(batch),
            Err(e) => {
                tracing::error!(error = %e, "timer store: reading due timers failed");
                return Fired::Failed;
            }
        }
    }
}

/// Time from now until the wall clock reaches `due_ms` (zero if it has).
fn until(due_ms: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let due = Duration::from_millis(due_ms.max(0) as u64);
    due.saturating_sub(now)
}
