//! RabbitMQ's topic authorisation (<https://www.rabbitmq.com/docs/access-control#topic-authorisation>):
//! on a topic exchange, a user's routing keys are checked too, not just the exchange's name.
//!
//! | operation | pattern | matched against |
//! |---|---|---|
//! | publish to a topic exchange | `write` | the message's routing key (an MQTT topic, a STOMP `/topic/` name) |
//! | bind to (or unbind from) a topic exchange | `read` | the binding key (an MQTT or STOMP subscription) |
//!
//! A user with no topic permission on an exchange is not restricted by this check (RabbitMQ's
//! default): topic permissions narrow what the exchange permission already grants. `{username}`
//! and `{vhost}` in a pattern are replaced, escaped, by the user's and virtual host's names when
//! the table is compiled, so `^chat\.{username}\.` gives each user their own subtree.

use std::collections::HashMap;

use super::access::{Access, Pattern};
use super::{TopicPermission, TopicPermissions};

/// One exchange's topic permission, compiled for one user and virtual host.
#[derive(Clone, Debug)]
struct TopicGrants {
    write: Pattern,
    read: Pattern,
}

impl TopicGrants {
    fn new(permission: &TopicPermission, user: &str, vhost: &str) -> TopicGrants {
        let expand = |pattern: &str| {
            Pattern::compile(
                &pattern
                    .replace("{username}", &regex::escape(user))
                    .replace("{vhost}", &regex::escape(vhost)),
            )
        };
        TopicGrants {
            write: expand(&permission.write),
            read: expand(&permission.read),
        }
    }
}

/// Every topic permission, compiled: user → vhost → exchange → grants.
#[derive(Clone, Debug, Default)]
pub struct TopicTable {
    grants: HashMap<String, HashMap<String, HashMap<String, TopicGrants>>>,
}

impl TopicTable {
    pub fn new(permissions: &TopicPermissions) -> TopicTable {
        let grants = permissions
            .iter()
            .map(|(user, vhosts)| {
                let of_user = vhosts
                    .iter()
                    .map(|(vhost, exchanges)| {
                        let of_vhost = exchanges
                            .iter()
                            .map(|(exchange, p)| {
                                (exchange.clone(), TopicGrants::new(p, user, vhost))
                            })
                            .collect();
                        (vhost.clone(), of_vhost)
                    })
                    .collect();
                (user.clone(), of_user)
            })
            .collect();
        TopicTable { grants }
    }

    /// Whether `user` may use `routing_key` on `exchange` in `vhost` for `access` (`Write`: publish,
    /// `Read`: bind); `None` when the user has no topic permission there (unrestricted). The
    /// caller applies the answer to topic exchanges only.
    pub fn allows(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        access: Access,
        routing_key: &str,
    ) -> Option<bool> {
        if self.grants.is_empty() {
            return None;
        }
        let grants = self.grants.get(user)?.get(vhost)?.get(exchange)?;
        let pattern = match access {
            Access::Write => &grants.write,
            Access::Read => &grants.read,
            Access::Configure => return None,
        };
        Some(pattern.matches(routing_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{UserChange, Users};

    fn table(write: &str, read: &str) -> TopicTable {
        let mut users = Users::default();
        users.apply(UserChange::SetTopicPermission {
            user: "bob.smith".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            permission: TopicPermission {
                write: write.into(),
                read: read.into(),
            },
        });
        TopicTable::new(&users.topic_permissions)
    }

    #[test]
    fn routing_keys_are_checked_per_exchange_with_variables_expanded() {
        let t = table("^chat\\.{username}\\.", "^chat\\.");
        let allows = |exchange, access, key| t.allows("bob.smith", "/", exchange, access, key);
        assert_eq!(
            allows("amq.topic", Access::Write, "chat.bob.smith.room1"),
            Some(true)
        );
        assert_eq!(
            allows("amq.topic", Access::Write, "chat.alice.room1"),
            Some(false)
        );
        // The user's name is escaped: its dot matches only a dot.
        assert_eq!(
            allows("amq.topic", Access::Write, "chat.bobXsmith.room1"),
            Some(false)
        );
        assert_eq!(allows("amq.topic", Access::Read, "chat.#"), Some(true));
        assert_eq!(allows("amq.topic", Access::Read, "logs.#"), Some(false));
        // No topic permission on another exchange, vhost or user: unrestricted.
        assert_eq!(allows("events", Access::Write, "anything"), None);
        assert_eq!(
            t.allows("bob.smith", "other", "amq.topic", Access::Write, "x"),
            None
        );
        assert_eq!(
            t.allows("alice", "/", "amq.topic", Access::Write, "x"),
            None
        );
        let nothing = table("", "");
        assert_eq!(
            nothing.allows("bob.smith", "/", "amq.topic", Access::Write, ""),
            Some(false)
        );
    }
}
