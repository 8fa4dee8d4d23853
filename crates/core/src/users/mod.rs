//! The broker's users: names, password credentials ([`credential`]), RabbitMQ's tags
//! (`administrator`, `monitoring`, `management`, `policymaker`) and per-virtual-host permissions
//! (configure, write and read regular expressions, RabbitMQ's model). They are metadata: every
//! change is a [`crate::metadata::MetadataCommand`] in the journal, so users survive restarts and
//! replicate with the rest later.
//!
//! The first start seeds the store from the configuration (by default `guest`/`guest`, loopback
//! only, as RabbitMQ does); after that the management API and `porter users` change it.

pub mod access;
pub mod credential;
pub mod scram;
pub mod throttle;
pub mod tokens;
pub mod topic_access;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
pub use credential::{PasswordCredentials, ScramCredential, ScramMechanism};

/// Longest user name (RabbitMQ and Kafka take any UTF-8; a bound keeps the journal sane).
pub const USER_NAME_BYTES_MAX: usize = 255;
/// Users the broker holds at most: each is a few hundred bytes of metadata.
pub const USERS_MAX: usize = 10_000;
/// The tags the broker knows, as RabbitMQ names them.
pub const KNOWN_TAGS: [&str; 5] = [
    "administrator",
    "monitoring",
    "management",
    "policymaker",
    "impersonator",
];

/// One user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// `None`: the user cannot log in with a password (RabbitMQ's passwordless users, for
    /// certificate logins).
    pub credentials: Option<PasswordCredentials>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only from a loopback address (RabbitMQ's `loopback_users`, `guest` by default).
    #[serde(default)]
    pub loopback_only: bool,
    /// RocketMQ's SecretKey for this user (its AccessKey is the user's name): the shared secret
    /// its clients sign requests with (HMAC-SHA1). Verifying an HMAC needs the secret itself,
    /// so unlike the password it is kept as given, as RocketMQ's own ACL keeps it; a user has
    /// one only when an administrator sets it. Never shown by the API after it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_secret: Option<String>,
    /// RabbitMQ's user limits (`rabbitmqctl set_user_limits`).
    #[serde(default, skip_serializing_if = "UserLimits::is_empty")]
    pub limits: UserLimits,
    /// The HTTP API's bearer tokens of this user (see [`tokens`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_tokens: Vec<tokens::ApiToken>,
}

/// RabbitMQ's per-user limits (`None`: no limit): `max-connections`, the user's client
/// connections on every protocol at once, and `max-channels`, its AMQP channels across them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLimits {
    pub max_connections: Option<u64>,
    #[serde(default)]
    pub max_channels: Option<u64>,
}

impl UserLimits {
    pub const MAX_CONNECTIONS: &'static str = "max-connections";
    pub const MAX_CHANNELS: &'static str = "max-channels";

    /// Sets `name` (`None` or a negative value, as RabbitMQ takes it: no limit).
    pub fn set(&mut self, name: &str, value: Option<i64>) -> Result<()> {
        let value = value.and_then(|v| u64::try_from(v).ok());
        match name {
            Self::MAX_CONNECTIONS => self.max_connections = value,
            Self::MAX_CHANNELS => self.max_channels = value,
            other => {
                return Err(CoreError::InvalidRequest(format!(
                    "unknown user limit {other:?} (max-connections, max-channels)"
                )))
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_channels.is_none()
    }

    /// As RabbitMQ's API shows them: `{"max-connections": 10}`.
    pub fn as_map(&self) -> BTreeMap<&'static str, u64> {
        [
            (Self::MAX_CONNECTIONS, self.max_connections),
            (Self::MAX_CHANNELS, self.max_channels),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
        .collect()
    }
}

impl User {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Whether the management API lets this user in at all (RabbitMQ: any management tag).
    pub fn may_manage(&self) -> bool {
        ["administrator", "monitoring", "management", "policymaker"]
            .iter()
            .any(|t| self.has_tag(t))
    }
}

/// What a user may do in one virtual host: regular expressions over resource names, as
/// RabbitMQ's `set_permissions` takes them (`".*"` everything, `""` nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Permission {
    /// Everything (`".*"` three times): what the seeded users get on `/`.
    pub fn all() -> Permission {
        Permission {
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }
    }
}

/// RabbitMQ's topic permission: on one topic exchange, regular expressions over the routing keys
/// a user may publish with (`write`) and bind or subscribe with (`read`). `{username}` and
/// `{vhost}` in a pattern stand for the user's name and the virtual host's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermission {
    pub write: String,
    pub read: String,
}

