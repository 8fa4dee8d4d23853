//! DescribeAcls, CreateAcls and DeleteAcls (KIP-140, KIP-290 prefixed patterns): what
//! `kafka-acls.sh` and AdminClient's `describe_acls` / `create_acls` / `delete_acls` call. The
//! ACLs are the core's metadata; Kafka's numeric enums are translated here, in one place.
//! Describing needs `Describe` on the cluster, changing needs `Alter` (or a super user).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use porter_core::acl::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};

use super::{Caller, Context};
use crate::authorize::{allowed, CLUSTER};
use crate::error::error_code;

fn resource_type(code: i8) -> Option<ResourceType> {
    match code {
        2 => Some(ResourceType::Topic),
        3 => Some(ResourceType::Group),
        4 => Some(ResourceType::Cluster),
        5 => Some(ResourceType::TransactionalId),
        _ => None,
    }
}

fn resource_type_code(t: ResourceType) -> i8 {
    match t {
        ResourceType::Topic => 2,
        ResourceType::Group => 3,
        ResourceType::Cluster => 4,
        ResourceType::TransactionalId => 5,
    }
}

fn pattern_type(code: i8) -> Option<PatternType> {
    match code {
        3 => Some(PatternType::Literal),
        4 => Some(PatternType::Prefixed),
        _ => None,
    }
}

fn pattern_type_code(p: PatternType) -> i8 {
    match p {
        PatternType::Literal => 3,
        PatternType::Prefixed => 4,
    }
}

const OPERATIONS: [(i8, Operation); 11] = [
    (2, Operation::All),
    (3, Operation::Read),
    (4, Operation::Write),
    (5, Operation::Create),
    (6, Operation::Delete),
    (7, Operation::Alter),
    (8, Operation::Describe),
    (9, Operation::ClusterAction),
    (10, Operation::DescribeConfigs),
    (11, Operation::AlterConfigs),
    (12, Operation::IdempotentWrite),
];

fn operation(code: i8) -> Option<Operation> {
    OPERATIONS.iter().find(|(c, _)| *c == code).map(|(_, o)| *o)
}

fn operation_code(o: Operation) -> i8 {
    OPERATIONS
        .iter()
        .find(|(_, op)| *op == o)
        .map_or(0, |(c, _)| *c)
}

fn permission(code: i8) -> Option<Permission> {
    match code {
        2 => Some(Permission::Deny),
        3 => Some(Permission::Allow),
        _ => None,
    }
}

fn permission_code(p: Permission) -> i8 {
    match p {
        Permission::Deny => 2,
        Permission::Allow => 3,
    }
}

/// A filter from its wire fields: `1` (ANY) or null matches anything.
#[allow(clippy::too_many_arguments)]
fn filter(
    rt: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter, &'static str> {
    let any = 1;
    let pattern = match pattern {
        1 => PatternFilter::Any,
        2 => PatternFilter::Match,
        code => PatternFilter::Exactly(pattern_type(code).ok_or("unknown pattern type")?),
    };
    Ok(AclFilter {
        resource_type: if rt == any {
            None
        } else {
            Some(resource_type(rt).ok_or("unknown resource type")?)
        },
        resource_name: name.map(|n| n.to_string()),
        pattern,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: if op == any {
            None
        } else {
            Some(operation(op).ok_or("unknown operation")?)
        },
        permission: if perm == any {
            None
        } else {
            Some(permission(perm).ok_or("unknown permission type")?)
        },
    })
}

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub fn describe(
    ctx: &Arc<Context>,
    r: DescribeAclsRequest,
    caller: &Caller,
) -> DescribeAclsResponse {
    let response = DescribeAclsResponse::default();
    if !allowed(
        ctx,
        caller,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER,
    ) {
        return response
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(text("describing ACLs needs Describe on the cluster"));
    }
    let filter = match filter(
        r.resource_type_filter,
        r.resource_name_filter.as_ref(),
        r.pattern_type_filter,
        r.principal_filter.as_ref(),
        r.host_filter.as_ref(),
        r.operation,
        r.permission_type,
    ) {
        Ok(filter) => filter,
        Err(why) => {
            return response
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(text(why))
        }
    };
    // Grouped by resource, as Kafka answers.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in ctx.broker.acls().matching(&filter) {
        let description = AclDescription::default()
            .with_principal(StrBytes::from_string(b.principal.clone()))
            .with_host(StrBytes::from_string(b.host.clone()))
            .with_operation(operation_code(b.operation))
            .with_permission_type(permission_code(b.permission));
        let key = (
            resource_type_code(b.resource_type),
            b.resource_name.as_str(),
            pattern_type_code(b.pattern_type),
        );
        match resources
            .iter_mut()
            .find(|r| (r.resource_type, r.resource_name.as_str(), r.pattern_type) == key)
        {
            Some(resource) => resource.acls.push(description),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(key.0)
                    .with_resource_name(StrBytes::from_string(b.resource_name.clone()))
                    .with_pattern_type(key.2)
                    .with_acls(vec![description]),
            ),
        }
    }
    response.with_resources(resources)
}

