//! Transactional messages as RocketMQ has them: a producer sends a *half* message, which no
//! consumer sees; runs its local transaction; then commits (the message is published, once) or
//! rolls back (it is dropped). A producer that says nothing within a while is asked
//! ("check-back") with growing intervals, and after [`TRANSACTION_CHECKS_MAX`] unanswered
//! checks the message is dropped and a warning logged, as RocketMQ does.
//!
//! Protocol-neutral: the payload is opaque bytes (the gateway's encoded message), so any
//! protocol with a prepare/commit/rollback shape can use it.
//!
//! - [`TransactionStore`]: the durable pending set (`half.log`), blocking, single-threaded.
//! - [`TransactionService`]: its async face; runs the store on a thread of its own, groups
//!   fsyncs, and emits [`CheckDue`]s when checks fall due.
//!
//! # Worst cases
//!
//! **Memory.** Per pending message the index holds its id twice behind one `Arc` (map key and
//! schedule entry) and ~40 B of position and schedule: with ids of at most
//! [`TRANSACTION_NAME_BYTES_MAX`] bytes, under ~450 B; `TRANSACTIONS_PENDING_MAX` × 450 B ≈
//! 43 MiB at the default 100,000 (typical ids of 32 bytes: ~20 MiB). Payloads stay on disk.
//! Commands waiting for the store thread: [`TRANSACTION_QUEUE_MAX`], each holding at most one
//! payload ([`HALF_PAYLOAD_BYTES_MAX`], admitted by the gateway's memory budget); checks waiting
//! for the gateway: [`TRANSACTION_CHECKS_QUEUE_MAX`] payloads.
//!
//! **Disk.** The live records are at most [`TRANSACTIONS_PENDING_BYTES_MAX`] (1 GiB) of
//! payloads plus ~1 KiB of names per message; dead records are compacted away once the file
//! passes [`HALF_LOG_COMPACT_BYTES`] and is twice the live records, so the file stays under
//! max(64 MiB, 2 × live) plus one sync's worth of writes.

mod record;
mod service;
mod store;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use service::{TransactionConfig, TransactionService};
pub use store::{StoreLimits, TransactionStore};

/// Pending half messages at most; a prepare beyond is refused (`LimitExceeded`).
pub const TRANSACTIONS_PENDING_MAX: usize = 100_000;
/// Payload bytes of all pending half messages at most (they are on disk, not in memory).
pub const TRANSACTIONS_PENDING_BYTES_MAX: u64 = 1 << 30;
/// One half message's payload at most: RocketMQ's default `maxMessageSize`, 4 MiB.
pub const HALF_PAYLOAD_BYTES_MAX: usize = 4 << 20;
/// A message id, producer group or topic at most, in bytes (RocketMQ's are far shorter).
pub const TRANSACTION_NAME_BYTES_MAX: usize = 255;
/// `half.log` is compacted past this size (when more than half of it is dead records).
pub const HALF_LOG_COMPACT_BYTES: u64 = 64 << 20;
/// Checks of one half message before it is dropped: RocketMQ's `transactionCheckMax`.
pub const TRANSACTION_CHECKS_MAX: u32 = 15;
/// When the first check falls due after a prepare, by default: RocketMQ's
/// `transactionTimeOut` (6 s). A message can carry its own ([`HalfMessage::check_after_ms`]).
pub const TRANSACTION_CHECK_AFTER_MS_DEFAULT: i64 = 6_000;
/// The interval after the first check; it doubles after each further check...
pub const TRANSACTION_CHECK_INTERVAL_MS_DEFAULT: i64 = 6_000;
/// ...up to this: RocketMQ's `transactionCheckInterval` (30 s). With the defaults, 15 checks
/// span about 6 minutes: 6 s, then 6, 12, 24 and 30 s apart.
pub const TRANSACTION_CHECK_INTERVAL_MAX_MS_DEFAULT: i64 = 30_000;
/// Commands (prepares, resolves) queued for the store thread before callers wait for room.
pub const TRANSACTION_QUEUE_MAX: usize = 1024;
/// Due checks queued for the gateway; when full, the store thread retries shortly instead of
/// counting checks nobody made. Each holds its payload, so this is kept small: at most
/// 64 × [`HALF_PAYLOAD_BYTES_MAX`] = 256 MiB with every payload at the maximum, typically a
/// few KiB; the gateway drains it as fast as it can write to producers.
pub const TRANSACTION_CHECKS_QUEUE_MAX: usize = 64;

/// A half message: published on commit, never seen before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HalfMessage {
    /// The message id the producer will commit or roll back by (unique per message).
    pub id: String,
    /// Whom to ask: checks go to a producer of this group.
    pub producer_group: String,
    pub topic: String,
    /// The message as the gateway will publish it, opaque here.
    pub payload: Bytes,
    /// Wall-clock milliseconds (Unix epoch) at the prepare.
    pub prepared_ms: i64,
    /// How long after `prepared_ms` the first check falls due (RocketMQ's per-message
    /// `CHECK_IMMUNITY_TIME_IN_SECONDS`, in ms), usually [`TRANSACTION_CHECK_AFTER_MS_DEFAULT`].
    pub check_after_ms: i64,
}

/// A producer's verdict on its local transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    Commit,
    Rollback,
}

/// A pending half message whose producer should be asked for its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckDue {
    pub id: String,
    pub producer_group: String,
    pub topic: String,
    pub payload: Bytes,
    /// 1 for the first check, up to the configured maximum.
    pub attempt: u32,
}

/// Wall-clock milliseconds since the Unix epoch, as [`HalfMessage::prepared_ms`] wants.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
