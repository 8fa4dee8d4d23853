//! The coordinator's requests about committed offsets: OffsetCommit, OffsetFetch, OffsetDelete
//! and DeleteGroups.
//!
//! Ordering: a client pipelines commits (librdkafka's async commit sends one per poll), and the
//! last one sent must be the one that stays. So every request here takes effect, visible to the
//! next request on any connection, before it returns; only the wait for durability is left to
//! the caller, as a [`Written`], so a gateway can run that wait beside later requests.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;

use super::offsets::Change;
use super::state::GroupState;
use super::{CommittedOffset, GroupCoordinator, GroupError, OffsetCommit};
use crate::error::{CoreError, Result};

/// The outcome of a request whose changes are applied but not yet durable; hand it to
/// [`GroupCoordinator::durable`] before answering the client.
#[must_use = "a write is acknowledged only once durable"]
#[derive(Debug)]
pub struct Written<T> {
    pub outcome: T,
    /// The offsets log's end after the write: durable once committed up to here.
    end_offset: i64,
}

/// Per-partition results of a request, in request order.
pub type PartitionResults = Vec<std::result::Result<(), GroupError>>;

/// Decodes a member's subscription (the metadata of the group's chosen protocol) into its topic
/// names; None when it can't be read, which counts as subscribed to everything (Kafka's rule).
pub type SubscriptionDecoder<'a> = &'a (dyn Fn(&Bytes) -> Option<Vec<String>> + Sync);

impl GroupCoordinator {
    /// Waits until a [`Written`] is durable; then the outcome may be acknowledged.
    pub async fn durable<T>(&self, written: Written<T>) -> Result<T> {
        self.store.wait_durable(written.end_offset).await?;
        Ok(written.outcome)
    }