fn binding(c: &AclCreation) -> Result<AclBinding, &'static str> {
    Ok(AclBinding {
        resource_type: resource_type(c.resource_type).ok_or("unknown resource type")?,
        resource_name: c.resource_name.to_string(),
        pattern_type: pattern_type(c.resource_pattern_type)
            .ok_or("pattern type must be LITERAL or PREFIXED")?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: operation(c.operation).ok_or("unknown operation")?,
        permission: permission(c.permission_type).ok_or("permission must be ALLOW or DENY")?,
    })
}

pub async fn create(
    ctx: &Arc<Context>,
    r: CreateAclsRequest,
    caller: &Caller,
) -> CreateAclsResponse {
    let refused = !allowed(
        ctx,
        caller,
        Operation::Alter,
        ResourceType::Cluster,
        CLUSTER,
    );
    let mut results = Vec::with_capacity(r.creations.len());
    for creation in &r.creations {
        let result = AclCreationResult::default();
        let outcome = if refused {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "creating ACLs needs Alter on the cluster".to_string(),
            ))
        } else {
            match binding(creation) {
                Err(why) => Err((ResponseError::InvalidRequest, why.to_string())),
                Ok(b) => ctx
                    .broker
                    .create_acls(vec![b])
                    .await
                    .map_err(|e| (error_code(&e), e.to_string())),
            }
        };
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(text(message)),
        });
    }
    CreateAclsResponse::default().with_results(results)
}

fn filter_of(f: &DeleteAclsFilter) -> Result<AclFilter, &'static str> {
    filter(
        f.resource_type_filter,
        f.resource_name_filter.as_ref(),
        f.pattern_type_filter,
        f.principal_filter.as_ref(),
        f.host_filter.as_ref(),
        f.operation,
        f.permission_type,
    )
}

pub async fn delete(
    ctx: &Arc<Context>,
    r: DeleteAclsRequest,
    caller: &Caller,
) -> DeleteAclsResponse {
    if !allowed(
        ctx,
        caller,
        Operation::Alter,
        ResourceType::Cluster,
        CLUSTER,
    ) {
        let results = r
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                    .with_error_message(text("deleting ACLs needs Alter on the cluster"))
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<Result<AclFilter, &'static str>> = r.filters.iter().map(filter_of).collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|f| f.clone().ok()).collect();
    let mut deleted = match ctx.broker.delete_acls(valid).await {
        Ok(deleted) => deleted.into_iter(),
        Err(e) => {
            let results = r
                .filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(error_code(&e).code())
                        .with_error_message(text(e.to_string()))
                })
                .collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
    };
    let results = parsed
        .iter()
        .map(|f| match f {
            Err(why) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(text(*why)),
            Ok(_) => {
                let matched = deleted.next().unwrap_or_default();
                DeleteAclsFilterResult::default().with_matching_acls(
                    matched
                        .into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(resource_type_code(b.resource_type))
                                .with_resource_name(StrBytes::from_string(b.resource_name))
                                .with_pattern_type(pattern_type_code(b.pattern_type))
                                .with_principal(StrBytes::from_string(b.principal))
                                .with_host(StrBytes::from_string(b.host))
                                .with_operation(operation_code(b.operation))
                                .with_permission_type(permission_code(b.permission))
                        })
                        .collect(),
                )
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