/// user → vhost → exchange → topic permission.
pub type TopicPermissions = BTreeMap<String, BTreeMap<String, BTreeMap<String, TopicPermission>>>;

/// The users part of the metadata state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Users {
    pub users: BTreeMap<String, User>,
    /// user → vhost → permission.
    pub permissions: BTreeMap<String, BTreeMap<String, Permission>>,
    /// Topic permissions (journals from before they existed have none).
    #[serde(default)]
    pub topic_permissions: TopicPermissions,
}

/// A user change, checked by [`Users::check`] and applied by [`Users::apply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum UserChange {
    /// Creates the user or replaces it whole.
    Put {
        user: User,
    },
    /// Removes the user and every permission of it.
    Delete {
        name: String,
    },
    SetPermission {
        user: String,
        vhost: String,
        permission: Permission,
    },
    ClearPermission {
        user: String,
        vhost: String,
    },
    SetTopicPermission {
        user: String,
        vhost: String,
        exchange: String,
        permission: TopicPermission,
    },
    /// Clears one exchange's topic permission, or with `exchange: None` all of them in `vhost`.
    ClearTopicPermission {
        user: String,
        vhost: String,
        exchange: Option<String>,
    },
}

/// A fresh access secret: 24 random bytes as 48 hex digits (RocketMQ's SecretKeys are
/// printable strings the clients take as given).
pub fn new_access_secret() -> String {
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).expect("the OS random source");
    crate::hex::encode(&random)
}

pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > USER_NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(CoreError::InvalidRequest(format!(
            "invalid user name {name:?}: 1 to {USER_NAME_BYTES_MAX} bytes, no control characters"
        )));
    }
    Ok(())
}

fn validate_pattern(pattern: &str) -> Result<()> {
    // Topic patterns' variables are substituted (escaped) before compiling: check with a stand-in.
    let pattern = pattern
        .replace("{username}", "u")
        .replace("{vhost}", "v")
        .replace("{client_id}", "c");
    regex::Regex::new(&pattern).map(drop).map_err(|e| {
        CoreError::InvalidRequest(format!("{pattern:?} is not a regular expression: {e}"))
    })
}

impl Users {
    pub fn check(&self, change: &UserChange) -> Result<()> {
        match change {
            UserChange::Put { user } => {
                validate_name(&user.name)?;
                if let Some(tag) = user.tags.iter().find(|t| !KNOWN_TAGS.contains(&t.as_str())) {
                    return Err(CoreError::InvalidRequest(format!(
                        "unknown tag {tag:?}: use {}",
                        KNOWN_TAGS.join(", ")
                    )));
                }
                if !self.users.contains_key(&user.name) && self.users.len() >= USERS_MAX {
                    return Err(CoreError::LimitExceeded(format!(
                        "{USERS_MAX} users (USERS_MAX)"
                    )));
                }
                Ok(())
            }
            UserChange::Delete { name } => self.known(name),
            UserChange::SetPermission {
                user, permission, ..
            } => {
                self.known(user)?;
                validate_pattern(&permission.configure)?;
                validate_pattern(&permission.write)?;
                validate_pattern(&permission.read)
            }
            UserChange::ClearPermission { user, vhost } => {
                if self
                    .permissions
                    .get(user)
                    .is_some_and(|p| p.contains_key(vhost))
                {
                    Ok(())
                } else {
                    Err(CoreError::NotFound(format!(
                        "no permissions for user {user:?} in vhost {vhost:?}"
                    )))
                }
            }
            UserChange::SetTopicPermission {
                user, permission, ..
            } => {
                self.known(user)?;
                validate_pattern(&permission.write)?;
                validate_pattern(&permission.read)
            }
            UserChange::ClearTopicPermission {
                user,
                vhost,
                exchange,
            } => {
                let of_vhost = self.topic_permissions.get(user).and_then(|p| p.get(vhost));
                let found = match exchange {
                    Some(exchange) => of_vhost.is_some_and(|p| p.contains_key(exchange)),
                    None => of_vhost.is_some(),
                };
                if found {
                    Ok(())
                } else {
                    Err(CoreError::NotFound(format!(
                        "no topic permissions for user {user:?} in vhost {vhost:?}"
                    )))
                }
            }
        }
    }

    fn known(&self, name: &str) -> Result<()> {
        if self.users.contains_key(name) {
            Ok(())
        } else {
            Err(CoreError::NotFound(format!("no user {name:?}")))
        }
    }

