//! The broker's calls for users: reading, changing (each a metadata command) and checking a
//! password. Password stretching (PBKDF2: 1.6 ms of CPU in a release build, BENCHMARKS.md) runs
//! on the blocking pool, never on a reactor thread.
//!
//! Logins and permission checks read a snapshot of the users taken after each change, never the
//! metadata lock (held across journal fsyncs): a login waits for no declare, on any thread.
//!
//! A successful login is remembered as `SHA-256(StoredKey || password)` per user, in memory
//! only, so a client reconnecting in a loop does not cost a PBKDF2 each time; a changed
//! password changes `StoredKey` and so misses the cache. At most one entry per user.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::metadata::MetadataCommand;
use crate::metadata::MetadataStore;
use crate::partition::run_blocking;
use crate::users::access::{Access, AccessTable, Resource};
use crate::users::scram::{ClientFirst, ScramError, ScramExchange};
use crate::users::throttle::LoginThrottle;
use crate::users::{
    PasswordCredentials, Permission, ScramCredential, ScramMechanism, TopicPermission, User,
    UserChange, Users,
};

use super::Broker;

/// The users as of their last change, and recent successful logins: user → digest of (stored
/// key, password).
pub struct UserCache {
    snapshot: RwLock<Snapshot>,
    digests: Mutex<HashMap<String, [u8; 32]>>,
    /// Failed logins per source address (see [`crate::users::throttle`]).
    throttle: LoginThrottle,
}

/// The users and their compiled permissions, replaced together.
#[derive(Clone)]
struct Snapshot {
    users: Arc<Users>,
    access: Arc<AccessTable>,
    /// API token digest → its owner.
    tokens: Arc<HashMap<String, String>>,
}

impl Snapshot {
    fn of(users: Users) -> Snapshot {
        let tokens = users
            .users
            .values()
            .flat_map(|u| {
                u.api_tokens
                    .iter()
                    .map(|t| (t.digest.clone(), u.name.clone()))
            })
            .collect();
        Snapshot {
            access: Arc::new(AccessTable::new(&users)),
            tokens: Arc::new(tokens),
            users: Arc::new(users),
        }
    }
}

impl UserCache {
    pub(crate) fn new(users: Users) -> Self {
        UserCache {
            snapshot: RwLock::new(Snapshot::of(users)),
            digests: Mutex::new(HashMap::new()),
            throttle: LoginThrottle::default(),
        }
    }

    fn snapshot(&self) -> Arc<Users> {
        self.snapshot.read().users.clone()
    }

    /// Whether `user` may do `access` to `resource` in `vhost` (see [`crate::users::access`]).
    pub(crate) fn allows(
        &self,
        user: &str,
        vhost: &str,
        access: Access,
        resource: Resource<'_>,
    ) -> bool {
        // Under the read lock (one atomic add, no clone): this runs for every AMQP publish.
        self.snapshot
            .read()
            .access
            .allows(user, vhost, access, resource)
    }

    /// The owner of the API token with this digest, if any.
    pub(crate) fn token_owner(&self, digest: &str) -> Option<String> {
        self.snapshot.read().tokens.get(digest).cloned()
    }

    /// Whether `user`'s topic permission on `exchange` lets `routing_key` through (see
    /// [`crate::users::topic_access`]); `None` when it has none there.
    pub(crate) fn topic_allows(
        &self,
        user: &str,
        vhost: &str,
        topic: &crate::users::topic_access::TopicUse<'_>,
    ) -> Option<bool> {
        self.snapshot
            .read()
            .access
            .topics()
            .allows(user, vhost, topic)
    }
}

/// What to do with a user's password when it is put.
#[derive(Clone, Debug)]
pub enum PasswordChange {
    /// Keep the current credentials (none for a new user).
    Keep,
    /// New credentials from this password.
    Set(String),
    /// Credentials made elsewhere (a definitions import, Kafka's AlterUserScramCredentials).
    Credentials(PasswordCredentials),
    /// No password: the user cannot log in with one.
    Clear,
}

/// One change to a user's SCRAM credentials.
#[derive(Clone, Debug)]
pub enum ScramChange {
    Put(ScramCredential),
    Delete(ScramMechanism),
}

