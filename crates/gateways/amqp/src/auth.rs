//! SASL PLAIN and AMQPLAIN against the configured users; `loopback_only` users (the default
//! `guest`) are refused from other addresses, as RabbitMQ refuses `guest` remotely.

use std::net::SocketAddr;

use amq_protocol::protocol::connection::StartOk;
use amq_protocol::types::AMQPValue;

use crate::config::User;
use crate::error::{AmqpError, ACCESS_REFUSED};

/// The authenticated user's name, or 403 ACCESS_REFUSED.
pub fn authenticate(
    start_ok: &StartOk,
    peer: SocketAddr,
    users: &[User],
) -> Result<String, AmqpError> {
    let mechanism = start_ok.mechanism.as_str();
    let response = start_ok.response.as_bytes();
    let (name, password) = match mechanism {
        "PLAIN" => plain(response),
        "AMQPLAIN" => amqplain(response),
        _ => None,
    }
    .ok_or_else(|| refused(mechanism))?;
    let user = users
        .iter()
        .find(|u| u.name == name && u.password == password)
        .ok_or_else(|| refused(mechanism))?;
    if user.loopback_only && !peer.ip().is_loopback() {
        return Err(AmqpError::connection(
            ACCESS_REFUSED,
            format!("user '{name}' can only connect via localhost"),
        )
        .on(10, 11));
    }
    Ok(name)
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
    use amq_protocol::auth::{Credentials, SASLMechanism};

    fn start_ok(mechanism: SASLMechanism, user: &str, password: &str) -> StartOk {
        let credentials = Credentials::new(user.into(), password.into());
        StartOk {
            client_properties: Default::default(),
            mechanism: mechanism.to_string().as_str().into(),
            response: credentials.sasl_auth_string(mechanism),
            locale: "en_US".into(),
        }
    }

    #[test]
    fn plain_and_amqplain_with_the_loopback_rule() {
        let users = vec![User {
            name: "guest".into(),
            password: "guest".into(),
            loopback_only: true,
        }];
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        for mechanism in [SASLMechanism::Plain, SASLMechanism::AMQPlain] {
            let ok = start_ok(mechanism, "guest", "guest");
            assert_eq!(authenticate(&ok, local, &users).unwrap(), "guest");
            assert_eq!(authenticate(&ok, remote, &users).unwrap_err().code, 403);
            let bad = start_ok(mechanism, "guest", "nope");
            assert_eq!(authenticate(&bad, local, &users).unwrap_err().code, 403);
        }
    }
}
