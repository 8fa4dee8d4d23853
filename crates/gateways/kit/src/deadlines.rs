//! Handshake, write-stall and idle deadlines. A deadline that expires becomes a
//! [`CloseReason`] naming it, so every gateway reports them alike.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::close::{CloseReason, Deadline};
use crate::limits;

/// The deadlines of a listener's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// From accept to a usable session (TLS and the protocol's handshake).
    pub handshake: Duration,
    /// Longest a single write may make no progress.
    pub write_stall: Duration,
    /// No traffic and nothing in flight for this long closes the connection; `None` disables
    /// (protocols with their own keep-alive, like AMQP heartbeats, may prefer that).
    pub idle: Option<Duration>,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            handshake: limits::HANDSHAKE,
            write_stall: limits::WRITE_STALL,
            idle: Some(limits::IDLE),
        }
    }
}

/// Runs `fut` within `limit`; past it, the [`CloseReason`] for the `which` deadline.
pub async fn within<F: Future>(
    which: Deadline,
    limit: Duration,
    fut: F,
) -> Result<F::Output, CloseReason> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| CloseReason::deadline(which, limit))
}

/// An idle deadline that activity pushes back. Poll [`IdleTimer::expired`] in a `select!` and
/// call [`IdleTimer::touch`] on every frame (and while work is in flight).
#[derive(Debug)]
pub struct IdleTimer {
    limit: Option<Duration>,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    /// Starts the timer now; `None` never expires.
    pub fn new(limit: Option<Duration>) -> Self {
        let at = Instant::now() + limit.unwrap_or(Duration::from_secs(86_400 * 365));
        IdleTimer {
            limit,
            sleep: Box::pin(tokio::time::sleep_until(at)),
        }
    }

    /// Activity: the deadline moves to `limit` from now.
    pub fn touch(&mut self) {
        if let Some(limit) = self.limit {
            self.sleep.as_mut().reset(Instant::now() + limit);
        }
    }

    /// Resolves when the connection has been idle for the limit; never if disabled.
    pub async fn expired(&mut self) -> CloseReason {
        match self.limit {
            None => std::future::pending().await,
            Some(limit) => {
                self.sleep.as_mut().await;
                CloseReason::deadline(Deadline::Idle, limit)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::ClosedBy;

    #[tokio::test(start_paused = true)]
    async fn handshake_deadline_names_itself() {
        let r = within(
            Deadline::Handshake,
            Duration::from_secs(10),
            std::future::pending::<()>(),
        )
        .await
        .unwrap_err();
        assert_eq!(r.by, ClosedBy::Deadline(Deadline::Handshake));
        assert_eq!(
            within(Deadline::Handshake, Duration::from_secs(1), async { 7 }).await,
            Ok(7)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timer_is_pushed_back_by_activity() {
        let mut idle = IdleTimer::new(Some(Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_secs(50)).await;
        idle.touch();
        let start = Instant::now();
        let reason = idle.expired().await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        assert_eq!(reason.by, ClosedBy::Deadline(Deadline::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_idle_timer_never_fires() {
        let mut idle = IdleTimer::new(None);
        let fired = tokio::time::timeout(Duration::from_secs(1_000_000), idle.expired()).await;
        assert!(fired.is_err());
    }
}
