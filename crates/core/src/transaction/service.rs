//! [`TransactionService`]: the async face of the [`TransactionStore`].
//!
//! The store does blocking file I/O, so it lives on an OS thread of its own (never on the
//! reactor), fed by a queue bounded by a semaphore: a caller awaits room, not a thread. The
//! thread drains what is queued, applies it, makes it durable with one fdatasync and only then
//! answers every caller in the batch (group commit: a burst of N prepares costs one fsync, not
//! N). Between batches it sleeps until the next check falls due (or a command arrives), emits
//! the due checks on a bounded channel and records them, and drops the messages that used up
//! their checks.
//!
//! Check policy: the first check falls due `check_after_ms` after the prepare; after check `n`
//! the next is `check_interval_ms × 2^(n-1)` later, capped at `check_interval_max_ms`; a
//! message still pending when check `checks_max + 1` would fall due is dropped (rolled back)
//! with a warning: its producer had `checks_max` chances and the last interval to answer.
//!
//! When the gateway does not drain the checks channel, the thread retries after
//! [`CHECK_RETRY_MS`] rather than counting a check nobody delivered.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{
    wall_clock_ms, CheckDue, HalfMessage, Resolution, StoreLimits, TransactionStore,
    TRANSACTION_CHECKS_MAX, TRANSACTION_CHECKS_QUEUE_MAX,
    TRANSACTION_CHECK_INTERVAL_MAX_MS_DEFAULT, TRANSACTION_CHECK_INTERVAL_MS_DEFAULT,
    TRANSACTION_QUEUE_MAX,
};
use crate::error::{CoreError, Result};

/// How soon the thread tries again when the checks channel was full.
pub const CHECK_RETRY_MS: i64 = 100;
/// Commands applied per fsync at most, so one batch's callers are answered promptly.
const BATCH_MAX: usize = 256;
/// Checks read from the store per round (each reads its payload back).
const CHECKS_PER_ROUND: usize = 64;

/// The service's settings (broker settings; the defaults are the named limits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionConfig {
    pub limits: StoreLimits,
    /// Checks per half message before it is dropped.
    pub checks_max: u32,
    /// The interval after the first check (it doubles after each further check)...
    pub check_interval_ms: i64,
    /// ...up to this.
    pub check_interval_max_ms: i64,
    /// Commands queued for the store thread at most.
    pub queue_max: usize,
    /// Due checks queued for the gateway at most.
    pub checks_queue_max: usize,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            limits: StoreLimits::default(),
            checks_max: TRANSACTION_CHECKS_MAX,
            check_interval_ms: TRANSACTION_CHECK_INTERVAL_MS_DEFAULT,
            check_interval_max_ms: TRANSACTION_CHECK_INTERVAL_MAX_MS_DEFAULT,
            queue_max: TRANSACTION_QUEUE_MAX,
            checks_queue_max: TRANSACTION_CHECKS_QUEUE_MAX,
        }
    }
}

impl TransactionConfig {
    /// When the check after check number `attempt` (1-based) falls due, from `now_ms`.
    pub(super) fn next_check_ms(&self, now_ms: i64, attempt: u32) -> i64 {
        let base = self.check_interval_ms.max(1);
        let interval = base
            .checked_mul(
                1i64.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(i64::MAX),
            )
            .unwrap_or(i64::MAX)
            .min(self.check_interval_max_ms.max(base));
        now_ms.saturating_add(interval)
    }
}

enum Command {
    Prepare(HalfMessage, oneshot::Sender<Result<()>>),
    Resolve(
        String,
        Resolution,
        oneshot::Sender<Result<Option<HalfMessage>>>,
    ),
    Half(String, oneshot::Sender<Result<Option<HalfMessage>>>),
    /// Tests: hold the thread until the sender is dropped, so commands pile up.
    #[cfg(test)]
    Pause(std_mpsc::Receiver<()>),
}

/// The transaction store on its own thread. Cheap to share behind an `Arc`; dropping the last
/// handle lets the thread finish what is queued and exit.
pub struct TransactionService {
    commands: std_mpsc::Sender<(Command, OwnedSemaphorePermit)>,
    thread: std::thread::JoinHandle<()>,
    room: Arc<Semaphore>,
    syncs: Arc<AtomicU64>,
    pending: Arc<AtomicU64>,
}

