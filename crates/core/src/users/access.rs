//! The one authorisation decision for queues and exchanges, RabbitMQ's model: a user's
//! permission in a virtual host is three regular expressions, `configure`, `write` and `read`,
//! and an operation needs the one its kind names on each resource it touches
//! (<https://www.rabbitmq.com/docs/access-control>):
//!
//! | operation | configure | write | read |
//! |---|---|---|---|
//! | declare (not passive) or delete a queue or exchange | it | | |
//! | bind a queue (or exchange) to an exchange | | the queue (destination) | the exchange (source) |
//! | publish | | the exchange (`amq.default` for the default one) | |
//! | get, consume, purge | | | the queue |
//!
//! A pattern matches anywhere in the name unless it anchors itself (`^billing\.`), as
//! RabbitMQ's do; `""` matches nothing. Every gateway asks [`crate::VirtualHost::authorize`];
//! the patterns are compiled once per change of the users, not per check.

use std::collections::HashMap;
use std::fmt;

use regex::Regex;

use super::topic_access::TopicTable;
use super::{Permission, Users};

/// What an operation does to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

/// A resource a permission names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

/// The name permissions know the default exchange by (RabbitMQ's).
pub const DEFAULT_EXCHANGE_RESOURCE: &str = "amq.default";

impl Resource<'_> {
    fn name(&self) -> &str {
        match self {
            Resource::Queue(name) => name,
            Resource::Exchange("") => DEFAULT_EXCHANGE_RESOURCE,
            Resource::Exchange(name) => name,
        }
    }
}

impl fmt::Display for Resource<'_> {
    /// RabbitMQ's wording: `queue 'orders'`, `exchange 'amq.default'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Queue(_) => write!(f, "queue '{}'", self.name()),
            Resource::Exchange(_) => write!(f, "exchange '{}'", self.name()),
        }
    }
}

/// One compiled pattern.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// `.*` (the common case): no regex run.
    Everything,
    /// `""`.
    Nothing,
    Regex(Regex),
}

impl Pattern {
    pub(crate) fn compile(pattern: &str) -> Pattern {
        match pattern {
            ".*" | "^.*" | "^.*$" | ".*$" => Pattern::Everything,
            "" => Pattern::Nothing,
            // Stored patterns were validated when set; one that no longer compiles grants nothing.
            _ => Regex::new(pattern).map_or(Pattern::Nothing, Pattern::Regex),
        }
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Everything => true,
            Pattern::Nothing => false,
            Pattern::Regex(regex) => regex.is_match(name),
        }
    }
}

/// A permission, compiled.
#[derive(Clone, Debug)]
pub struct Grants {
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

impl Grants {
    pub fn new(permission: &Permission) -> Grants {
        Grants {
            configure: Pattern::compile(&permission.configure),
            write: Pattern::compile(&permission.write),
            read: Pattern::compile(&permission.read),
        }
    }

    pub fn allows(&self, access: Access, resource: Resource<'_>) -> bool {
        let pattern = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        pattern.matches(resource.name())
    }
}

/// Every user's compiled permissions: user → vhost → grants, and the topic permissions.
#[derive(Clone, Debug, Default)]
pub struct AccessTable {
    grants: HashMap<String, HashMap<String, Grants>>,
    topics: TopicTable,
}

impl AccessTable {
    pub fn new(users: &Users) -> AccessTable {
        let grants = users
            .permissions
            .iter()
            .map(|(user, vhosts)| {
                let of_user = vhosts
                    .iter()
                    .map(|(vhost, permission)| (vhost.clone(), Grants::new(permission)))
                    .collect();
                (user.clone(), of_user)
            })
            .collect();
        AccessTable {
            grants,
            topics: TopicTable::new(&users.topic_permissions),
        }
    }

    /// The topic permissions (see [`super::topic_access`]).
    pub fn topics(&self) -> &TopicTable {
        &self.topics
    }

    /// Whether `user` may do `access` to `resource` in `vhost`.
    pub fn allows(&self, user: &str, vhost: &str, access: Access, resource: Resource<'_>) -> bool {
        self.grants
            .get(user)
            .and_then(|of_user| of_user.get(vhost))
            .is_some_and(|grants| grants.allows(access, resource))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(configure: &str, write: &str, read: &str) -> Permission {
        Permission {
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        }
    }

    #[test]
    fn patterns_match_as_rabbitmq_s_do() {
        let billing = Grants::new(&permission(
            "^billing\\.",
            "^(billing\\..*|amq\\.default)$",
            "orders",
        ));
        assert!(billing.allows(Access::Configure, Resource::Queue("billing.invoices")));
        assert!(!billing.allows(Access::Configure, Resource::Queue("shipping.billing.x")));
        assert!(billing.allows(Access::Write, Resource::Exchange("")));
        assert!(!billing.allows(Access::Write, Resource::Exchange("amq.topic")));
        // Unanchored: anywhere in the name.
        assert!(billing.allows(Access::Read, Resource::Queue("eu-orders-1")));
        let nothing = Grants::new(&permission("", "", ""));
        assert!(!nothing.allows(Access::Read, Resource::Queue("")));
        let all = Grants::new(&Permission::all());
        assert!(all.allows(Access::Configure, Resource::Exchange("anything")));
    }

    #[test]
    fn the_table_answers_per_user_and_vhost() {
        let mut users = Users::default();
        users
            .permissions
            .entry("bob".into())
            .or_default()
            .insert("/".into(), permission("", ".*", ""));
        let table = AccessTable::new(&users);
        assert!(table.allows("bob", "/", Access::Write, Resource::Exchange("x")));
        assert!(!table.allows("bob", "/", Access::Read, Resource::Queue("q")));
        assert!(!table.allows("bob", "other", Access::Write, Resource::Exchange("x")));
        assert!(!table.allows("alice", "/", Access::Write, Resource::Exchange("x")));
        assert_eq!(Resource::Exchange("").to_string(), "exchange 'amq.default'");
    }
}
