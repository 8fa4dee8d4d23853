//! A consumer-group member as the coordinator tracks it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{JoinOutcome, SyncOutcome};

pub struct Member {
    pub id: String,
    /// `group.instance.id` of a static member: survives restarts with a new member id.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// (protocol name, subscription metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// What the leader assigned this member in the last completed sync.
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    /// Set while the member's JoinGroup waits for the rebalance to complete.
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// Set while the member's SyncGroup waits for the leader's assignment.
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// A member blocked in JoinGroup or SyncGroup is alive by definition: its request is the
    /// heartbeat. Only idle members can time out, at their deadline: last heartbeat plus the
    /// session timeout.
    pub fn has_expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now.saturating_duration_since(self.last_heartbeat) >= self.session_timeout
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}