/// Why a password login failed; the text is for the broker's log only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("no user {0:?}")]
    UnknownUser(String),
    #[error("user {0:?} has no password")]
    NoPassword(String),
    #[error("wrong password for user {0:?}")]
    WrongPassword(String),
    #[error("user {0:?} may log in from loopback addresses only")]
    LoopbackOnly(String),
    #[error("user {0:?} has no access secret")]
    NoAccessSecret(String),
    #[error("wrong signature for user {0:?}")]
    WrongSignature(String),
    #[error("unknown or expired API token")]
    BadToken,
    #[error("user {user:?}: {error}")]
    Scram { user: String, error: ScramError },
    #[error("user {user:?} has no {mechanism} credential")]
    NoScramCredential {
        user: String,
        mechanism: &'static str,
    },
    /// Too many failed logins from this address lately: refused without a check.
    #[error("too many failed logins from {address}: refused for {secs} s more")]
    Throttled { address: IpAddr, secs: u64 },
}

impl LoginError {
    /// Whether the address was refused for its earlier failures (logged once, by the throttle).
    pub fn is_throttled(&self) -> bool {
        matches!(self, LoginError::Throttled { .. })
    }
}

fn digest(stored_key: &[u8], password: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(stored_key);
    hash.update(password);
    hash.finalize().into()
}

impl Broker {
    /// Every user, by name.
    pub fn users(&self) -> Vec<User> {
        self.users.snapshot().users.values().cloned().collect()
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.users.snapshot().users.get(name).cloned()
    }

    /// Every permission: (user, vhost, permission), by user then vhost.
    pub fn permissions(&self) -> Vec<(String, String, Permission)> {
        self.users
            .snapshot()
            .permissions
            .iter()
            .flat_map(|(user, of_user)| {
                of_user
                    .iter()
                    .map(move |(vhost, p)| (user.clone(), vhost.clone(), p.clone()))
            })
            .collect()
    }

    /// `user`'s permission in `vhost`, if it has one.
    pub fn permission(&self, user: &str, vhost: &str) -> Option<Permission> {
        self.users.snapshot().permission(user, vhost).cloned()
    }

    /// Creates or replaces user `name`; returns whether it was created.
    pub async fn put_user(
        self: &Arc<Self>,
        name: &str,
        password: PasswordChange,
        tags: Vec<String>,
        loopback_only: bool,
    ) -> Result<bool> {
        let this = self.clone();
        let name = name.to_string();
        run_blocking(move || {
            // Stretch the password before taking the metadata lock.
            let fresh = match &password {
                PasswordChange::Set(p) => Some(PasswordCredentials::from_password(p)),
                _ => None,
            };
            let mut metadata = this.metadata.lock();
            let existing = metadata.state().users.users.get(&name).cloned();
            let credentials = match password {
                PasswordChange::Keep => existing.as_ref().and_then(|u| u.credentials.clone()),
                PasswordChange::Set(_) => fresh,
                PasswordChange::Credentials(c) => Some(c),
                PasswordChange::Clear => None,
            };
            let user = User {
                name: name.clone(),
                credentials,
                tags,
                loopback_only,
                // What a put does not name (access secret, limits, tokens) stays.
                ..existing.clone().unwrap_or_default()
            };
            this.submit_user_change(&mut metadata, UserChange::Put { user })?;
            tracing::info!(user = %name, created = existing.is_none(), "user put");
            Ok(existing.is_none())
        })
        .await
    }

    /// Sets (or with `None` removes) user `name`'s access secret, RocketMQ's SecretKey.
    pub async fn set_access_secret(
        self: &Arc<Self>,
        name: &str,
        secret: Option<String>,
    ) -> Result<()> {
        let set = secret.is_some();
        self.change_user(name, move |user| {
            user.access_secret = secret;
            Ok(())
        })
        .await?;
        tracing::info!(user = %name, set, "access secret changed");
        Ok(())
    }

    /// Sets user limit `limit` of user `name` (`None` or negative: no limit).
    pub async fn set_user_limit(
        self: &Arc<Self>,
        name: &str,
        limit: &str,
        value: Option<i64>,
    ) -> Result<()> {
        let limit_name = limit.to_string();
        self.change_user(name, move |user| user.limits.set(&limit_name, value))
            .await?;
        tracing::info!(user = %name, limit, ?value, "user limit set");
        Ok(())
    }

    /// The limits of user `name`, if it is in the store.
    pub(crate) fn user_limits(&self, name: &str) -> Option<crate::users::UserLimits> {
        let snapshot = self.users.snapshot.read();
        snapshot.users.users.get(name).map(|u| u.limits)
    }

