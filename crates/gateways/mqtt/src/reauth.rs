//! MQTT 5 re-authentication (§4.12.1): a client that logged in with SCRAM may prove its
//! credentials again on the open connection — when its password changed, or before a
//! token-like credential runs out — without losing its session.
//!
//! The exchange is CONNECT's, started by AUTH 0x19 instead of CONNECT: AUTH 0x19 (the method
//! and the client-first message) → AUTH 0x18 (server-first) → AUTH 0x18 (client-final) →
//! AUTH 0x00 (server-final). Publishing and subscribing go on meanwhile, as the standard
//! allows. The method must be CONNECT's, and the user must stay the same: a connection's
//! permissions, limits and will belong to the user it logged in as, so a re-authentication
//! as another user is refused. A failure ends the connection with DISCONNECT 0x87 (not
//! authorized), a protocol breach with 0x82, and both are logged with the peer, never the
//! secret.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use porter_core::broker::Broker;
use porter_core::users::scram::ScramExchange;
use porter_core::users::ScramMechanism;
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;

use crate::codec::{encode_auth, AuthPacket};
use crate::error::Disconnect;

/// AUTH's reason codes (MQTT 5 §3.15.2.1).
const SUCCESS: u8 = 0x00;
const CONTINUE: u8 = 0x18;
const REAUTHENTICATE: u8 = 0x19;

/// A connection's re-authentication state: the method CONNECT used (none: the client did not
/// use enhanced authentication and may not re-authenticate), the exchange under way, and the
/// AUTH packet waiting to be written. The default allows no re-authentication.
#[derive(Default)]
pub(crate) struct Reauthentication {
    method: Option<String>,
    peer: Option<SocketAddr>,
    exchange: Option<ScramExchange>,
    reply: Option<Bytes>,
}

impl Reauthentication {
    /// For a connection that logged in with `method` (`None`: without enhanced authentication).
    pub(crate) fn new(method: Option<String>, peer: SocketAddr) -> Self {
        Reauthentication {
            method,
            peer: Some(peer),
            exchange: None,
            reply: None,
        }
    }

    /// The AUTH packet to send, encoded, if one is waiting.
    pub(crate) fn take_reply(&mut self) -> Option<Bytes> {
        self.reply.take()
    }

    /// Answers an AUTH packet the client sent after CONNACK (`None`: it did not parse).
    /// `user` is the user the connection logged in as.
    pub(crate) fn on_auth(
        &mut self,
        auth: Option<AuthPacket>,
        broker: &Broker,
        vhost: &str,
        user: &str,
    ) -> Result<(), Disconnect> {
        let Some(method) = self.method.clone() else {
            return Err(Disconnect::protocol(
                "AUTH without an authentication method in CONNECT",
            ));
        };
        let Some(auth) = auth else {
            return Err(Disconnect::malformed("malformed AUTH packet"));
        };
        if auth.method.as_deref() != Some(method.as_str()) {
            return Err(Disconnect::protocol(format!(
                "AUTH's authentication method must be CONNECT's ({method})"
            )));
        }
        let data = auth.data.unwrap_or_default();
        match (auth.reason, self.exchange.take()) {
            (REAUTHENTICATE, None) => self.start(broker, &method, &data),
            (CONTINUE, Some(exchange)) => {
                self.finish(broker, exchange, &method, &data, vhost, user)
            }
            (REAUTHENTICATE, Some(_)) => Err(Disconnect::protocol(
                "AUTH 0x19 while a re-authentication is under way",
            )),
            (reason, _) => Err(Disconnect::protocol(format!(
                "AUTH reason code {reason:#04x} is not expected here"
            ))),
        }
    }

    fn start(
        &mut self,
        broker: &Broker,
        method: &str,
        client_first: &[u8],
    ) -> Result<(), Disconnect> {
        let Some(mechanism) = ScramMechanism::from_name(method) else {
            // CONNECT's method was checked when the client logged in.
            return Err(Disconnect::protocol(format!(
                "{method} is not a SCRAM method"
            )));
        };
        let (exchange, server_first) = broker
            .scram_start(mechanism, client_first, self.peer_ip())
            .map_err(|e| self.failed(method, &e.to_string()))?;
        self.exchange = Some(exchange);
        self.reply = Some(auth_packet(CONTINUE, method, server_first.as_bytes()));
        Ok(())
    }

