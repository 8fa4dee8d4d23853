//! Kafka's ACLs (KIP-140's model, as `kafka-acls.sh` and AdminClient's `create_acls` speak it):
//! bindings of (resource type, name, literal or prefixed pattern) to (principal, host,
//! operation, allow or deny), kept as metadata commands like every other definition, and the
//! authorisation decision over them, Kafka's `AclAuthorizer` rules:
//!
//! - a binding matches a resource when its literal name is the resource's name or `*`, or its
//!   prefixed name starts the resource's name; its principal is the caller's or `User:*`; its
//!   host is the caller's address or `*`;
//! - any matching DENY for the operation (or `All`) refuses, whatever allows it;
//! - otherwise a matching ALLOW for the operation (or `All`) grants it; `Describe` is also
//!   granted by `Read`, `Write`, `Delete` or `Alter`, and `DescribeConfigs` by `AlterConfigs`;
//! - with no binding for the caller at all, the operation is refused (Kafka's default
//!   `allow.everyone.if.no.acl.found=false`).
//!
//! Super users (Porter: users tagged `administrator`) are the gateway's to let through.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Bindings the broker holds at most: each is a few hundred bytes of metadata.
pub const ACLS_MAX: usize = 100_000;
/// Longest resource name, principal or host in a binding.
pub const ACL_FIELD_BYTES_MAX: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    /// The operations whose grant also grants this one (Kafka's implied operations).
    fn granted_by(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Describe => &[Describe, Read, Write, Delete, Alter],
            DescribeConfigs => &[DescribeConfigs, AlterConfigs],
            Read => &[Read],
            Write => &[Write],
            Create => &[Create],
            Delete => &[Delete],
            Alter => &[Alter],
            ClusterAction => &[ClusterAction],
            AlterConfigs => &[AlterConfigs],
            IdempotentWrite => &[IdempotentWrite],
            All => &[All],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

/// One ACL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    fn names(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && (self.host == "*" || self.host == host)
    }
}

/// How a filter matches bindings' patterns (Kafka's `PatternType` in a filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type, with the name (if given) equal.
    Any,
    /// The bindings that would apply to a resource of that name: literal equal or `*`, or a
    /// prefix of it.
    Match,
    Exactly(PatternType),
}

/// A filter over bindings (DescribeAcls, DeleteAcls): `None` matches anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let name_ok = match (&self.resource_name, self.pattern) {
            (None, PatternFilter::Exactly(p)) => b.pattern_type == p,
            (None, _) => true,
            (Some(name), PatternFilter::Any) => &b.resource_name == name,
            (Some(name), PatternFilter::Exactly(p)) => {
                b.pattern_type == p && &b.resource_name == name
            }
            (Some(name), PatternFilter::Match) => match b.pattern_type {
                PatternType::Literal => &b.resource_name == name || b.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&b.resource_name),
            },
        };
        name_ok
            && self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.principal.as_ref().is_none_or(|p| p == &b.principal)
            && self.host.as_ref().is_none_or(|h| h == &b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// A change to the ACLs: a metadata command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AclChange {
    Create { bindings: Vec<AclBinding> },
    Delete { bindings: Vec<AclBinding> },
}

/// Every ACL of the broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acls {
    pub bindings: BTreeSet<AclBinding>,
}

/// Why a binding can't be created.
pub fn validate(binding: &AclBinding) -> Result<()> {
    let invalid = |why: &str| Err(CoreError::InvalidRequest(why.to_string()));
    for field in [&binding.resource_name, &binding.principal, &binding.host] {
        if field.is_empty() || field.len() > ACL_FIELD_BYTES_MAX {
            return invalid("resource name, principal and host must be 1 to 1024 bytes");
        }
    }
    if !binding.principal.contains(':') {
        return invalid("a principal is TYPE:NAME, e.g. User:alice");
    }
    if binding.resource_type == ResourceType::Cluster && binding.resource_name != "kafka-cluster" {
        return invalid("the cluster resource is named kafka-cluster");
    }
    Ok(())
}

