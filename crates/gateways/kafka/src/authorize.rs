//! Kafka authorisation on this gateway: with `[kafka] acls` on, every request that names a
//! topic, a group or the cluster asks the core's ACLs ([`porter_core::acl`]) whether the
//! caller may do the operation Kafka names for it. The caller is `User:<name>` after SASL,
//! `User:ANONYMOUS` without it (Kafka's names). Users tagged `administrator` are super users
//! (Kafka's `super.users`): always allowed. Refusals are logged once per request at debug, and
//! answered with the protocol's `*_AUTHORIZATION_FAILED` code by the handler.

pub use porter_core::acl::{Operation, ResourceType};

use crate::api::{Caller, Context};

/// The cluster resource's one name.
pub const CLUSTER: &str = "kafka-cluster";

/// Whether `caller` may do `operation` on the resource.
pub fn allowed(
    ctx: &Context,
    caller: &Caller,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if !ctx.config.acls {
        return true;
    }
    if is_super_user(caller) {
        return true;
    }
    let principal = principal_of(caller);
    let host = caller.peer.ip().to_string();
    let ok = ctx
        .broker
        .acls()
        .authorize(&principal, &host, operation, resource_type, name);
    if !ok {
        tracing::debug!(%principal, %host, ?operation, ?resource_type, name, "Kafka ACLs refused");
    }
    ok
}

/// Whether `caller` authenticated as a user tagged `administrator` (Kafka's `super.users`).
pub fn is_super_user(caller: &Caller) -> bool {
    caller
        .principal
        .as_ref()
        .is_some_and(|p| p.tags.iter().any(|t| t == "administrator"))
}

/// Kafka's principal string for `caller`.
pub fn principal_of(caller: &Caller) -> String {
    match &caller.principal {
        Some(p) => format!("User:{}", p.user),
        None => "User:ANONYMOUS".to_string(),
    }
}
