//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup: Kafka's classic rebalance protocol, decoded and
//! handed to the core's group coordinator. Join and Sync take effect at once and may then wait
//! (for the other members, for the leader's assignment) as pending futures while the connection
//! goes on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use porter_core::group::{JoinOutcome, JoinRequest};

use super::{Context, Pending};
use crate::error::group_code;
use crate::frame::ResponseKind;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// JoinGroup: the member joins in the ordered stage; the returned [`Pending`] waits for the
/// rebalance.
pub fn join(
    ctx: &Arc<Context>,
    request: JoinGroupRequest,
    version: i16,
    client_id: String,
    peer: SocketAddr,
) -> Pending {
    // v0 had no rebalance timeout: it equals the session timeout.
    let rebalance_timeout_ms = if version >= 1 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|s| s.to_string()),
        client_id,
        client_host: format!("/{}", peer.ip()),
        session_timeout: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance_timeout_ms.max(0) as u64),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let joining = ctx.broker.groups().join(&request.group_id.0, join);
    let ctx = ctx.clone();
    async move {
        let outcome = ctx.broker.groups().joined(joining).await;
        Some(ResponseKind::JoinGroup(join_response(outcome, version)))
    }
    .boxed()
}

fn join_response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default()
                .with_member_id(text(&m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.group_instance_id = m.instance_id.map(|s| text(&s));
            }
            member
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, |e| group_code(e).code()))
        .with_generation_id(outcome.generation)
        .with_protocol_name(Some(text(outcome.protocol.as_deref().unwrap_or(""))))
        .with_leader(text(&outcome.leader))
        .with_member_id(text(&outcome.member_id))
        .with_members(members);
    if version >= 7 {
        response.protocol_type = outcome.protocol_type.map(|s| text(&s));
    }
    response
}

/// SyncGroup: the assignment is taken in the ordered stage; the returned [`Pending`] waits for
/// the leader's.
pub fn sync(ctx: &Arc<Context>, request: SyncGroupRequest, version: i16) -> Pending {
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let syncing = ctx.broker.groups().sync(
        &request.group_id.0,
        &request.member_id,
        instance_id.as_deref(),
        request.generation_id,
        assignments,
    );
    let ctx = ctx.clone();
    async move {
        let outcome = ctx.broker.groups().synced(syncing).await;
        let mut response = SyncGroupResponse::default()
            .with_error_code(outcome.error.map_or(0, |e| group_code(e).code()))
            .with_assignment(outcome.assignment);
        if version >= 5 {
            response.protocol_type = outcome.protocol_type.map(|s| text(&s));
            response.protocol_name = outcome.protocol.map(|s| text(&s));
        }
        Some(ResponseKind::SyncGroup(response))
    }
    .boxed()
}

pub fn heartbeat(ctx: &Arc<Context>, request: HeartbeatRequest) -> HeartbeatResponse {
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let result = ctx.broker.groups().heartbeat(
        &request.group_id.0,
        &request.member_id,
        instance_id.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| group_code(e).code()))
}

pub async fn leave(
    ctx: &Arc<Context>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    // v0–v2 name one member; v3+ a batch (KIP-345).
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    match ctx
        .broker
        .groups()
        .leave(&request.group_id.0, &members)
        .await
    {
        Err(e) => LeaveGroupResponse::default().with_error_code(group_code(e).code()),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((member_id, instance_id), result)| {
                    MemberResponse::default()
                        .with_member_id(text(&member_id))
                        .with_group_instance_id(instance_id.map(|s| text(&s)))
                        .with_error_code(result.err().map_or(0, |e| group_code(e).code()))
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default().with_error_code(
            results
                .into_iter()
                .find_map(|r| r.err())
                .map_or(0, |e| group_code(e).code()),
        ),
    }
}