impl Acls {
    pub fn check(&self, change: &AclChange) -> Result<()> {
        if let AclChange::Create { bindings } = change {
            bindings.iter().try_for_each(validate)?;
            let new = bindings
                .iter()
                .filter(|b| !self.bindings.contains(b))
                .count();
            if self.bindings.len() + new > ACLS_MAX {
                return Err(CoreError::LimitExceeded(format!(
                    "the broker holds at most {ACLS_MAX} ACLs"
                )));
            }
        }
        Ok(())
    }

    pub fn apply(&mut self, change: AclChange) {
        match change {
            AclChange::Create { bindings } => self.bindings.extend(bindings),
            AclChange::Delete { bindings } => {
                for binding in &bindings {
                    self.bindings.remove(binding);
                }
            }
        }
    }

    /// The bindings `filter` matches.
    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.bindings
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Whether `principal` at `host` may do `operation` on the resource (see the module doc).
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let applying = || {
            self.bindings
                .iter()
                .filter(move |b| b.names(resource_type, name) && b.applies_to(principal, host))
        };
        let denied = applying().any(|b| {
            b.permission == Permission::Deny
                && (b.operation == operation || b.operation == Operation::All)
        });
        if denied {
            return false;
        }
        let granting = operation.granted_by();
        applying().any(|b| {
            b.permission == Permission::Allow
                && (b.operation == Operation::All || granting.contains(&b.operation))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    #[test]
    fn kafka_s_rules() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let mut acls = Acls::default();
        acls.apply(AclChange::Create {
            bindings: vec![
                acl(Topic, "orders", Literal, "User:alice", Write, Allow),
                acl(Topic, "billing.", Prefixed, "User:bob", Read, Allow),
                acl(Topic, "billing.secret", Literal, "User:bob", Read, Deny),
                acl(Topic, "*", Literal, "User:*", Describe, Allow),
                acl(Group, "app", Literal, "User:bob", All, Allow),
            ],
        });
        let ok = |p, o, t, n| acls.authorize(p, "10.0.0.1", o, t, n);
        assert!(ok("User:alice", Write, Topic, "orders"));
        assert!(!ok("User:alice", Read, Topic, "orders"));
        assert!(!ok("User:alice", Write, Topic, "orders2"));
        assert!(ok("User:bob", Read, Topic, "billing.invoices"));
        assert!(!ok("User:bob", Read, Topic, "billing.secret"), "deny wins");
        assert!(
            ok("User:bob", Describe, Topic, "billing.invoices"),
            "read implies describe"
        );
        assert!(
            ok("User:carol", Describe, Topic, "anything"),
            "User:* and *"
        );
        assert!(ok("User:bob", Read, Group, "app"), "All");
        assert!(!ok("User:bob", Read, Group, "other"), "no ACL: refused");
        assert!(!ok("User:carol", Write, Cluster, "kafka-cluster"));
    }

    #[test]
    fn filters_match_as_kafka_s_do() {
        use PatternType::*;
        let b = acl(
            ResourceType::Topic,
            "billing.",
            Prefixed,
            "User:bob",
            Operation::Read,
            Permission::Allow,
        );
        let mut filter = AclFilter {
            resource_type: None,
            resource_name: Some("billing.invoices".into()),
            pattern: PatternFilter::Match,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        assert!(filter.matches(&b));
        filter.pattern = PatternFilter::Any;
        assert!(!filter.matches(&b));
        filter.resource_name = Some("billing.".into());
        assert!(filter.matches(&b));
        filter.pattern = PatternFilter::Exactly(Literal);
        assert!(!filter.matches(&b));
        filter.pattern = PatternFilter::Exactly(Prefixed);
        filter.principal = Some("User:alice".into());
        assert!(!filter.matches(&b));
    }
}
