//! What "committed" means for a log: decided here and nowhere else.
//!
//! Storage writes and syncs; it does not know when data may be acknowledged or shown to
//! readers. The writer thread asks [`CommitRule::of`] after each batch of jobs and publishes the
//! offset the rule allows. Raft replication plugs in here: a replicated log gets a rule like
//! `Quorum`, under which the writer publishes its local durable end to the replication layer,
//! and the committed offset becomes the highest offset a quorum has made durable (that layer
//! then calls `Log::commit_to` and the log's commit point). Nothing else in the broker changes:
//! gateways already wait on the commit point, never on an fsync.

use porter_storage::{FlushMode, LogConfig};

/// When written data counts as committed: acknowledged to producers (Kafka produce response,
/// AMQP confirm) and visible to readers (the high watermark).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitRule {
    /// Once fdatasync'ed: `flush = group` topics, durable queues. A power loss never takes
    /// back an acknowledged or delivered message.
    Synced,
    /// Once written to the page cache: `flush = interval | never`, transient queues. Survives
    /// a process crash, not a power loss (the interval flusher narrows that window).
    Written,
}

impl CommitRule {
    /// The rule for a log with `config` (read again at every commit step, so a topic's flush
    /// mode changed at run time applies from the next batch).
    pub fn of(config: &LogConfig) -> CommitRule {
        match config.flush {
            FlushMode::Group => CommitRule::Synced,
            FlushMode::Interval | FlushMode::Never => CommitRule::Written,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_group_flush_waits_for_the_disk() {
        let with = |flush| {
            CommitRule::of(&LogConfig {
                flush,
                ..LogConfig::default()
            })
        };
        assert_eq!(with(FlushMode::Group), CommitRule::Synced);
        assert_eq!(with(FlushMode::Interval), CommitRule::Written);
        assert_eq!(with(FlushMode::Never), CommitRule::Written);
    }
}
