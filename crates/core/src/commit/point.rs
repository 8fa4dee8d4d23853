//! [`CommitPoint`]: a log's committed offset, published by its writer thread on a watch that
//! any number of tasks `.await`. Waiting costs a task, never a thread.

use std::sync::Arc;

use porter_storage::Offset;
use tokio::sync::watch;

use crate::error::{CoreError, Result};

/// What the writer last published for a log.
#[derive(Clone, Debug)]
pub(super) struct CommitState {
    /// Offsets below this are committed.
    pub committed: Offset,
    /// Set once nothing past `committed` will ever commit: waiters beyond it fail, writes are
    /// refused.
    pub halted: Option<Halt>,
}

/// Why a log's commit point stopped for good.
#[derive(Clone, Debug)]
pub(super) enum Halt {
    /// The log was closed (topic or queue deleted, broker stopping) with writes uncommitted.
    Closed,
    /// An fsync failed. The kernel may have dropped the dirty pages, so a later successful
    /// fsync would prove nothing (PostgreSQL's "fsyncgate"): the log takes no writes until the
    /// broker restarts and recovery checks its tail.
    SyncFailed(Arc<str>),
}

/// A log's committed offset and its changes.
#[derive(Clone, Debug)]
pub struct CommitPoint {
    state: watch::Receiver<CommitState>,
    /// For errors: which log failed.
    dir: Arc<std::path::Path>,
}

impl CommitPoint {
    pub(super) fn new(state: watch::Receiver<CommitState>, dir: Arc<std::path::Path>) -> Self {
        CommitPoint { state, dir }
    }

    /// Offsets below this are committed.
    pub fn committed(&self) -> Offset {
        self.state.borrow().committed
    }

    /// Returns once every offset below `end` is committed. Fails if the log's fsync failed
    /// before that (the data must not be acknowledged), or if its writer stopped (shutdown).
    pub async fn wait(&self, end: Offset) -> Result<()> {
        let mut state = self.state.clone();
        let reached = state
            .wait_for(|s| s.committed >= end || s.halted.is_some())
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        if reached.committed >= end {
            return Ok(());
        }
        let halt = reached.halted.clone().unwrap_or(Halt::Closed);
        Err(halt.error(&self.dir))
    }
}

impl Halt {
    /// The error a waiter past the commit point, or a refused write, gets.
    pub(super) fn error(&self, dir: &std::path::Path) -> CoreError {
        match self {
            Halt::Closed => CoreError::Closed,
            Halt::SyncFailed(reason) => CoreError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other(format!(
                    "an fsync of this log failed ({reason}); it takes no writes until a restart"
                )),
            },
        }
    }
}