    fn finish(
        &mut self,
        broker: &Broker,
        exchange: ScramExchange,
        method: &str,
        client_final: &[u8],
        vhost: &str,
        user: &str,
    ) -> Result<(), Disconnect> {
        let (proven, server_final) = broker
            .scram_finish(&exchange, client_final, self.peer_ip())
            .map_err(|e| self.failed(method, &e.to_string()))?;
        if proven.name != user {
            return Err(self.failed(
                method,
                &format!(
                    "re-authenticated as '{}', logged in as '{user}'",
                    proven.name
                ),
            ));
        }
        if broker.permission(user, vhost).is_none() {
            return Err(self.failed(
                method,
                &format!("the user has no permission in vhost '{vhost}' any more"),
            ));
        }
        tracing::debug!(peer = ?self.peer, user, mechanism = method, "MQTT client re-authenticated");
        self.reply = Some(auth_packet(SUCCESS, method, server_final.as_bytes()));
        Ok(())
    }

    fn peer_ip(&self) -> std::net::IpAddr {
        self.peer
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |p| p.ip())
    }

    fn failed(&self, method: &str, reason: &str) -> Disconnect {
        tracing::warn!(peer = ?self.peer, mechanism = method, reason, "MQTT re-authentication failed");
        Disconnect::new(
            DisconnectReasonCode::NotAuthorized,
            "re-authentication failed",
        )
    }
}

fn auth_packet(reason: u8, method: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_auth(reason, method, data, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    use porter_core::broker::users::PasswordChange;
    use porter_core::config::BrokerConfig;

    fn auth(reason: u8, method: &str, data: &[u8]) -> Option<AuthPacket> {
        Some(AuthPacket {
            reason,
            method: Some(method.to_string()),
            data: Some(Bytes::copy_from_slice(data)),
        })
    }

    const METHOD: &str = "SCRAM-SHA-256";
    const CLIENT_FIRST: &[u8] = b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL";

    /// The exchange's transitions: what each AUTH gets in each state (MQTT 5 §4.12.1).
    #[tokio::test]
    async fn each_auth_in_each_state() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        })
        .unwrap();
        broker
            .put_user("alice", PasswordChange::Set("pw".into()), vec![], false)
            .await
            .unwrap();
        let peer = "127.0.0.1:40000".parse().unwrap();
        let code = |r: Result<(), Disconnect>| r.err().map(|d| d.code);

        // Logged in without enhanced authentication: nothing to re-authenticate with.
        let mut plain = Reauthentication::new(None, peer);
        let answer = plain.on_auth(auth(0x19, METHOD, CLIENT_FIRST), &broker, "/", "alice");
        assert_eq!(code(answer), Some(DisconnectReasonCode::ProtocolError));

        let scram = || Reauthentication::new(Some(METHOD.to_string()), peer);
        // Another method, a continue before any start, a malformed AUTH: protocol errors.
        for packet in [
            auth(0x19, "SCRAM-SHA-512", CLIENT_FIRST),
            auth(0x18, METHOD, b"c=biws"),
            auth(0x00, METHOD, b""),
        ] {
            let answer = scram().on_auth(packet, &broker, "/", "alice");
            assert_eq!(code(answer), Some(DisconnectReasonCode::ProtocolError));
        }
        let answer = scram().on_auth(None, &broker, "/", "alice");
        assert_eq!(code(answer), Some(DisconnectReasonCode::MalformedPacket));

        // A start gets AUTH 0x18 with the server-first message; a second start is refused.
        let mut started = scram();
        started
            .on_auth(auth(0x19, METHOD, CLIENT_FIRST), &broker, "/", "alice")
            .unwrap();
        let reply = started.take_reply().expect("AUTH (continue)");
        assert_eq!(&reply[..1], &[0xF0]);
        assert_eq!(reply[2], 0x18);
        assert!(started.take_reply().is_none(), "sent once");
        let again = started.on_auth(auth(0x19, METHOD, CLIENT_FIRST), &broker, "/", "alice");
        assert_eq!(code(again), Some(DisconnectReasonCode::ProtocolError));

        // A wrong proof ends it: not authorized.
        let mut proving = scram();
        proving
            .on_auth(auth(0x19, METHOD, CLIENT_FIRST), &broker, "/", "alice")
            .unwrap();
        let wrong = proving.on_auth(
            auth(0x18, METHOD, b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=AAAA"),
            &broker,
            "/",
            "alice",
        );
        assert_eq!(code(wrong), Some(DisconnectReasonCode::NotAuthorized));
    }
}
