//! The kit's named limits and their defaults. Each gateway starts from [`ListenerLimits::default`]
//! and overrides what its configuration names; [`ListenerLimits::validate`] refuses combinations
//! that could not work (a budget smaller than one connection's share, zero connections).
//!
//! Worst case, per listener:
//! - memory held for client traffic (request, response and body bytes charged to the
//!   [`MemoryBudget`](crate::budget::MemoryBudget)) ≤ `memory_budget_bytes`, plus bytes a
//!   connection was allowed to overdraw with
//!   [`ConnectionBudget::charge_now`](crate::budget::ConnectionBudget::charge_now), which a
//!   gateway uses only for bytes it already holds (an encoded response) and bounds by its
//!   in-flight limit;
//! - one connection holds ≤ `connection_share_bytes` before it stops reading from its socket;
//! - connections ≤ `connections_max` (a slot is taken before `accept`); registry entries are the
//!   same number;
//! - frames queued for writing per connection ≤ `outbound_frames_max`, their bytes are inside the
//!   connection's share.
//!
//! Every connection can hold its full share at once only while
//! `connections × connection_share_bytes ≤ memory_budget_bytes`; past that, connections wait for
//! each other at the shared budget (backpressure, never more memory).

use std::time::Duration;

use crate::deadlines::Deadlines;

/// Bytes in a KiB: budgets are counted in KiB so large budgets fit in counters comfortably.
pub const KIB: u64 = 1024;

/// Default open connections per listener (Kafka's and RabbitMQ's order of magnitude).
pub const CONNECTIONS_MAX: usize = 10_000;

/// Every listener's connections from one address, unless set (`set_connections_per_source_max`):
/// unlimited, as Kafka's `max.connections.per.ip` defaults.
static CONNECTIONS_PER_SOURCE_MAX: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(usize::MAX);

/// Sets the connections one address may have open on each listener (the server's
/// `[connections] per_source_max`), before the listeners are made.
pub fn set_connections_per_source_max(max: usize) {
    CONNECTIONS_PER_SOURCE_MAX.store(max.max(1), std::sync::atomic::Ordering::Relaxed);
}

fn connections_per_source_max() -> usize {
    CONNECTIONS_PER_SOURCE_MAX.load(std::sync::atomic::Ordering::Relaxed)
}
/// Default memory budget of one listener: bytes of client traffic held at once.
pub const MEMORY_BUDGET_BYTES: u64 = 512 << 20;
/// Default share of one connection: past it, the connection stops reading its socket. Small
/// enough that a client which pipelines requests and never reads the answers costs at most this
/// (plus one in-flight window of small responses).
pub const CONNECTION_SHARE_BYTES: u64 = 32 << 20;
/// Default frames queued for writing per connection, whatever their size.
pub const OUTBOUND_FRAMES_MAX: usize = 1024;
/// Time allowed from accept to a usable session: TLS plus the protocol's handshake
/// (RabbitMQ: `handshake_timeout`, 10 s).
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// A write that makes no progress for this long closes the connection: a peer that never reads
/// would otherwise pin its queued responses forever.
pub const WRITE_STALL: Duration = Duration::from_secs(30);
/// Default idle deadline: no request and nothing in flight for this long closes the connection
/// (Kafka: `connections.max.idle.ms` = 10 min).
pub const IDLE: Duration = Duration::from_secs(600);
/// How long shutdown waits for connections to say goodbye and finish in-flight work.
pub const DRAIN: Duration = Duration::from_secs(10);
/// First pause after a failed `accept` (EMFILE and friends); doubles up to
/// [`ACCEPT_BACKOFF_MAX`], resets on success. Keeps a failing accept from spinning a core.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause after repeated `accept` failures.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

const _: () = assert!(CONNECTION_SHARE_BYTES <= MEMORY_BUDGET_BYTES);
const _: () = assert!(CONNECTION_SHARE_BYTES >= KIB);
const _: () = assert!(MEMORY_BUDGET_BYTES / KIB <= u32::MAX as u64);
const _: () = assert!(CONNECTIONS_MAX > 0 && OUTBOUND_FRAMES_MAX > 0);
const _: () = assert!(ACCEPT_BACKOFF_MIN.as_nanos() <= ACCEPT_BACKOFF_MAX.as_nanos());

