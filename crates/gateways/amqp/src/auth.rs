//! AMQP's side of the kit's authentication hook: SASL PLAIN and AMQPLAIN responses decoded into
//! [`Credentials`] for the listener's [`Authenticator`], and EXTERNAL, the user a client
//! certificate names when mutual TLS verified one (by default [`static_users`], the
//! configured users; `loopback_only` ones, like the default `guest`, are refused from other
//! addresses, as RabbitMQ refuses `guest` remotely). The client only hears RabbitMQ's 403
//! ACCESS_REFUSED; why is in the broker's log.

use std::net::SocketAddr;

use amq_protocol::protocol::connection::StartOk;
use amq_protocol::types::AMQPValue;
use porter_gateway_kit::auth::{
    AuthError, Authenticator, Credentials, Principal, StaticUser, StaticUsers,
};

use crate::config::User;
use crate::error::{AmqpError, ACCESS_REFUSED, COMMAND_INVALID};

/// The configured users as the kit's authenticator.
pub fn static_users(users: &[User]) -> StaticUsers {
    StaticUsers {
        users: users
            .iter()
            .map(|u| StaticUser {
                name: u.name.clone(),
                password: u.password.clone(),
                loopback_only: u.loopback_only,
            })
            .collect(),
    }
}

/// The authenticated user's name, or 403 ACCESS_REFUSED (503 COMMAND_INVALID for a mechanism
/// the broker does not offer, as RabbitMQ answers). Every refusal logs one line with the peer,
/// the user (`-` when the response could not be read) and the mechanism, and why: the client is
/// told to look in the log, so the log must say it. The password never appears.
pub async fn authenticate(
    start_ok: &StartOk,
    peer: SocketAddr,
    authenticator: &dyn Authenticator,
    client_login: Option<&str>,
) -> Result<String, AmqpError> {
    let mechanism = start_ok.mechanism.as_str();
    let response = start_ok.response.as_bytes();
    let decoded = match mechanism {
        "EXTERNAL" => {
            // The user is the certificate's, whatever the response says (RabbitMQ ignores it).
            let Some(user) = client_login else {
                login_refused(peer, "-", mechanism, "no verified client certificate");
                return Err(refused(mechanism));
            };
            return checked(
                authenticator.authenticate_certificate(user, peer).await,
                peer,
                user,
                mechanism,
            );
        }
        "PLAIN" => plain(response),
        "AMQPLAIN" => amqplain(response),
        _ => {
            login_refused(peer, "-", mechanism, "unknown authentication mechanism");
            return Err(AmqpError::connection(
                COMMAND_INVALID,
                format!("unknown authentication mechanism '{mechanism}'"),
            )
            .on(10, 11));
        }
    };
    let Some((name, password)) = decoded else {
        login_refused(peer, "-", mechanism, "the response could not be decoded");
        return Err(refused(mechanism));
    };
    let credentials = Credentials {
        mechanism,
        user: &name,
        secret: password.as_bytes(),
        peer,
    };
    checked(
        authenticator.authenticate(credentials).await,
        peer,
        &name,
        mechanism,
    )
}

/// The user logged in, or the refusal logged and answered.
fn checked(
    outcome: Result<Principal, AuthError>,
    peer: SocketAddr,
    name: &str,
    mechanism: &str,
) -> Result<String, AmqpError> {
    match outcome {
        Ok(principal) => Ok(principal.user),
        Err(e) if e.is_throttled() => {
            tracing::debug!(%peer, user = %name, mechanism = %mechanism, reason = %e, "amqp: login refused");
            Err(refused(mechanism))
        }
        Err(e) => {
            login_refused(peer, name, mechanism, &e.to_string());
            Err(refused(mechanism))
        }
    }
}

/// The broker log's side of a refusal: what RabbitMQ's "For details see the broker logfile"
/// points to.
fn login_refused(peer: SocketAddr, user: &str, mechanism: &str, reason: &str) {
    tracing::warn!(%peer, user = %user, mechanism = %mechanism, reason = %reason, "amqp: login refused");
}

fn refused(mechanism: &str) -> AmqpError {
    AmqpError::connection(
        ACCESS_REFUSED,
        format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ),
    )
    .on(10, 11)
}

/// `\0user\0password` (an authorization identity before the first NUL is ignored).
fn plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let password = std::str::from_utf8(parts.next()?).ok()?.to_string();
    Some((user, password))
}

/// A field table without its length prefix, holding LOGIN and PASSWORD.
fn amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut framed = (response.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(response);
    let (_, table) = amq_protocol::types::parsing::parse_field_table(&framed[..]).ok()?;
    let text = |key: &str| match table.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_string),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::auth::{Credentials as SaslCredentials, SASLMechanism};

    fn start_ok(mechanism: SASLMechanism, user: &str, password: &str) -> StartOk {
        let credentials = SaslCredentials::new(user.into(), password.into());
        StartOk {
            client_properties: Default::default(),
            mechanism: mechanism.to_string().as_str().into(),
            response: credentials.sasl_auth_string(mechanism),
            locale: "en_US".into(),
        }
    }

    #[tokio::test]
    async fn plain_and_amqplain_with_the_loopback_rule() {
        let users = static_users(&[User {
            name: "guest".into(),
            password: "guest".into(),
            loopback_only: true,
        }]);
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        for mechanism in [SASLMechanism::Plain, SASLMechanism::AMQPlain] {
            let ok = start_ok(mechanism, "guest", "guest");
            assert_eq!(
                authenticate(&ok, local, &users, None).await.unwrap(),
                "guest"
            );
            let remote_guest = authenticate(&ok, remote, &users, None).await.unwrap_err();
            assert_eq!((remote_guest.code, remote_guest.connection), (403, true));
            let bad = start_ok(mechanism, "guest", "nope");
            let e = authenticate(&bad, local, &users, None).await.unwrap_err();
            assert_eq!(e.code, 403);
            assert_eq!(
                e.text,
                format!(
                    "ACCESS_REFUSED - Login was refused using authentication mechanism \
                     {mechanism}. For details see the broker logfile."
                )
            );
        }
        // EXTERNAL needs a certificate mutual TLS verified, and a store that takes it.
        let mut external = start_ok(SASLMechanism::Plain, "guest", "guest");
        external.mechanism = "EXTERNAL".into();
        let e = authenticate(&external, local, &users, None)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.connection), (403, true));
        let e = authenticate(&external, local, &users, Some("guest"))
            .await
            .unwrap_err();
        assert_eq!(e.code, 403, "configured users take no certificate logins");
        let mut unknown = start_ok(SASLMechanism::Plain, "guest", "guest");
        unknown.mechanism = "SCRAM-SHA-256".into();
        let e = authenticate(&unknown, local, &users, None)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.connection), (503, true));
        assert_eq!(
            e.text,
            "COMMAND_INVALID - unknown authentication mechanism 'SCRAM-SHA-256'"
        );
    }
}
