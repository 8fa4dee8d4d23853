//! RocketMQ 5's request signatures, as the official clients send them on every gRPC call:
//!
//! ```text
//! x-mq-date-time: 20261206T054412Z
//! authorization: MQv2-HMAC-SHA1 Credential=<AccessKey>, SignedHeaders=x-mq-date-time, Signature=<hex>
//! ```
//!
//! where the signature is `hex(HMAC-SHA1(SecretKey, x-mq-date-time))`. The AccessKey is a
//! Porter user's name and the SecretKey its access secret (`porter users set-access-secret`);
//! the core checks it ([`porter_core::Broker::signature_login`]), throttling an address that
//! fails too often, as for passwords. With `[rocketmq] authentication = true` every call must
//! carry a valid signature, else it ends with gRPC UNAUTHENTICATED.
//!
//! What the scheme does not give, and RocketMQ's does not either: the signature covers only the
//! date, not the request, and the date is not checked against the clock (the Python client
//! stamps local time with a `Z`), so a captured header can be replayed. Use TLS
//! (`[tls] rocketmq = true`) wherever the network is not trusted.

use std::net::SocketAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use porter_core::vhost_limits::CountedConnection;
use porter_core::Broker;
use sha1::Sha1;
use tonic::metadata::MetadataMap;
use tonic::Status;

const ALGORITHM: &str = "MQv2-HMAC-SHA1";
const DATE_TIME: &str = "x-mq-date-time";

/// One connection's signature check, cloned into its interceptor.
#[derive(Clone)]
pub struct Signatures {
    pub broker: Arc<Broker>,
    pub peer: SocketAddr,
    /// The connection's first signed user, and its place in that user's `max-connections`
    /// while the connection lives (a RocketMQ client has no connection-level login: its first
    /// signed call stands for one).
    counted: Arc<Mutex<Option<CountedLogin>>>,
}

struct CountedLogin {
    _slot: Option<CountedConnection>,
}

/// An `authorization` header taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key: &'a str,
    signature: &'a str,
}

fn parse(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix(ALGORITHM)?.trim_start();
    let (mut access_key, mut signature, mut signed) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => access_key = Some(value),
            "Signature" => signature = Some(value),
            "SignedHeaders" => signed = Some(value),
            _ => {}
        }
    }
    // The one header the clients sign; anything else is not a signature this check knows.
    if signed? != DATE_TIME {
        return None;
    }
    Some(Authorization {
        access_key: access_key?,
        signature: signature?,
    })
}

/// Whether `signature` (hex) is HMAC-SHA1(`secret`, `date_time`), compared in constant time.
fn verify(secret: &[u8], date_time: &str, signature: &str) -> bool {
    let Some(expected) = porter_core::hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(date_time.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

impl Signatures {
    pub fn new(broker: Arc<Broker>, peer: SocketAddr) -> Self {
        Signatures {
            broker,
            peer,
            counted: Arc::default(),
        }
    }

    /// Counts the connection against `user`'s `max-connections` at its first signed call;
    /// past the limit the call (and each one after it) is refused with RESOURCE_EXHAUSTED
    /// and RabbitMQ's text, logged with the peer.
    pub fn count_connection(&self, user: &str) -> Result<(), Status> {
        let mut counted = self.counted.lock();
        if counted.is_some() {
            return Ok(());
        }
        match self.broker.open_user_connection(user) {
            Ok(slot) => {
                *counted = Some(CountedLogin { _slot: slot });
                Ok(())
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, user, error = %e, "rocketmq: request refused: user connection limit");
                Err(Status::resource_exhausted(e.to_string()))
            }
        }
    }

    /// The check a call passes before it reaches the service: the signing user, or
    /// UNAUTHENTICATED (the reason is logged with the peer, never the secret).
    pub fn check(&self, metadata: &MetadataMap) -> Result<porter_core::users::User, Status> {
        let header = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
        let refused = |user: &str, reason: &str| {
            tracing::warn!(peer = %self.peer, user = %user, mechanism = %ALGORITHM, reason = %reason, "rocketmq: request refused");
            Status::unauthenticated("request signature refused: check the AccessKey and SecretKey")
        };
        let Some(authorization) = header("authorization").and_then(parse) else {
            return Err(refused("-", "no MQv2-HMAC-SHA1 authorization header"));
        };
        let Some(date_time) = header(DATE_TIME) else {
            return Err(refused(
                authorization.access_key,
                "no x-mq-date-time header",
            ));
        };
        let user = authorization.access_key;
        match self.broker.signature_login(user, self.peer.ip(), |secret| {
            verify(secret, date_time, authorization.signature)
        }) {
            Ok(user) => Ok(user),
            Err(e) if e.is_throttled() => {
                tracing::debug!(peer = %self.peer, user = %user, reason = %e, "rocketmq: request refused");
                Err(Status::unauthenticated(
                    "too many failed logins from this address",
                ))
            }
            Err(e) => Err(refused(user, &e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What rocketmq-python-client 5.1's `Signature.metadata` sends for ak `alice`, sk
    /// `alice-secret` at 20261206T054412Z (`hexlify(hmac.new(sk, date, sha1).digest())`).
    const SIGNED: &str = "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time, \
                          Signature=b57765ceefac5447438922cf6d571de152c03a53";

    #[test]
    fn the_clients_header_parses() {
        let parsed = parse(SIGNED).unwrap();
        assert_eq!(parsed.access_key, "alice");
        assert!(verify(
            b"alice-secret",
            "20261206T054412Z",
            parsed.signature
        ));
        assert_eq!(
            parse("MQv2-HMAC-SHA1 Credential=a, SignedHeaders=host, Signature=00"),
            None
        );
        assert_eq!(parse("Basic YWxpY2U6eA=="), None);
    }

    #[test]
    fn signatures_verify_against_the_secret_and_date() {
        let mut mac = Hmac::<Sha1>::new_from_slice(b"alice-secret").unwrap();
        mac.update(b"20261206T054412Z");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(verify(b"alice-secret", "20261206T054412Z", &hex));
        assert!(verify(
            b"alice-secret",
            "20261206T054412Z",
            &hex.to_uppercase()
        ));
        assert!(!verify(b"wrong", "20261206T054412Z", &hex));
        assert!(!verify(b"alice-secret", "20261206T054413Z", &hex));
        assert!(!verify(b"alice-secret", "20261206T054412Z", "zz"));
    }
}
