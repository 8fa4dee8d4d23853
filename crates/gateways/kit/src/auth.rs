//! The authentication hook. A protocol decodes its own login (SASL PLAIN, AMQPLAIN, MQTT
//! CONNECT username/password, STOMP login/passcode) into [`Credentials`] and asks the
//! listener's [`Authenticator`] for a [`Principal`]; denial reasons stay inside the broker's log,
//! the protocol tells the client only its own "access refused". Issue 18 replaces
//! [`StaticUsers`] with real user stores (hashed passwords, SCRAM, mTLS subjects).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// An authenticated identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    /// The user's tags, as RabbitMQ names them (`administrator`, `monitoring`, ...): what the
    /// management API lets the user do.
    pub tags: Vec<String>,
}

/// A login attempt, already decoded by the protocol.
#[derive(Clone, Copy, Debug)]
pub struct Credentials<'a> {
    /// The mechanism the client chose ("PLAIN", "AMQPLAIN", "MQTT", ...); logged and checked
    /// against [`Authenticator::mechanisms`].
    pub mechanism: &'a str,
    pub user: &'a str,
    /// The password (or token) bytes.
    pub secret: &'a [u8],
    pub peer: SocketAddr,
}

/// Why a login failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication mechanism {0} is not supported")]
    UnsupportedMechanism(String),
    /// Unknown user, wrong secret, or a user not allowed from this address. The text is for
    /// the broker's log only.
    #[error("access refused: {0}")]
    Denied(String),
    /// The address failed too often lately and is refused without a check; the store logged
    /// that once, so protocols log this at debug only.
    #[error("access refused: {0}")]
    Throttled(String),
}

impl AuthError {
    /// Whether this refusal deserves a log line of its own (not a throttled address).
    pub fn is_throttled(&self) -> bool {
        matches!(self, AuthError::Throttled(_))
    }
}

/// The future an [`Authenticator`] returns (boxed so authenticators can be `dyn`).
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send + 'a>>;

/// Decides who a client is. Shared by every connection of a listener (`Arc<dyn Authenticator>`).
pub trait Authenticator: Send + Sync + 'static {
    /// Mechanisms offered to clients, most preferred first.
    fn mechanisms(&self) -> &[&'static str];

    /// Checks one login.
    fn authenticate<'a>(&'a self, credentials: Credentials<'a>) -> AuthFuture<'a>;

    /// A certificate login: `user` is what a client certificate verified by mutual TLS names
    /// ([`crate::connection::Connection::client_login`]), never what a client typed. Stores
    /// without certificate logins refuse.
    fn authenticate_certificate<'a>(&'a self, user: &'a str, _peer: SocketAddr) -> AuthFuture<'a> {
        Box::pin(async move {
            Err(AuthError::Denied(format!(
                "certificate login of {user:?}: not offered by this user store"
            )))
        })
    }

    /// A protocol's configured default user (STOMP's `default_user`, for a CONNECT without
    /// `login`): no secret, but the store's other rules hold (the user exists, a loopback-only
    /// user comes from loopback). Stores without such rules let it in as it is.
    fn authenticate_default_user<'a>(&'a self, user: &'a str, _peer: SocketAddr) -> AuthFuture<'a> {
        Box::pin(async move {
            Ok(Principal {
                user: user.to_string(),
                tags: Vec::new(),
            })
        })
    }

    /// A bearer token login (the HTTP API's tokens). Stores without tokens refuse.
    fn authenticate_token<'a>(&'a self, _token: &'a str, _peer: SocketAddr) -> AuthFuture<'a> {
        Box::pin(async move {
            Err(AuthError::Denied(
                "API tokens are not offered by this user store".to_string(),
            ))
        })
    }

    /// Whether `user` may use virtual host `vhost` at all (RabbitMQ: it has a permission
    /// there). Every user may, unless the store says otherwise.
    fn may_use_vhost(&self, _user: &str, _vhost: &str) -> bool {
        true
    }

    /// Whether the users it lets in are the broker's, whose permissions the gateway then checks
    /// on each operation (`VirtualHost::authorize`). Configured users and test harnesses: no.
    fn enforces_permissions(&self) -> bool {
        false
    }
}

/// One configured user of [`StaticUsers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticUser {
    pub name: String,
    pub password: String,
    /// Only from a loopback address (RabbitMQ's rule for its default `guest` user).
    pub loopback_only: bool,
}

/// Users and passwords from the configuration file, compared as given.
#[derive(Clone, Debug, Default)]
pub struct StaticUsers {
    pub users: Vec<StaticUser>,
}

impl Authenticator for StaticUsers {
    fn mechanisms(&self) -> &[&'static str] {
        &["PLAIN", "AMQPLAIN"]
    }

    fn authenticate<'a>(&'a self, c: Credentials<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            if !self.mechanisms().contains(&c.mechanism) {
                return Err(AuthError::UnsupportedMechanism(c.mechanism.to_string()));
            }
            let user = self
                .users
                .iter()
                .find(|u| u.name == c.user && u.password.as_bytes() == c.secret)
                .ok_or_else(|| {
                    AuthError::Denied(format!("bad user or password for '{}'", c.user))
                })?;
            if user.loopback_only && !c.peer.ip().is_loopback() {
                return Err(AuthError::Denied(format!(
                    "user '{}' can only connect via localhost",
                    user.name
                )));
            }
            // Configured users are the broker's administrators.
            Ok(Principal {
                user: user.name.clone(),
                tags: vec!["administrator".to_string()],
            })
        })
    }
}

/// Splits a SASL PLAIN response (`authzid \0 user \0 password`) into (user, password).
pub fn parse_plain(response: &[u8]) -> Option<(&str, &[u8])> {
    let mut parts = response.splitn(3, |&b| b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let password = parts.next()?;
    Some((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> StaticUsers {
        StaticUsers {
            users: vec![
                StaticUser {
                    name: "guest".into(),
                    password: "guest".into(),
                    loopback_only: true,
                },
                StaticUser {
                    name: "app".into(),
                    password: "s3cret".into(),
                    loopback_only: false,
                },
            ],
        }
    }

    fn login<'a>(user: &'a str, secret: &'a [u8], peer: &str) -> Credentials<'a> {
        Credentials {
            mechanism: "PLAIN",
            user,
            secret,
            peer: peer.parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn static_users_accept_the_right_password_from_the_right_place() {
        let u = users();
        assert_eq!(
            u.authenticate(login("app", b"s3cret", "10.0.0.1:5000"))
                .await,
            Ok(Principal {
                user: "app".into(),
                tags: vec!["administrator".to_string()],
            })
        );
        assert!(u
            .authenticate(login("guest", b"guest", "127.0.0.1:5000"))
            .await
            .is_ok());
        assert!(matches!(
            u.authenticate(login("guest", b"guest", "10.0.0.1:5000"))
                .await,
            Err(AuthError::Denied(_))
        ));
        assert!(matches!(
            u.authenticate(login("app", b"wrong", "10.0.0.1:5000"))
                .await,
            Err(AuthError::Denied(_))
        ));
        let mut scram = login("app", b"s3cret", "10.0.0.1:5000");
        scram.mechanism = "SCRAM-SHA-256";
        assert!(matches!(
            u.authenticate(scram).await,
            Err(AuthError::UnsupportedMechanism(_))
        ));
    }

    #[test]
    fn plain_responses_split_at_nul() {
        assert_eq!(
            parse_plain(b"\0guest\0pa\0ss"),
            Some(("guest", &b"pa\0ss"[..]))
        );
        assert_eq!(parse_plain(b"guest"), None);
    }
}