impl TransactionService {
    /// Opens the store in `dir` (blocking: replays `half.log`; call at startup or from
    /// `spawn_blocking`) and starts its thread. Returns the service and the channel on which
    /// due checks arrive; the gateway asks each check's producer group and answers through
    /// [`Self::resolve`].
    pub fn start(
        dir: &Path,
        config: TransactionConfig,
    ) -> Result<(TransactionService, mpsc::Receiver<CheckDue>)> {
        let store = TransactionStore::open_with(dir, config.limits.clone())?;
        let (commands, receiver) = std_mpsc::channel();
        let (checks, checks_rx) = mpsc::channel(config.checks_queue_max.max(1));
        let syncs = Arc::new(AtomicU64::new(store.syncs()));
        let pending = Arc::new(AtomicU64::new(store.pending_len() as u64));
        let worker = Worker {
            store,
            config: config.clone(),
            receiver,
            checks,
            syncs: syncs.clone(),
            pending: pending.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("porter-transactions".into())
            .spawn(move || worker.run())
            .map_err(CoreError::Disk)?;
        let service = TransactionService {
            commands,
            thread,
            room: Arc::new(Semaphore::new(config.queue_max.max(1))),
            syncs,
            pending,
        };
        Ok((service, checks_rx))
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let permit = self
            .room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send((make(reply), permit))
            .map_err(|_| CoreError::ShuttingDown)?;
        answer.await.map_err(|_| CoreError::ShuttingDown)
    }

    /// Records a half message; returns once it is durable (fdatasync). See
    /// [`TransactionStore::prepare`] for what is refused.
    pub async fn prepare(&self, half: HalfMessage) -> Result<()> {
        self.call(|reply| Command::Prepare(half, reply)).await?
    }

    /// Commits or rolls back `id`; returns once that is durable. On a commit, the half message
    /// to publish; `None` on a rollback or for an id not pending (unknown, already resolved,
    /// dropped after its checks).
    ///
    /// Resolving first and publishing after means a crash in between loses the commit
    /// (at most once). For at least once, read it with [`Self::half`], publish, then resolve:
    /// a crash in between leaves it pending, and the producer's answer to the next check
    /// publishes it again.
    pub async fn resolve(&self, id: String, resolution: Resolution) -> Result<Option<HalfMessage>> {
        self.call(|reply| Command::Resolve(id, resolution, reply))
            .await?
    }

    /// A pending half message, or `None`.
    pub async fn half(&self, id: String) -> Result<Option<HalfMessage>> {
        self.call(|reply| Command::Half(id, reply)).await?
    }

    /// Stops the thread once it has answered what is queued, and waits for it (blocking: call
    /// from `spawn_blocking` or at shutdown). Calls still in flight elsewhere get
    /// `ShuttingDown`. Dropping the service stops the thread the same way, without waiting.
    pub fn shutdown(self) {
        let TransactionService {
            commands, thread, ..
        } = self;
        drop(commands);
        if thread.join().is_err() {
            tracing::error!("the transaction thread panicked");
        }
    }

    /// Pending half messages, as of the thread's last batch (so including this caller's
    /// completed prepares and resolves).
    pub fn pending_len(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Fsyncs the store has made since it was opened.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Tests: holds the thread until the returned sender is dropped.
    #[cfg(test)]
    pub(super) async fn pause(&self) -> std_mpsc::Sender<()> {
        let (release, wait) = std_mpsc::channel();
        let permit = self.room.clone().acquire_owned().await.unwrap();
        self.commands.send((Command::Pause(wait), permit)).unwrap();
        release
    }

    /// Tests: how many more commands fit in the queue.
    #[cfg(test)]
    pub(super) fn room(&self) -> usize {
        self.room.available_permits()
    }
}

struct Worker {
    store: TransactionStore,
    config: TransactionConfig,
    receiver: std_mpsc::Receiver<(Command, OwnedSemaphorePermit)>,
    checks: mpsc::Sender<CheckDue>,
    syncs: Arc<AtomicU64>,
    pending: Arc<AtomicU64>,
}

/// A caller to answer once the batch is durable.
enum Waiter {
    Prepare(oneshot::Sender<Result<()>>),
    Resolve(
        oneshot::Sender<Result<Option<HalfMessage>>>,
        Option<HalfMessage>,
    ),
}

impl Worker {
    fn run(mut self) {
        // While the checks channel is full: when to try again.
        let mut retry_at: Option<i64> = None;
        loop {
            let wake_at = retry_at.or(self.store.next_check_ms());
            let first = match wake_at {
                None => self.receiver.recv().ok(),
                Some(at) => {
                    let wait = at.saturating_sub(wall_clock_ms()).max(0) as u64;
                    match self.receiver.recv_timeout(Duration::from_millis(wait)) {
                        Ok(command) => Some(command),
                        Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            if first.is_none() && wake_at.is_none() {
                return; // every handle dropped
            }
            let mut batch = Vec::new();
            batch.extend(first);
            while batch.len() < BATCH_MAX {
                match self.receiver.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            self.apply(batch);
            let now = wall_clock_ms();
            if retry_at.is_none_or(|at| at <= now) {
                retry_at = self.run_checks(now);
                // Make the checks and drops durable, and compact if due (a no-op when the
                // round wrote nothing).
                if let Err(e) = self.store.sync() {
                    tracing::error!(error = %e, "transaction checks: cannot sync the log");
                }
                self.syncs.store(self.store.syncs(), Ordering::Relaxed);
            }
            self.pending
                .store(self.store.pending_len() as u64, Ordering::Relaxed);
        }
    }

    /// Applies a batch, syncs once, answers.
    fn apply(&mut self, batch: Vec<(Command, OwnedSemaphorePermit)>) {
        let mut waiters = Vec::with_capacity(batch.len());
        for (command, permit) in batch {
            drop(permit);
            match command {
                Command::Prepare(half, reply) => match self.store.prepare(half) {
                    Ok(()) => waiters.push(Waiter::Prepare(reply)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Command::Resolve(id, resolution, reply) => {
                    match self.store.resolve(&id, resolution) {
                        Ok(half) => waiters.push(Waiter::Resolve(reply, half)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Command::Half(id, reply) => {
                    let _ = reply.send(self.store.half(&id));
                }
                #[cfg(test)]
                Command::Pause(wait) => {
                    let _ = wait.recv();
                }
            }
        }
        if waiters.is_empty() {
            return;
        }
        let synced = self.store.sync();
        // Before answering, so a caller reads counts that include its own call.
        self.syncs.store(self.store.syncs(), Ordering::Relaxed);
        self.pending
            .store(self.store.pending_len() as u64, Ordering::Relaxed);
        for waiter in waiters {
            let failed = || {
                let e = synced.as_ref().err().map(ToString::to_string);
                CoreError::Disk(std::io::Error::other(e.unwrap_or_default()))
            };
            match waiter {
                Waiter::Prepare(reply) => {
                    let _ = reply.send(if synced.is_ok() {
                        Ok(())
                    } else {
                        Err(failed())
                    });
                }
                Waiter::Resolve(reply, half) => {
                    let _ = reply.send(if synced.is_ok() {
                        Ok(half)
                    } else {
                        Err(failed())
                    });
                }
            }
        }
    }

    /// Emits due checks and drops exhausted messages. Returns when to retry if the channel is
    /// full.
    fn run_checks(&mut self, now: i64) -> Option<i64> {
        loop {
            let due = match self.store.due_checks(now, CHECKS_PER_ROUND) {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error = %e, "transaction checks: cannot read the log");
                    return Some(now + CHECK_RETRY_MS);
                }
            };
            if due.is_empty() {
                return None;
            }
            for check in due {
                let result = if check.attempt > self.config.checks_max {
                    tracing::warn!(
                        id = %check.id,
                        producer_group = %check.producer_group,
                        topic = %check.topic,
                        checks = check.attempt - 1,
                        "transactional message dropped: its producer never committed or rolled back"
                    );
                    self.store.drop_unanswered(&check.id).map(drop)
                } else {
                    let id = check.id.clone();
                    let attempt = check.attempt;
                    match self.checks.try_send(check) {
                        Ok(()) => self
                            .store
                            .record_check(&id, self.config.next_check_ms(now, attempt)),
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            return Some(now + CHECK_RETRY_MS);
                        }
                        // Nobody listens: keep the messages pending, look again later.
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            return Some(now + 1_000);
                        }
                    }
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "transaction checks: cannot write the log");
                    return Some(now + CHECK_RETRY_MS);
                }
            }
        }
    }
}
