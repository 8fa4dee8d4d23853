//! FindCoordinator (this broker coordinates every group), ListGroups, DescribeGroups,
//! DeleteGroups.

use std::sync::Arc;

use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;
use porter_core::group::GroupError;

use super::{Caller, Context, Pending};
use crate::authorize::{allowed, Operation, ResourceType, CLUSTER};
use crate::error::group_code;
use crate::frame::ResponseKind;

/// FindCoordinator's key types.
const KEY_TYPE_GROUP: i8 = 0;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn find_coordinator(
    ctx: &Arc<Context>,
    request: FindCoordinatorRequest,
    version: i16,
    caller: &Caller,
) -> FindCoordinatorResponse {
    // Transactions are not built yet: refuse transactional ids with a non-retriable error so
    // a transactional producer fails at once with a clear cause instead of retrying. A group's
    // coordinator needs `Describe` on the group (Kafka's rule).
    let may = |group: &str| allowed(ctx, caller, Operation::Describe, ResourceType::Group, group);
    let error_for = |key: &str| {
        if request.key_type != KEY_TYPE_GROUP {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !may(key) {
            Some(ResponseError::GroupAuthorizationFailed)
        } else {
            None
        }
    };
    let node = BrokerId(ctx.config.node_id);
    let host = text(&ctx.config.advertised_host);
    let port = ctx.config.advertised_port as i32;
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let error = error_for(&key);
                let c = Coordinator::default().with_key(key);
                match error {
                    Some(e) => c
                        .with_error_code(e.code())
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                    None => c.with_node_id(node).with_host(host.clone()).with_port(port),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    match error_for(&request.key) {
        Some(e) => response
            .with_error_code(e.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1),
        None => response.with_node_id(node).with_host(host).with_port(port),
    }
}

/// ListGroups: with ACLs, the groups the caller may `Describe` (all with `Describe` on the
/// cluster), as Kafka filters them.
pub fn list(
    ctx: &Arc<Context>,
    request: ListGroupsRequest,
    version: i16,
    caller: &Caller,
) -> ListGroupsResponse {
    let all = allowed(
        ctx,
        caller,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER,
    );
    let visible =
        |id: &str| all || allowed(ctx, caller, Operation::Describe, ResourceType::Group, id);
    let filter: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string().to_lowercase())
        .collect();
    let groups = ctx
        .broker
        .groups()
        .group_ids()
        .into_iter()
        .filter(|(_, _, state)| filter.is_empty() || filter.contains(&state.to_lowercase()))
        .filter(|(id, _, _)| visible(id))
        .map(|(id, protocol_type, state)| {
            let mut group = ListedGroup::default()
                .with_group_id(GroupId(text(&id)))
                .with_protocol_type(text(&protocol_type));
            if version >= 4 {
                group.group_state = text(state);
            }
            group
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups: a group the caller may not `Describe` is answered GROUP_AUTHORIZATION_FAILED.
pub fn describe(
    ctx: &Arc<Context>,
    request: DescribeGroupsRequest,
    version: i16,
    caller: &Caller,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| match ctx.broker.groups().describe(&id.0) {
            _ if !allowed(ctx, caller, Operation::Describe, ResourceType::Group, &id.0) => {
                DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            }
            // Kafka describes an unknown group as Dead with no members.
            None => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(text("Dead")),
            Some(d) => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(text(d.state))
                .with_protocol_type(text(&d.protocol_type))
                .with_protocol_data(text(&d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            let mut member = DescribedGroupMember::default()
                                .with_member_id(text(&m.member_id))
                                .with_client_id(text(&m.client_id))
                                .with_client_host(text(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                member.group_instance_id = m.instance_id.map(|s| text(&s));
                            }
                            member
                        })
                        .collect(),
                ),
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups: each group is deleted in the ordered stage; the returned [`Pending`] waits
/// until the deletions are durable.
pub async fn delete(ctx: &Arc<Context>, request: DeleteGroupsRequest) -> Pending {
    let mut deleted = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let written = ctx.broker.groups().delete_group(&id.0).await;
        deleted.push((id, written));
    }
    let ctx = ctx.clone();
    async move {
        let mut results = Vec::with_capacity(deleted.len());
        for (id, written) in deleted {
            let result = match written {
                Ok(written) => ctx.broker.groups().durable(written).await.map_err(|e| {
                    tracing::error!(group = %id.0, error = %e, "deleting group failed");
                    GroupError::CoordinatorNotAvailable
                }),
                Err(e) => Err(e),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(result.err().map_or(0, |e| group_code(e).code())),
            );
        }
        Some(ResponseKind::DeleteGroups(
            DeleteGroupsResponse::default().with_results(results),
        ))
    }
    .boxed()
}
