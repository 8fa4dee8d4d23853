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
//! `{client_id}` (RabbitMQ's, for MQTT) is replaced at each check by the MQTT client's id, the
//! pattern compiled then (only such patterns pay that); a protocol without client ids matches
//! nothing against it.

use std::collections::HashMap;

use super::access::{Access, Pattern};
use super::{TopicPermission, TopicPermissions};

/// A use of a routing key a topic permission decides.
#[derive(Clone, Copy, Debug)]
pub struct TopicUse<'a> {
    pub exchange: &'a str,
    /// `Write`: publish with `routing_key`; `Read`: bind with it.
    pub access: Access,
    pub routing_key: &'a str,
    /// The MQTT client's id, for `{client_id}`.
    pub client_id: Option<&'a str>,
}

/// One pattern: compiled, or waiting for the client id it names.
#[derive(Clone, Debug)]
enum TopicPattern {
    Compiled(Pattern),
    PerClient(String),
}

impl TopicPattern {
    fn new(pattern: &str, user: &str, vhost: &str) -> TopicPattern {
        let expanded = pattern
            .replace("{username}", &regex::escape(user))
            .replace("{vhost}", &regex::escape(vhost));
        if expanded.contains("{client_id}") {
            TopicPattern::PerClient(expanded)
        } else {
            TopicPattern::Compiled(Pattern::compile(&expanded))
        }
    }

    fn matches(&self, key: &str, client_id: Option<&str>) -> bool {
        match (self, client_id) {
            (TopicPattern::Compiled(p), _) => p.matches(key),
            (TopicPattern::PerClient(template), Some(id)) => {
                Pattern::compile(&template.replace("{client_id}", &regex::escape(id))).matches(key)
            }
            (TopicPattern::PerClient(_), None) => false,
        }
    }
}

/// One exchange's topic permission, compiled for one user and virtual host.
#[derive(Clone, Debug)]
struct TopicGrants {
    write: TopicPattern,
    read: TopicPattern,
}

impl TopicGrants {
    fn new(permission: &TopicPermission, user: &str, vhost: &str) -> TopicGrants {
        TopicGrants {
            write: TopicPattern::new(&permission.write, user, vhost),
            read: TopicPattern::new(&permission.read, user, vhost),
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

    /// Whether `user` may make `topic`'s use of its routing key in `vhost`; `None` when the
    /// user has no topic permission on that exchange (unrestricted). The caller applies the
    /// answer to topic exchanges only.
    pub fn allows(&self, user: &str, vhost: &str, topic: &TopicUse<'_>) -> Option<bool> {
        if self.grants.is_empty() {
            return None;
        }
        let grants = self.grants.get(user)?.get(vhost)?.get(topic.exchange)?;
        let pattern = match topic.access {
            Access::Write => &grants.write,
            Access::Read => &grants.read,
            Access::Configure => return None,
        };
        Some(pattern.matches(topic.routing_key, topic.client_id))
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
        let allows = |exchange, access, key| {
            t.allows("bob.smith", "/", &use_of(exchange, access, key, None))
        };
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
        let write_x = use_of("amq.topic", Access::Write, "x", None);
        assert_eq!(t.allows("bob.smith", "other", &write_x), None);
        assert_eq!(t.allows("alice", "/", &write_x), None);
        let nothing = table("", "");
        let write_empty = use_of("amq.topic", Access::Write, "", None);
        assert_eq!(nothing.allows("bob.smith", "/", &write_empty), Some(false));
    }

    #[test]
    fn client_id_is_the_mqtt_client_s_at_each_check() {
        let t = table("^devices\\.{client_id}\\.", ".*");
        let publish = |key, client| {
            t.allows(
                "bob.smith",
                "/",
                &use_of("amq.topic", Access::Write, key, client),
            )
        };
        assert_eq!(publish("devices.d-1.temp", Some("d-1")), Some(true));
        assert_eq!(publish("devices.d-2.temp", Some("d-1")), Some(false));
        // Escaped: a client id's dot is a dot; no client id, no match.
        assert_eq!(publish("devices.dX1.temp", Some("d.1")), Some(false));
        assert_eq!(publish("devices.d-1.temp", None), Some(false));
    }

    fn use_of<'a>(
        exchange: &'a str,
        access: Access,
        routing_key: &'a str,
        client_id: Option<&'a str>,
    ) -> TopicUse<'a> {
        TopicUse {
            exchange,
            access,
            routing_key,
            client_id,
        }
    }
}