    /// Reads user `name`, changes it with `change`, and journals it, under the metadata lock.
    pub(crate) async fn change_user(
        self: &Arc<Self>,
        name: &str,
        change: impl FnOnce(&mut User) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let this = self.clone();
        let name = name.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            let Some(mut user) = metadata.state().users.users.get(&name).cloned() else {
                return Err(CoreError::NotFound(format!("no user {name:?}")));
            };
            change(&mut user)?;
            this.submit_user_change(&mut metadata, UserChange::Put { user })
        })
        .await
    }

    /// Checks a request signed with user `name`'s access secret (RocketMQ's AccessKey/SecretKey
    /// scheme): `verify` gets the secret and says whether the signature matches. Throttled and
    /// counted like a password login.
    pub fn signature_login(
        &self,
        name: &str,
        peer: IpAddr,
        verify: impl FnOnce(&[u8]) -> bool,
    ) -> std::result::Result<User, LoginError> {
        self.throttled(peer, name)?;
        let checked =
            self.vouched_login(name, peer)
                .and_then(|user| match user.access_secret.as_deref() {
                    None => Err(LoginError::NoAccessSecret(name.to_string())),
                    Some(secret) if verify(secret.as_bytes()) => Ok(user),
                    Some(_) => Err(LoginError::WrongSignature(name.to_string())),
                });
        self.count_failure(checked, peer, name)
    }

    pub async fn delete_user(self: &Arc<Self>, name: &str) -> Result<()> {
        self.user_change(UserChange::Delete {
            name: name.to_string(),
        })
        .await?;
        tracing::info!(user = %name, "user deleted");
        Ok(())
    }

    /// Sets `user`'s permission in `vhost` (which must exist).
    pub async fn set_permission(
        self: &Arc<Self>,
        user: &str,
        vhost: &str,
        permission: Permission,
    ) -> Result<()> {
        self.routing_table(vhost)?;
        self.user_change(UserChange::SetPermission {
            user: user.to_string(),
            vhost: vhost.to_string(),
            permission,
        })
        .await
    }

    /// Every topic permission: (user, vhost, exchange, permission), sorted.
    pub fn topic_permissions(&self) -> Vec<(String, String, String, TopicPermission)> {
        let users = self.users.snapshot();
        let mut all = Vec::new();
        for (user, of_user) in &users.topic_permissions {
            for (vhost, of_vhost) in of_user {
                for (exchange, p) in of_vhost {
                    all.push((user.clone(), vhost.clone(), exchange.clone(), p.clone()));
                }
            }
        }
        all
    }

    /// Sets `user`'s topic permission on `exchange` in `vhost` (which must exist; the exchange
    /// need not, as in RabbitMQ).
    pub async fn set_topic_permission(
        self: &Arc<Self>,
        user: &str,
        vhost: &str,
        exchange: &str,
        permission: TopicPermission,
    ) -> Result<()> {
        self.routing_table(vhost)?;
        self.user_change(UserChange::SetTopicPermission {
            user: user.to_string(),
            vhost: vhost.to_string(),
            exchange: exchange.to_string(),
            permission,
        })
        .await
    }

    /// Clears `user`'s topic permission on `exchange` in `vhost`, or all of them there.
    pub async fn clear_topic_permission(
        self: &Arc<Self>,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<()> {
        self.user_change(UserChange::ClearTopicPermission {
            user: user.to_string(),
            vhost: vhost.to_string(),
            exchange: exchange.map(str::to_string),
        })
        .await
    }

    pub async fn clear_permission(self: &Arc<Self>, user: &str, vhost: &str) -> Result<()> {
        self.user_change(UserChange::ClearPermission {
            user: user.to_string(),
            vhost: vhost.to_string(),
        })
        .await
    }

    async fn user_change(self: &Arc<Self>, change: UserChange) -> Result<()> {
        let this = self.clone();
        run_blocking(move || this.submit_user_change(&mut this.metadata.lock(), change)).await
    }

    /// Journals `change`, then publishes the new users snapshot and forgets the changed user's
    /// cached login (the caller holds the metadata lock).
    fn submit_user_change(&self, metadata: &mut MetadataStore, change: UserChange) -> Result<()> {
        let name = match &change {
            UserChange::Put { user } => Some(user.name.clone()),
            UserChange::Delete { name } => Some(name.clone()),
            _ => None,
        };
        metadata.submit(MetadataCommand::User { change })?;
        *self.users.snapshot.write() = Snapshot::of(metadata.state().users.clone());
        if let Some(name) = name {
            self.users.digests.lock().remove(&name);
        }
        Ok(())
    }

    /// Users from the configuration, put only if the broker has none yet (its first start), each
    /// with every permission on `/` and on `vhosts`. Returns whether they were put.
    pub async fn seed_users(
        self: &Arc<Self>,
        users: Vec<(User, Option<String>)>,
        vhosts: &[String],
    ) -> Result<bool> {
        if !self.users().is_empty() {
            return Ok(false);
        }
        for (user, password) in users {
            let name = user.name.clone();
            let password = match password {
                Some(p) => PasswordChange::Set(p),
                None => PasswordChange::Keep,
            };
            self.put_user(&name, password, user.tags, user.loopback_only)
                .await?;
            let default = crate::metadata::state::DEFAULT_VHOST.to_string();
            for vhost in std::iter::once(&default).chain(vhosts) {
                self.set_permission(&name, vhost, Permission::all()).await?;
            }
        }
        Ok(true)
    }

    /// Checks a password login from `peer`; the user on success.
    pub async fn login(
        self: &Arc<Self>,
        name: &str,
        password: &[u8],
        peer: IpAddr,
    ) -> std::result::Result<User, LoginError> {
        self.throttled(peer, name)?;
        let checked = self.check_password(name, password, peer).await;
        self.count_failure(checked, peer, name)
    }

    /// A login something other than a password vouches for: a verified client certificate
    /// (AMQP EXTERNAL, MQTT and STOMP over mutual TLS; the TLS handshake proved the client holds
    /// its key, and RabbitMQ asks no password either), a token or signature checked by the
    /// caller, or a protocol's configured default user (STOMP's `default_user`). The user must
    /// exist and may log in from `peer`: a `loopback_only` user (`guest`) is refused elsewhere,
    /// however it came.
    pub fn vouched_login(&self, name: &str, peer: IpAddr) -> std::result::Result<User, LoginError> {
        let user = self
            .user(name)
            .ok_or_else(|| LoginError::UnknownUser(name.to_string()))?;
        if user.loopback_only && !peer.is_loopback() {
            return Err(LoginError::LoopbackOnly(name.to_string()));
        }
        Ok(user)
    }

    /// Refused at once when `peer` failed too often lately.
    pub(crate) fn throttled(
        &self,
        peer: IpAddr,
        user: &str,
    ) -> std::result::Result<(), LoginError> {
        match self.users.throttle.refused(peer, user) {
            Some(secs) => Err(LoginError::Throttled {
                address: peer,
                secs,
            }),
            None => Ok(()),
        }
    }

    /// `outcome`, counted against `peer` when it failed.
    pub(crate) fn count_failure<T>(
        &self,
        outcome: std::result::Result<T, LoginError>,
        peer: IpAddr,
        user: &str,
    ) -> std::result::Result<T, LoginError> {
        if outcome.is_err() {
            self.users.throttle.failed(peer, user);
        }
        outcome
    }

    async fn check_password(
        self: &Arc<Self>,
        name: &str,
        password: &[u8],
        peer: IpAddr,
    ) -> std::result::Result<User, LoginError> {
        let (user, credentials) = self.login_user(name, peer)?;
        let stored_key = credentials
            .scram
            .last()
            .map(|c| c.stored_key.clone())
            .unwrap_or_default();
        let fast = digest(&stored_key, password);
        if self.users.digests.lock().get(name) == Some(&fast) {
            return Ok(user);
        }
        let password = password.to_vec();
        let matched = tokio::task::spawn_blocking(move || credentials.verify(&password))
            .await
            .unwrap_or(false);
        if !matched {
            return Err(LoginError::WrongPassword(name.to_string()));
        }
        self.users.digests.lock().insert(name.to_string(), fast);
        Ok(user)
    }
}

