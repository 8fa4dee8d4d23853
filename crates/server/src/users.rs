//! The broker's user store as the gateways' authenticator, and its first-start seeding.
//!
//! Every listener that checks passwords (AMQP, STOMP, the management API) asks the same store
//! ([`BrokerUsers`]), so a user made with `porter users add` logs in everywhere. The first start
//! puts the configured users (`[amqp] users`, by default `guest`/`guest` from loopback only, as
//! RabbitMQ does) into the store as administrators with every permission on `/`; after that the
//! store is the truth, changed through the management API.

use std::net::SocketAddr;
use std::sync::Arc;

use porter_core::broker::users::LoginError;
use porter_core::users::User;
use porter_core::Broker;
use porter_gateway_kit::auth::{AuthError, AuthFuture, Authenticator, Credentials, Principal};

/// Password logins checked against the broker's users.
pub struct BrokerUsers {
    broker: Arc<Broker>,
}

impl BrokerUsers {
    pub fn new(broker: Arc<Broker>) -> Self {
        BrokerUsers { broker }
    }
}

impl Authenticator for BrokerUsers {
    fn mechanisms(&self) -> &[&'static str] {
        &["PLAIN", "AMQPLAIN"]
    }

    fn authenticate<'a>(&'a self, c: Credentials<'a>) -> AuthFuture<'a> {
        Box::pin(async move { principal(self.broker.login(c.user, c.secret, c.peer.ip()).await) })
    }

    fn authenticate_certificate<'a>(&'a self, user: &'a str, peer: SocketAddr) -> AuthFuture<'a> {
        Box::pin(async move { principal(self.broker.vouched_login(user, peer.ip())) })
    }

    fn authenticate_default_user<'a>(&'a self, user: &'a str, peer: SocketAddr) -> AuthFuture<'a> {
        Box::pin(async move { principal(self.broker.vouched_login(user, peer.ip())) })
    }

    fn authenticate_token<'a>(&'a self, token: &'a str, peer: SocketAddr) -> AuthFuture<'a> {
        Box::pin(async move { principal(self.broker.token_login(token, peer.ip())) })
    }

    fn may_use_vhost(&self, user: &str, vhost: &str) -> bool {
        self.broker.permission(user, vhost).is_some()
    }

    fn enforces_permissions(&self) -> bool {
        true
    }
}

/// A login's outcome as the kit's: the user's name and tags, or why not (a throttled address
/// apart, so it is not logged at every attempt).
fn principal(login: Result<User, LoginError>) -> Result<Principal, AuthError> {
    let user = login.map_err(|e| match e.is_throttled() {
        true => AuthError::Throttled(e.to_string()),
        false => AuthError::Denied(e.to_string()),
    })?;
    Ok(Principal {
        user: user.name,
        tags: user.tags,
    })
}

/// Puts the configured users into an empty store (the first start), with every permission on
/// `/` and the configured `vhosts`; says so, or that the store already has users and the
/// configuration's are not used.
pub async fn seed(
    broker: &Arc<Broker>,
    configured: &[porter_gateway_amqp::config::User],
    vhosts: &[String],
) {
    let users: Vec<(User, Option<String>)> = configured
        .iter()
        .map(|u| {
            let user = User {
                name: u.name.clone(),
                tags: vec!["administrator".to_string()],
                loopback_only: u.loopback_only,
                ..User::default()
            };
            (user, Some(u.password.clone()))
        })
        .collect();
    match broker.seed_users(users, vhosts).await {
        Ok(true) => {
            let names: Vec<&str> = configured.iter().map(|u| u.name.as_str()).collect();
            tracing::info!(users = ?names, "first start: users created from the configuration");
        }
        Ok(false) => tracing::debug!("users come from the user store"),
        Err(e) => tracing::error!(error = %e, "creating the configured users failed"),
    }
}

/// The loud line RabbitMQ's users know: a broker reachable from other hosts whose only user is
/// the loopback-only `guest` cannot be used from them.
pub fn warn_if_only_guest(broker: &Broker, public: bool) {
    let users = broker.users();
    let only_guest = users.len() == 1 && users[0].name == "guest" && users[0].loopback_only;
    if public && only_guest {
        tracing::warn!(
            "the only user is 'guest', which logs in from loopback addresses only: clients on other \
             hosts cannot log in. Add a user: porter users add NAME PASSWORD --tags administrator"
        );
    }
}
