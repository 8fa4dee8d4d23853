//! Consumer groups: membership and rebalancing ([`state`]), and committed offsets ([`offsets`]).
//!
//! The [`GroupCoordinator`] is the one place a gateway asks about groups. The rebalance protocol
//! is Kafka's classic one (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) with opaque
//! subscription and assignment bytes: the clients choose the assignor (range, roundrobin,
//! cooperative-sticky), the coordinator only orders the dance. Other protocols' shared
//! subscriptions can use the same groups later.

mod committing;
pub mod member;
pub mod offsets;
pub mod state;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use porter_storage::FileCache;
use tokio::sync::oneshot;

use crate::error::Result;
pub use committing::{PartitionResults, SubscriptionDecoder, Written};
pub use offsets::{Change, CommittedOffset, GroupSnapshot, MemberSnapshot, OffsetStore};
use state::{Group, GroupState};

/// Errors of the group protocol, mapped to protocol codes by each gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("member id required")]
    MemberIdRequired,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("fenced instance id")]
    FencedInstanceId,
    #[error("group id not found")]
    GroupIdNotFound,
    #[error("group is not empty")]
    NonEmptyGroup,
    #[error("the group's members subscribe to the topic")]
    GroupSubscribedToTopic,
    #[error("invalid session timeout")]
    InvalidSessionTimeout,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("group is full")]
    GroupMaxSizeReached,
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("the broker is shutting down")]
    CoordinatorNotAvailable,
}

/// A JoinGroup, protocol-neutral.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394 (JoinGroup v4+): new members get an id first and must join again with it.
    pub require_known_member_id: bool,
}

#[derive(Clone, Debug)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug)]
pub struct JoinOutcome {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: everyone's subscription, to compute the assignment.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub fn error(error: GroupError, member_id: &str) -> Self {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SyncOutcome {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: GroupError) -> Self {
        SyncOutcome {
            error: Some(error),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// A JoinGroup or SyncGroup that took effect and may wait for the other members: its answer
/// now, or the receiver of the answer to come.
#[must_use = "the member's answer is still to be sent"]
pub enum Pending<T> {
    Done(T),
    Waiting {
        group_id: String,
        receiver: oneshot::Receiver<T>,
    },
}

/// What DescribeGroups reports.
#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Clone, Debug)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// Named limits and timings of the coordinator.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Kafka's group.initial.rebalance.delay.ms.
    pub initial_rebalance_delay: Duration,
    pub session_timeout_min: Duration,
    pub session_timeout_max: Duration,
    pub groups_max: usize,
    pub members_per_group_max: usize,
    /// Kafka's offset.metadata.max.bytes.
    pub offset_metadata_bytes_max: usize,
    pub group_id_bytes_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(500),
            session_timeout_min: Duration::from_millis(1_000),
            session_timeout_max: Duration::from_secs(30 * 60),
            groups_max: 100_000,
            members_per_group_max: 1_000,
            offset_metadata_bytes_max: 4096,
            group_id_bytes_max: 1024,
        }
    }
}

/// An offset to commit for one partition.
#[derive(Clone, Debug)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct GroupCoordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, Group>>,
    store: Arc<OffsetStore>,
}