impl Broker {
    /// The user `name` with its password credentials, if it may log in from `peer`.
    fn login_user(
        &self,
        name: &str,
        peer: IpAddr,
    ) -> std::result::Result<(User, PasswordCredentials), LoginError> {
        let user = self.vouched_login(name, peer)?;
        let credentials = user
            .credentials
            .clone()
            .ok_or_else(|| LoginError::NoPassword(name.to_string()))?;
        Ok((user, credentials))
    }

    /// Puts or removes one SCRAM credential of user `name` (Kafka's AlterUserScramCredentials:
    /// credentials are per mechanism, so the other one stays). Putting one for an unknown user
    /// creates the user, without tags or permissions; removing the last leaves it without a
    /// password. Read, change and journal happen under the metadata lock: two alters at once
    /// both land.
    pub async fn change_scram_credential(
        self: &Arc<Self>,
        name: &str,
        change: ScramChange,
    ) -> Result<()> {
        let this = self.clone();
        let name = name.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            let existing = metadata.state().users.users.get(&name).cloned();
            let mut user = existing.clone().unwrap_or_else(|| User {
                name: name.clone(),
                ..User::default()
            });
            let mut scram = user.credentials.take().map(|c| c.scram).unwrap_or_default();
            match change {
                ScramChange::Put(credential) => {
                    scram.retain(|c| c.mechanism != credential.mechanism);
                    scram.push(credential);
                }
                ScramChange::Delete(mechanism) => {
                    let before = scram.len();
                    scram.retain(|c| c.mechanism != mechanism);
                    if existing.is_none() || scram.len() == before {
                        return Err(CoreError::NotFound(format!(
                            "user {name:?} has no {} credential",
                            mechanism.name()
                        )));
                    }
                }
            }
            scram.sort_by_key(|c| c.mechanism.name());
            user.credentials = (!scram.is_empty()).then_some(PasswordCredentials { scram });
            this.submit_user_change(&mut metadata, UserChange::Put { user })?;
            tracing::info!(user = %name, created = existing.is_none(), "SCRAM credential changed");
            Ok(())
        })
        .await
    }

    /// Answers a SCRAM client-first message from `peer`: the exchange to finish with
    /// [`Broker::scram_finish`] and the server-first message. No password stretching happens:
    /// SCRAM's cost is the client's.
    pub fn scram_start(
        &self,
        mechanism: ScramMechanism,
        client_first: &[u8],
        peer: IpAddr,
    ) -> std::result::Result<(ScramExchange, String), LoginError> {
        // The user is named in the client's first message: parsed (cheap) before the check.
        let user = ClientFirst::parse(client_first)
            .map(|first| first.user)
            .unwrap_or_default();
        self.throttled(peer, &user)?;
        let started = self.start_scram(mechanism, client_first, peer);
        self.count_failure(started, peer, &user)
    }

    fn start_scram(
        &self,
        mechanism: ScramMechanism,
        client_first: &[u8],
        peer: IpAddr,
    ) -> std::result::Result<(ScramExchange, String), LoginError> {
        let first = ClientFirst::parse(client_first).map_err(|error| LoginError::Scram {
            user: String::new(),
            error,
        })?;
        let (_, credentials) = self.login_user(&first.user, peer)?;
        let credential =
            credentials
                .scram(mechanism)
                .cloned()
                .ok_or_else(|| LoginError::NoScramCredential {
                    user: first.user.clone(),
                    mechanism: mechanism.name(),
                })?;
        Ok(ScramExchange::start(first, credential))
    }

    /// Checks the client-final message of `exchange`: the user (as it is now) and the
    /// server-final message.
    pub fn scram_finish(
        &self,
        exchange: &ScramExchange,
        client_final: &[u8],
        peer: IpAddr,
    ) -> std::result::Result<(User, String), LoginError> {
        let finished = self.finish_scram(exchange, client_final);
        self.count_failure(finished, peer, exchange.user())
    }

    fn finish_scram(
        &self,
        exchange: &ScramExchange,
        client_final: &[u8],
    ) -> std::result::Result<(User, String), LoginError> {
        let server_final = exchange
            .finish(client_final)
            .map_err(|error| LoginError::Scram {
                user: exchange.user().to_string(),
                error,
            })?;
        // Deleted meanwhile: no login.
        let user = self
            .user(exchange.user())
            .ok_or_else(|| LoginError::UnknownUser(exchange.user().to_string()))?;
        Ok((user, server_final))
    }
}

impl From<LoginError> for CoreError {
    fn from(e: LoginError) -> CoreError {
        CoreError::Forbidden(e.to_string())
    }
}
