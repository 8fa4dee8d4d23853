//! A queue's delivery state, after AMQP 0-9-1 as RabbitMQ implements it. A queue is a log
//! (porter-storage, offsets 0, 1, 2, ...) plus this state: which offsets are ready, which are
//! delivered and unacknowledged (to whom, under which delivery tag), and which are settled (acked
//! or dropped) and may be reclaimed. Pure logic: time comes in as `now_ms`, nothing here does I/O.
//!
//! - [`state`]: [`QueueState`], consumers, fair dispatch, ack/nack/reject/recover, restore.
//! - [`range_set`]: [`RangeSet`], settled offsets as compact ranges.
//! - [`limits`]: the named bounds.
//! - [`runtime`]: [`Queue`], a running queue over its log and ack files.
//! - [`scheduler`]: [`QueueScheduler`], the workers and timers all queues share.
//! - [`cache_budget`]: [`CacheBudget`](cache_budget::CacheBudget), the bodies all queues keep in memory.
//! - [`error`]: [`QueueError`], each variant documented with its AMQP reply code.
//!
//! Durability: every settlement and every advance of the delivered watermark is emitted as an
//! [`AckChange`]; the caller appends them to a durable ack file, folds them with
//! [`PersistedAcks::apply`] (also for compaction snapshots) and rebuilds with
//! [`QueueState::restore`] after a restart.

pub mod ack_log;
pub mod api;
pub mod cache_budget;
pub mod dead_letter;
pub mod definition;
mod delivery;
pub mod error;
pub mod limits;
pub mod range_set;
pub mod runtime;
pub mod scheduler;
pub mod state;

#[cfg(test)]
mod tests;

pub use definition::{InvalidArgument, Overflow, QueueArguments, QueueDefinition};
pub use error::QueueError;
pub use range_set::RangeSet;
pub use runtime::Queue;
pub use scheduler::QueueScheduler;
pub use state::{AckChange, Delivery, PersistedAcks, QueueState, SettleOutcome};