    /// Applies a checked change.
    pub fn apply(&mut self, change: UserChange) {
        match change {
            UserChange::Put { user } => {
                self.users.insert(user.name.clone(), user);
            }
            UserChange::Delete { name } => {
                self.users.remove(&name);
                self.permissions.remove(&name);
                self.topic_permissions.remove(&name);
            }
            UserChange::SetPermission {
                user,
                vhost,
                permission,
            } => {
                self.permissions
                    .entry(user)
                    .or_default()
                    .insert(vhost, permission);
            }
            UserChange::ClearPermission { user, vhost } => {
                if let Some(of_user) = self.permissions.get_mut(&user) {
                    of_user.remove(&vhost);
                    if of_user.is_empty() {
                        self.permissions.remove(&user);
                    }
                }
            }
            UserChange::SetTopicPermission {
                user,
                vhost,
                exchange,
                permission,
            } => {
                self.topic_permissions
                    .entry(user)
                    .or_default()
                    .entry(vhost)
                    .or_default()
                    .insert(exchange, permission);
            }
            UserChange::ClearTopicPermission {
                user,
                vhost,
                exchange,
            } => {
                let Some(of_user) = self.topic_permissions.get_mut(&user) else {
                    return;
                };
                match exchange {
                    Some(exchange) => {
                        if let Some(of_vhost) = of_user.get_mut(&vhost) {
                            of_vhost.remove(&exchange);
                            if of_vhost.is_empty() {
                                of_user.remove(&vhost);
                            }
                        }
                    }
                    None => {
                        of_user.remove(&vhost);
                    }
                }
                if of_user.is_empty() {
                    self.topic_permissions.remove(&user);
                }
            }
        }
    }

    /// Removes a deleted virtual host's permissions (applied with `DeleteVhost`; whoever submits
    /// that command must refresh the broker's users snapshot, as `Broker::submit_user_change`
    /// does for user changes).
    pub fn forget_vhost(&mut self, vhost: &str) {
        for of_user in self.permissions.values_mut() {
            of_user.remove(vhost);
        }
        self.permissions.retain(|_, p| !p.is_empty());
        for of_user in self.topic_permissions.values_mut() {
            of_user.remove(vhost);
        }
        self.topic_permissions.retain(|_, p| !p.is_empty());
    }

    pub fn permission(&self, user: &str, vhost: &str) -> Option<&Permission> {
        self.permissions.get(user).and_then(|p| p.get(vhost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, tags: &[&str]) -> User {
        User {
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            loopback_only: false,
            ..User::default()
        }
    }

    #[test]
    fn changes_are_checked_then_applied() {
        let mut users = Users::default();
        let put = UserChange::Put {
            user: user("ops", &["administrator"]),
        };
        users.check(&put).unwrap();
        users.apply(put);
        assert!(users.users["ops"].may_manage());
        assert!(users
            .check(&UserChange::Put {
                user: user("x", &["wizard"])
            })
            .is_err());
        assert!(users
            .check(&UserChange::Put {
                user: user("", &[])
            })
            .is_err());
        let grant = UserChange::SetPermission {
            user: "ops".into(),
            vhost: "/".into(),
            permission: Permission::all(),
        };
        users.check(&grant).unwrap();
        users.apply(grant);
        assert_eq!(users.permission("ops", "/"), Some(&Permission::all()));
        let bad = UserChange::SetPermission {
            user: "ops".into(),
            vhost: "/".into(),
            permission: Permission {
                configure: "(".into(),
                ..Permission::all()
            },
        };
        assert!(users.check(&bad).is_err(), "not a regular expression");
        assert!(users
            .check(&UserChange::SetPermission {
                user: "nobody".into(),
                vhost: "/".into(),
                permission: Permission::all()
            })
            .is_err());
        let topic = |read: &str| UserChange::SetTopicPermission {
            user: "ops".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            permission: TopicPermission {
                write: "^{username}\\.".into(),
                read: read.into(),
            },
        };
        assert!(
            users.check(&topic("(")).is_err(),
            "not a regular expression"
        );
        let topic = topic(".*");
        users.check(&topic).unwrap();
        users.apply(topic);
        let clear_other = UserChange::ClearTopicPermission {
            user: "ops".into(),
            vhost: "/".into(),
            exchange: Some("events".into()),
        };
        assert!(users.check(&clear_other).is_err(), "nothing to clear");
        users.forget_vhost("/");
        assert_eq!(users.permission("ops", "/"), None);
        assert!(users.topic_permissions.is_empty());
        users.apply(UserChange::Delete { name: "ops".into() });
        assert!(users.users.is_empty());
    }
}