    /// OffsetCommit. `generation < 0` with an empty member id is a commit from outside the
    /// group protocol (e.g. a consumer using assign()), allowed while the group has no members.
    /// The commits are applied when this returns (a later OffsetFetch sees them).
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        commits: Vec<OffsetCommit>,
        topic_exists: impl Fn(&str, i32) -> bool,
    ) -> std::result::Result<Written<PartitionResults>, CoreError> {
        if let Err(e) = self.check_commit(group_id, generation, member_id, instance_id) {
            return Ok(Written {
                outcome: vec![Err(e); commits.len()],
                end_offset: 0,
            });
        }
        let now = crate::partition::now_ms();
        let mut results = Vec::with_capacity(commits.len());
        let mut changes = Vec::new();
        for commit in commits {
            let result = if commit
                .metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.config.offset_metadata_bytes_max)
            {
                Err(GroupError::OffsetMetadataTooLarge)
            } else if !topic_exists(&commit.topic, commit.partition) {
                Err(GroupError::UnknownTopicOrPartition)
            } else {
                changes.push(Change::Commit {
                    group: group_id.to_string(),
                    topic: commit.topic,
                    partition: commit.partition,
                    offset: CommittedOffset {
                        offset: commit.offset,
                        leader_epoch: commit.leader_epoch,
                        metadata: commit.metadata,
                        commit_timestamp_ms: now,
                    },
                });
                Ok(())
            };
            results.push(result);
        }
        let end_offset = self.store.write(changes).await?;
        Ok(Written {
            outcome: results,
            end_offset,
        })
    }

    /// Whether this member may commit now; a commit counts as a heartbeat (as in Kafka).
    fn check_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> std::result::Result<(), GroupError> {
        self.check_group_id(group_id)?;
        let mut groups = self.groups.lock();
        match self.current(&mut groups, group_id) {
            Some(group) if generation < 0 && member_id.is_empty() => {
                if group.members.is_empty() {
                    Ok(())
                } else {
                    // An outsider committing to a group with live members (Kafka's answer).
                    Err(GroupError::UnknownMemberId)
                }
            }
            Some(group) => {
                group.validate_member(member_id, instance_id, generation)?;
                match group.state {
                    // While members rejoin, the current generation may still commit: that is
                    // how an eager consumer saves its progress in its revoke callback.
                    // Once all rejoined and assignments are pending, commits would race them.
                    GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
                    _ => {
                        if let Some(m) = group.members.get_mut(member_id) {
                            m.last_heartbeat = Instant::now();
                        }
                        Ok(())
                    }
                }
            }
            None if generation < 0 => Ok(()),
            None => Err(GroupError::IllegalGeneration),
        }
    }

    /// Committed offsets of a group: all of them, or the requested partitions.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<((String, i32), Option<CommittedOffset>)> {
        let all = self.store.offsets(group_id);
        match partitions {
            None => all.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            Some(wanted) => wanted
                .iter()
                .map(|k| (k.clone(), all.get(k).cloned()))
                .collect(),
        }
    }

    /// DeleteGroups: only groups without members.
    pub async fn delete_group(
        &self,
        group_id: &str,
    ) -> std::result::Result<Written<()>, GroupError> {
        {
            let mut groups = self.groups.lock();
            match self.current(&mut groups, group_id) {
                Some(group) if !group.members.is_empty() => return Err(GroupError::NonEmptyGroup),
                Some(_) => {
                    groups.remove(group_id);
                }
                None if self
                    .store
                    .groups_with_offsets()
                    .contains(&group_id.to_string()) => {}
                None => return Err(GroupError::GroupIdNotFound),
            }
        }
        let change = Change::DeleteGroup {
            group: group_id.to_string(),
        };
        self.write_now(group_id, vec![change], ()).await
    }

    /// OffsetDelete: drops committed offsets of partitions the group no longer consumes. While
    /// the group has members, a partition of a topic one of them subscribes to is refused with
    /// [`GroupError::GroupSubscribedToTopic`]; a group of another protocol type than Kafka's
    /// consumer one can't say what it consumes, so it must be empty.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
        decode: SubscriptionDecoder<'_>,
    ) -> std::result::Result<Written<PartitionResults>, GroupError> {
        let subscribed = self.subscribed_topics(group_id, decode)?;
        let known = self.store.offsets(group_id);
        let mut results = Vec::with_capacity(partitions.len());
        let mut changes = Vec::new();
        for (topic, partition) in partitions {
            if subscribed
                .as_ref()
                .is_some_and(|s| s.as_ref().is_none_or(|s| s.contains(topic)))
            {
                results.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            if known.contains_key(&(topic.clone(), *partition)) {
                changes.push(Change::DeleteOffset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                });
            }
            results.push(Ok(()));
        }
        self.write_now(group_id, changes, results).await
    }

    /// The topics the group's members subscribe to: None for an empty group (nothing is
    /// consumed); Some(None) when a subscription can't be read (everything counts).
    #[allow(clippy::type_complexity)]
    fn subscribed_topics(
        &self,
        group_id: &str,
        decode: SubscriptionDecoder<'_>,
    ) -> std::result::Result<Option<Option<HashSet<String>>>, GroupError> {
        let mut groups = self.groups.lock();
        let Some(group) = self.current(&mut groups, group_id) else {
            return if self.store.offsets(group_id).is_empty() {
                Err(GroupError::GroupIdNotFound)
            } else {
                Ok(None)
            };
        };
        if group.members.is_empty() {
            return Ok(None);
        }
        if group.protocol_type.as_deref() != Some("consumer") {
            return Err(GroupError::NonEmptyGroup);
        }
        let Some(protocol) = group.protocol.as_deref() else {
            return Ok(Some(None));
        };
        let mut topics = HashSet::new();
        for member in group.members.values() {
            match decode(&member.metadata_for(protocol)) {
                Some(names) => topics.extend(names),
                None => return Ok(Some(None)),
            }
        }
        Ok(Some(Some(topics)))
    }

    /// Applies changes now, mapping a failed write to the coordinator being unavailable.
    async fn write_now<T>(
        &self,
        group_id: &str,
        changes: Vec<Change>,
        outcome: T,
    ) -> std::result::Result<Written<T>, GroupError> {
        match self.store.write(changes).await {
            Ok(end_offset) => Ok(Written {
                outcome,
                end_offset,
            }),
            Err(e) => {
                tracing::error!(group = group_id, error = %e, "writing the offsets log failed");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }
}

#[cfg(test)]
#[path = "committing_tests.rs"]
mod tests;
