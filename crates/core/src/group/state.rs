//! One consumer group's rebalance state machine (Kafka's classic protocol):
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                    ▲                                            │ leader's sync
//!   │ last member leaves │ join, leave, expiry, new protocols         ▼
//!   └────────────────────┴──────────────────────────────────────── Stable
//! ```
//!
//! Pure logic: time comes in as `now`, waiting clients are `oneshot` senders, and nothing here
//! does I/O, so every transition is unit-testable. The coordinator drives it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::member::Member;
use super::{GroupError, JoinOutcome, JoinRequest, JoinedMember, SyncOutcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id, for static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394), not yet joined, with expiry.
    pub pending_members: HashMap<String, Instant>,
    /// When the current join phase ends even if some members have not rejoined.
    pub rebalance_deadline: Option<Instant>,
    /// A group forming from Empty waits until then for more members before completing.
    pub initial_delay_until: Option<Instant>,
    /// Set when the state became Stable or Empty and has not been persisted yet.
    pub dirty: bool,
}

impl Group {
    pub fn new(id: String) -> Self {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            dirty: false,
        }
    }

    /// Handles a JoinGroup. Returns the receiver that yields the outcome (at once, or when the
    /// rebalance completes).
    pub fn join(
        &mut self,
        request: JoinRequest,
        new_member_id: String,
        initial_delay: Duration,
        now: Instant,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.check_protocols(&request) {
            let _ = tx.send(JoinOutcome::error(e, &request.member_id));
            return rx;
        }
        if request.member_id.is_empty() {
            self.join_new_member(request, new_member_id, tx, initial_delay, now);
        } else {
            self.join_known_member(request, tx, initial_delay, now);
        }
        rx
    }

    fn check_protocols(&self, request: &JoinRequest) -> Result<(), GroupError> {
        if request.protocols.is_empty() || request.protocol_type.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if self.members.is_empty() {
            return Ok(());
        }
        if self.protocol_type.as_deref() != Some(request.protocol_type.as_str()) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        // Every member must share at least one protocol with everyone else.
        let shared = request.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != request.member_id)
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        });
        if shared {
            Ok(())
        } else {
            Err(GroupError::InconsistentGroupProtocol)
        }
    }

    fn join_new_member(
        &mut self,
        request: JoinRequest,
        new_member_id: String,
        tx: oneshot::Sender<JoinOutcome>,
        initial_delay: Duration,
        now: Instant,
    ) {
        if let Some(instance_id) = request.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance_id).cloned() {
                // A static member restarted: it takes over its old identity's place, and the
                // old member id is fenced. If nothing changed, no rebalance is needed.
                let Some(mut member) = self.members.remove(&old_id) else {
                    self.static_members.remove(&instance_id);
                    return self.join_new_member(request, new_member_id, tx, initial_delay, now);
                };
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(JoinOutcome::error(GroupError::FencedInstanceId, &old_id));
                }
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncOutcome::error(GroupError::FencedInstanceId));
                }
                let unchanged = member.same_protocols(&request.protocols);
                member.id = new_member_id.clone();
                member.protocols = request.protocols.clone();
                member.session_timeout = request.session_timeout;
                member.rebalance_timeout = request.rebalance_timeout;
                member.last_heartbeat = now;
                if self.leader.as_deref() == Some(old_id.as_str()) {
                    self.leader = Some(new_member_id.clone());
                }
                self.static_members
                    .insert(instance_id, new_member_id.clone());
                self.members.insert(new_member_id.clone(), member);
                if unchanged && self.state == GroupState::Stable {
                    let outcome = self.join_outcome_for(&new_member_id);
                    let _ = tx.send(outcome);
                    return;
                }
                self.members
                    .get_mut(&new_member_id)
                    .expect("inserted")
                    .join_waiter = Some(tx);
                self.prepare_rebalance(initial_delay, now);
                self.maybe_complete_join(now);
                return;
            }
        } else if request.require_known_member_id {
            // KIP-394: hand out an id first so a retried join can't leave a ghost member.
            self.pending_members
                .insert(new_member_id.clone(), now + request.session_timeout);
            let _ = tx.send(JoinOutcome::error(
                GroupError::MemberIdRequired,
                &new_member_id,
            ));
            return;
        }
        self.add_member(request, new_member_id, tx, initial_delay, now);
    }

    fn join_known_member(
        &mut self,
        request: JoinRequest,
        tx: oneshot::Sender<JoinOutcome>,
        initial_delay: Duration,
        now: Instant,
    ) {
        let member_id = request.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            return self.add_member(request, member_id, tx, initial_delay, now);
        }
        if let Some(instance_id) = &request.instance_id {
            if self.static_members.get(instance_id) != Some(&member_id)
                && self.static_members.contains_key(instance_id)
            {
                let _ = tx.send(JoinOutcome::error(GroupError::FencedInstanceId, &member_id));
                return;
            }
        }
        let state = self.state;
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        let Some(member) = self.members.get_mut(&member_id) else {
            let _ = tx.send(JoinOutcome::error(GroupError::UnknownMemberId, &member_id));
            return;
        };
        member.last_heartbeat = now;
        let unchanged = member.same_protocols(&request.protocols);
        member.protocols = request.protocols;
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        match state {
            GroupState::PreparingRebalance => {
                member.join_waiter = Some(tx);
                self.maybe_complete_join(now);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(state == GroupState::Stable && is_leader) =>
            {
                // A retried join: answer with the current generation.
                let outcome = self.join_outcome_for(&member_id);
                let _ = tx.send(outcome);
            }
            _ => {
                member.join_waiter = Some(tx);
                self.prepare_rebalance(initial_delay, now);
                self.maybe_complete_join(now);
            }
        }
    }

    fn add_member(
        &mut self,
        request: JoinRequest,
        member_id: String,
        tx: oneshot::Sender<JoinOutcome>,
        initial_delay: Duration,
        now: Instant,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance_id) = &request.instance_id {
            self.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: request.instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocols: request.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        self.prepare_rebalance(initial_delay, now);
        self.maybe_complete_join(now);
    }

    /// Enters PreparingRebalance: everyone must rejoin before the deadline.
    fn prepare_rebalance(&mut self, initial_delay: Duration, now: Instant) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for an assignment of the abandoned generation must rejoin.
            for member in self.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncOutcome::error(GroupError::RebalanceInProgress));
                }
            }
        }
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        // A group forming from nothing waits a little for its other members (Kafka's
        // group.initial.rebalance.delay.ms), so three consumers starting together cause one
        // rebalance, not three.
        self.initial_delay_until =
            (self.state == GroupState::Empty).then(|| now + initial_delay.min(timeout));
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
    }

    /// Completes the join phase when every member has rejoined (and an initial delay is over).
    pub fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(Member::is_awaiting_join);
        let deadline_passed = self.rebalance_deadline.is_none_or(|d| now >= d);
        let delay_over = self.initial_delay_until.is_none_or(|d| now >= d);
        if deadline_passed || (all_joined && delay_over) {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.dirty = true;
            return;
        }
        self.protocol = Some(self.select_protocol());
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome_for(&id);
            let Some(member) = self.members.get_mut(&id) else {
                continue;
            };
            if let Some(waiter) = member.join_waiter.take() {
                // Kafka restarts a member's session when its JoinGroup is answered.
                member.last_heartbeat = now;
                let _ = waiter.send(outcome);
            }
        }
    }

    /// The protocol every member supports that gets the most first-preference votes.
    fn select_protocol(&self) -> String {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()
            .map(|m| m.protocols.iter().map(|(n, _)| n).collect())
            .unwrap_or_default();
        let supported: Vec<&String> = candidates
            .into_iter()
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| supported.contains(&n))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        supported
            .iter()
            .max_by_key(|name| {
                (
                    votes.get(*name).copied().unwrap_or(0),
                    std::cmp::Reverse(*name),
                )
            })
            .map(|s| (*s).clone())
            .unwrap_or_default()
    }

    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance_id) = &member.instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(member)
    }

    /// Checks a request's member id, instance id and generation against the group.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if let Some(instance_id) = instance_id {
            if let Some(current) = self.static_members.get(instance_id) {
                if current != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.validate_member(member_id, instance_id, generation) {
            let _ = tx.send(SyncOutcome::error(e));
            return rx;
        }
        // A SyncGroup counts as a heartbeat, and so does its answer (below).
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = now;
        }
        match self.state {
            GroupState::Empty => {
                let _ = tx.send(SyncOutcome::error(GroupError::UnknownMemberId));
            }
            GroupState::PreparingRebalance => {
                let _ = tx.send(SyncOutcome::error(GroupError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let outcome = self.sync_outcome_for(member_id);
                let _ = tx.send(outcome);
            }
            GroupState::CompletingRebalance => {
                self.members
                    .get_mut(member_id)
                    .expect("validated")
                    .sync_waiter = Some(tx);
                if self.leader.as_deref() == Some(member_id) {
                    let mut assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = assigned.remove(&member.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.dirty = true;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let outcome = self.sync_outcome_for(&id);
                        let Some(member) = self.members.get_mut(&id) else {
                            continue;
                        };
                        if let Some(waiter) = member.sync_waiter.take() {
                            member.last_heartbeat = now;
                            let _ = waiter.send(outcome);
                        }
                    }
                }
            }
        }
        rx
    }

    fn sync_outcome_for(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if let Some(instance_id) = instance_id {
            if self
                .static_members
                .get(instance_id)
                .is_some_and(|current| current != member_id)
            {
                return Err(GroupError::FencedInstanceId);
            }
        }
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        member.last_heartbeat = now;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes members (LeaveGroup); per member: Ok or why not.
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        initial_delay: Duration,
        now: Instant,
    ) -> Vec<Result<(), GroupError>> {
        let mut removed_any = false;
        let results = members
            .iter()
            .map(|(member_id, instance_id)| {
                let member_id = match (member_id.as_str(), instance_id) {
                    // Static members may leave by instance id alone.
                    ("", Some(instance_id)) => self
                        .static_members
                        .get(instance_id)
                        .cloned()
                        .ok_or(GroupError::UnknownMemberId)?,
                    (id, Some(instance_id)) => {
                        if self
                            .static_members
                            .get(instance_id)
                            .is_some_and(|current| current != id)
                        {
                            return Err(GroupError::FencedInstanceId);
                        }
                        id.to_string()
                    }
                    (id, None) => id.to_string(),
                };
                let mut member = self
                    .remove_member(&member_id)
                    .ok_or(GroupError::UnknownMemberId)?;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ =
                        waiter.send(JoinOutcome::error(GroupError::UnknownMemberId, &member_id));
                }
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncOutcome::error(GroupError::UnknownMemberId));
                }
                removed_any = true;
                Ok(())
            })
            .collect();
        if removed_any {
            self.on_membership_loss(initial_delay, now);
        }
        results
    }

    /// After members left or expired: rebalance the rest, or become Empty.
    fn on_membership_loss(&mut self, initial_delay: Duration, now: Instant) {
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            self.rebalance_deadline = None;
            self.dirty = true;
        } else {
            self.prepare_rebalance(initial_delay, now);
            self.maybe_complete_join(now);
        }
    }

    /// Timer work: expire silent members and stale pending ids, end overdue join phases.
    /// Returns the ids of expired members (for logging).
    pub fn tick(&mut self, initial_delay: Duration, now: Instant) -> Vec<String> {
        self.pending_members.retain(|_, expiry| *expiry > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.has_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.on_membership_loss(initial_delay, now);
        }
        self.maybe_complete_join(now);
        expired
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