/// The limits of one listener. Every gateway's settings map onto these names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Open connections. A slot is taken before `accept`, so past it new clients wait in the
    /// kernel's backlog instead of costing memory here.
    pub connections_max: usize,
    /// Open connections from one client address (Kafka's `max.connections.per.ip`): past it,
    /// a new connection from that address is closed at once. Keeps one client (a loop that
    /// forgets to close, a slowloris) from taking every slot.
    pub connections_per_source_max: usize,
    /// Bytes of client traffic (requests, responses, message bodies) held at once by all the
    /// listener's connections.
    pub memory_budget_bytes: u64,
    /// Bytes one connection may hold before it stops reading from its socket. A single charge
    /// larger than the share (one big request) takes the whole share and waits for it to be free.
    pub connection_share_bytes: u64,
    /// Frames queued for writing per connection.
    pub outbound_frames_max: usize,
    /// Handshake, write-stall and idle deadlines.
    pub deadlines: Deadlines,
    /// How long shutdown waits for connections to finish, after asking them to say goodbye.
    pub drain: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            connections_max: CONNECTIONS_MAX,
            connections_per_source_max: connections_per_source_max(),
            memory_budget_bytes: MEMORY_BUDGET_BYTES,
            connection_share_bytes: CONNECTION_SHARE_BYTES,
            outbound_frames_max: OUTBOUND_FRAMES_MAX,
            deadlines: Deadlines::default(),
            drain: DRAIN,
        }
    }
}

impl ListenerLimits {
    /// The kit's defaults with a protocol's connection count, write-stall deadline and drain,
    /// and no idle deadline (for protocols with their own keep-alive).
    pub fn with_connections(
        connections_max: usize,
        write_stall: Duration,
        drain: Duration,
    ) -> Self {
        ListenerLimits {
            connections_max,
            deadlines: Deadlines {
                handshake: HANDSHAKE,
                write_stall,
                idle: None,
            },
            drain,
            ..ListenerLimits::default()
        }
    }
}

/// Limits that cannot work together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error(
        "connection share of {share} bytes exceeds the listener's memory budget of {budget} bytes"
    )]
    ShareOverBudget { share: u64, budget: u64 },
    #[error("memory budget of {0} bytes is over the largest supported (4 TiB)")]
    BudgetTooLarge(u64),
}

impl ListenerLimits {
    /// Checks the limits can work together; gateways call it when they start.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.connections_max == 0 {
            return Err(LimitsError::Zero("connections_max"));
        }
        if self.outbound_frames_max == 0 {
            return Err(LimitsError::Zero("outbound_frames_max"));
        }
        if self.connection_share_bytes < KIB {
            return Err(LimitsError::Zero("connection_share_bytes (in KiB)"));
        }
        if self.memory_budget_bytes / KIB > u32::MAX as u64 {
            return Err(LimitsError::BudgetTooLarge(self.memory_budget_bytes));
        }
        if self.connection_share_bytes > self.memory_budget_bytes {
            return Err(LimitsError::ShareOverBudget {
                share: self.connection_share_bytes,
                budget: self.memory_budget_bytes,
            });
        }
        Ok(())
    }

    /// Whether every connection can hold its full share at once (else they wait for each other
    /// at the shared budget, which is still bounded).
    pub fn every_share_fits(&self) -> bool {
        (self.connections_max as u128) * (self.connection_share_bytes as u128)
            <= self.memory_budget_bytes as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ListenerLimits::default().validate(), Ok(()));
    }

    #[test]
    fn impossible_limits_are_refused() {
        let mut l = ListenerLimits {
            connection_share_bytes: 2 << 30,
            ..ListenerLimits::default()
        };
        assert!(matches!(
            l.validate(),
            Err(LimitsError::ShareOverBudget { .. })
        ));
        l.connection_share_bytes = CONNECTION_SHARE_BYTES;
        l.connections_max = 0;
        assert_eq!(l.validate(), Err(LimitsError::Zero("connections_max")));
    }

    #[test]
    fn share_product_is_reported() {
        let l = ListenerLimits {
            connections_max: 16,
            ..ListenerLimits::default()
        };
        assert!(l.every_share_fits());
        assert!(!ListenerLimits::default().every_share_fits());
    }
}