impl GroupCoordinator {
    /// Opens the offsets log and restores groups from it. Blocking.
    pub fn open(
        dir: &Path,
        files: Arc<FileCache>,
        after_crash: bool,
        config: GroupConfig,
        committer: &crate::commit::Committer,
    ) -> Result<GroupCoordinator> {
        let store = Arc::new(OffsetStore::open(dir, files, after_crash, committer)?);
        let now = Instant::now();
        let mut groups = HashMap::new();
        for (id, snapshot) in store.groups() {
            groups.insert(id.clone(), restore(id, snapshot, now));
        }
        Ok(GroupCoordinator {
            config,
            groups: Mutex::new(groups),
            store,
        })
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn check_group_id(&self, group_id: &str) -> std::result::Result<(), GroupError> {
        if group_id.is_empty() || group_id.len() > self.config.group_id_bytes_max {
            return Err(GroupError::InvalidGroupId);
        }
        Ok(())
    }

    /// JoinGroup, first part: the member is registered with its group when this returns, so
    /// requests the client sends after it see it; [`GroupCoordinator::joined`] then waits for
    /// the rebalance to complete.
    pub fn join(&self, group_id: &str, request: JoinRequest) -> Pending<JoinOutcome> {
        let member_id = request.member_id.clone();
        let fail = |e| Pending::Done(JoinOutcome::error(e, &member_id));
        if let Err(e) = self.check_group_id(group_id) {
            return fail(e);
        }
        if request.session_timeout < self.config.session_timeout_min
            || request.session_timeout > self.config.session_timeout_max
        {
            return fail(GroupError::InvalidSessionTimeout);
        }
        let receiver = {
            let mut groups = self.groups.lock();
            if !groups.contains_key(group_id) && groups.len() >= self.config.groups_max {
                return fail(GroupError::GroupMaxSizeReached);
            }
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id.to_string()));
            self.bring_up_to_date(group, Instant::now());
            if request.member_id.is_empty()
                && group.members.len() >= self.config.members_per_group_max
            {
                return fail(GroupError::GroupMaxSizeReached);
            }
            let new_id = format!(
                "{}-{}",
                if request.client_id.is_empty() {
                    "member"
                } else {
                    request.client_id.as_str()
                },
                uuid::Uuid::new_v4()
            );
            group.join(
                request,
                new_id,
                self.config.initial_rebalance_delay,
                Instant::now(),
            )
        };
        Pending::Waiting {
            group_id: group_id.to_string(),
            receiver,
        }
    }

    /// JoinGroup, second part: the member's answer once the rebalance completes.
    pub async fn joined(&self, pending: Pending<JoinOutcome>) -> JoinOutcome {
        let member_id = match &pending {
            Pending::Done(outcome) => outcome.member_id.clone(),
            Pending::Waiting { .. } => String::new(),
        };
        self.complete(pending, || {
            JoinOutcome::error(GroupError::CoordinatorNotAvailable, &member_id)
        })
        .await
    }

    /// SyncGroup, first part: the leader's assignment is taken (or the member's wait begun)
    /// when this returns; [`GroupCoordinator::synced`] waits for the member's assignment.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Pending<SyncOutcome> {
        let mut groups = self.groups.lock();
        let Some(group) = self.current(&mut groups, group_id) else {
            return Pending::Done(SyncOutcome::error(GroupError::UnknownMemberId));
        };
        Pending::Waiting {
            group_id: group_id.to_string(),
            receiver: group.sync(
                member_id,
                instance_id,
                generation,
                assignments,
                Instant::now(),
            ),
        }
    }

    /// SyncGroup, second part: the member's assignment.
    pub async fn synced(&self, pending: Pending<SyncOutcome>) -> SyncOutcome {
        self.complete(pending, || {
            SyncOutcome::error(GroupError::CoordinatorNotAvailable)
        })
        .await
    }

    /// Waits for a [`Pending`] answer, then persists the group if the answer changed it.
    async fn complete<T>(&self, pending: Pending<T>, gone: impl FnOnce() -> T) -> T {
        match pending {
            Pending::Done(outcome) => outcome,
            Pending::Waiting { group_id, receiver } => {
                let outcome = receiver.await.unwrap_or_else(|_| gone());
                self.persist_dirty(&group_id).await;
                outcome
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> std::result::Result<(), GroupError> {
        let mut groups = self.groups.lock();
        let group = self
            .current(&mut groups, group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        group.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// LeaveGroup: (member id, instance id) pairs; a result per member.
    pub async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> std::result::Result<Vec<std::result::Result<(), GroupError>>, GroupError> {
        let results = {
            let mut groups = self.groups.lock();
            let group = self
                .current(&mut groups, group_id)
                .ok_or(GroupError::UnknownMemberId)?;
            group.leave(members, self.config.initial_rebalance_delay, Instant::now())
        };
        self.persist_dirty(group_id).await;
        Ok(results)
    }

    /// Brings a group up to `now`: members whose session ran out are gone and due rebalance
    /// steps are taken. Every request that looks at a group calls this first, so it sees the
    /// group as Kafka would at this instant (a session ends at its deadline), not as of the last
    /// background [`GroupCoordinator::tick`]; the tick only catches groups nobody asks about.
    fn bring_up_to_date(&self, group: &mut Group, now: Instant) {
        for member in group.tick(self.config.initial_rebalance_delay, now) {
            tracing::info!(group = %group.id, %member, "member session expired; rebalancing");
        }
    }

    /// A group, brought up to now ([`GroupCoordinator::bring_up_to_date`]).
    fn current<'a>(
        &self,
        groups: &'a mut HashMap<String, Group>,
        group_id: &str,
    ) -> Option<&'a mut Group> {
        let group = groups.get_mut(group_id)?;
        self.bring_up_to_date(group, Instant::now());
        Some(group)
    }

    /// Timer work for every group: session expiry, rebalance deadlines.
    pub async fn tick(&self) {
        let now = Instant::now();
        let mut dirty = Vec::new();
        {
            let mut groups = self.groups.lock();
            for group in groups.values_mut() {
                self.bring_up_to_date(group, now);
                if group.dirty {
                    dirty.push(group.id.clone());
                }
            }
        }
        for group in dirty {
            self.persist_dirty(&group).await;
        }
    }

    /// Writes a group's snapshot when it reached Stable or Empty since the last write.
    async fn persist_dirty(&self, group_id: &str) {
        let snapshot = {
            let mut groups = self.groups.lock();
            let Some(group) = groups.get_mut(group_id) else {
                return;
            };
            if !group.dirty {
                return;
            }
            group.dirty = false;
            snapshot_of(group)
        };
        let change = Change::Group {
            group: group_id.to_string(),
            snapshot,
        };
        if let Err(e) = self.write(vec![change]).await {
            tracing::error!(group = group_id, error = %e, "persisting group state failed");
        }
    }

    /// Appends changes to the offsets log and waits until they are durable.
    async fn write(&self, changes: Vec<Change>) -> Result<()> {
        let end = self.store.write(changes).await?;
        self.store.wait_durable(end).await
    }

    /// Every known group (with members, or only committed offsets): (id, protocol type, state),
    /// sorted, for ListGroups.
    pub fn group_ids(&self) -> Vec<(String, String, &'static str)> {
        let mut groups = self.groups.lock();
        let now = Instant::now();
        for group in groups.values_mut() {
            self.bring_up_to_date(group, now);
        }
        let mut out: Vec<_> = groups
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                )
            })
            .collect();
        for id in self.store.groups_with_offsets() {
            if !groups.contains_key(&id) {
                out.push((id, String::new(), GroupState::Empty.name()));
            }
        }
        out.sort();
        out
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let mut groups = self.groups.lock();
        let Some(group) = self.current(&mut groups, group_id) else {
            return self
                .store
                .groups_with_offsets()
                .contains(&group_id.to_string())
                .then(|| GroupDescription {
                    group_id: group_id.to_string(),
                    state: GroupState::Empty.name(),
                    protocol_type: String::new(),
                    protocol: String::new(),
                    members: Vec::new(),
                });
        };
        let protocol = group.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            group_id: group.id.clone(),
            state: group.state.name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: group
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    pub fn close(&self) -> Result<()> {
        self.store.close()
    }
}

