//! Kafka ACLs on consumer-group requests, checked before the group protocol sees them: joining,
//! syncing, heartbeating, leaving and committing need `Read` on the group, fetching offsets
//! `Describe`. A refused request is answered GROUP_AUTHORIZATION_FAILED in its own response
//! shape, and the group is not touched.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, OffsetFetchResponse,
    SyncGroupResponse,
};

use super::{Caller, Context};
use crate::authorize::{allowed, Operation, ResourceType};
use crate::frame::{RequestKind, ResponseKind};

/// The refusal of `body`, if it is a group request the caller may not make.
pub fn refusal(ctx: &Context, body: &RequestKind, caller: &Caller) -> Option<ResponseKind> {
    if !ctx.config.acls {
        return None;
    }
    let may = |op, group: &str| allowed(ctx, caller, op, ResourceType::Group, group);
    let code = ResponseError::GroupAuthorizationFailed.code();
    match body {
        RequestKind::JoinGroup(r) if !may(Operation::Read, &r.group_id) => Some(
            ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(code)),
        ),
        RequestKind::SyncGroup(r) if !may(Operation::Read, &r.group_id) => Some(
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code)),
        ),
        RequestKind::Heartbeat(r) if !may(Operation::Read, &r.group_id) => Some(
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code)),
        ),
        RequestKind::LeaveGroup(r) if !may(Operation::Read, &r.group_id) => Some(
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code)),
        ),
        RequestKind::OffsetCommit(r) if !may(Operation::Read, &r.group_id) => Some(
            ResponseKind::OffsetCommit(super::offsets::commit_response(&r.topics, || code)),
        ),
        RequestKind::OffsetFetch(r) => {
            // v8 asks for many groups; earlier versions for one.
            if r.groups.is_empty() {
                (!may(Operation::Describe, &r.group_id)).then(|| {
                    ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(code))
                })
            } else if r
                .groups
                .iter()
                .any(|g| !may(Operation::Describe, &g.group_id))
            {
                // One refused group refuses the request (clients ask for one group at a time).
                let groups = r
                    .groups
                    .iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(code)
                    })
                    .collect();
                Some(ResponseKind::OffsetFetch(
                    OffsetFetchResponse::default().with_groups(groups),
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}