fn snapshot_of(group: &Group) -> GroupSnapshot {
    GroupSnapshot {
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol: group.protocol.clone(),
        leader: group.leader.clone(),
        members: group
            .members
            .values()
            .map(|m| MemberSnapshot {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout.as_millis() as u64,
                rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                protocols: m
                    .protocols
                    .iter()
                    .map(|(n, b)| (n.clone(), b.to_vec()))
                    .collect(),
                assignment: m.assignment.to_vec(),
            })
            .collect(),
    }
}

/// A group as it was persisted; its members get a fresh session to reconnect in.
fn restore(id: String, snapshot: GroupSnapshot, now: Instant) -> Group {
    let mut group = Group::new(id);
    group.generation = snapshot.generation;
    group.protocol_type = snapshot.protocol_type;
    group.protocol = snapshot.protocol;
    group.leader = snapshot.leader;
    for m in snapshot.members {
        if let Some(instance_id) = &m.instance_id {
            group
                .static_members
                .insert(instance_id.clone(), m.id.clone());
        }
        group.members.insert(
            m.id.clone(),
            member::Member {
                id: m.id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: Duration::from_millis(m.session_timeout_ms),
                rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms),
                protocols: m
                    .protocols
                    .into_iter()
                    .map(|(n, b)| (n, Bytes::from(b)))
                    .collect(),
                assignment: Bytes::from(m.assignment),
                last_heartbeat: now,
                join_waiter: None,
                sync_waiter: None,
            },
        );
    }
    group.state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    group
}
