//! Who an MQTT CONNECT logs in as: a user name and password, a client certificate (mutual
//! TLS), `anonymous` where allowed ([`authenticate`]), or MQTT 5 enhanced authentication with
//! SCRAM-SHA-256 or SCRAM-SHA-512 ([`ScramLogin`]): CONNECT carries the authentication method
//! and the client-first message, the server answers AUTH (continue) with its first message, the
//! client AUTH with its final one, and CONNACK carries the server's final message. The SCRAM
//! exchange itself is the core's ([`porter_core::users::scram`]), the one Kafka's SASL uses.

use bytes::Bytes;
use bytes::BytesMut;
use porter_core::users::scram::ScramExchange;
use porter_core::users::ScramMechanism;
use porter_gateway_kit::auth::Credentials;
use porter_gateway_kit::Connection;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Login};

use crate::codec::{encode_auth, AuthPacket};
use crate::context::Context;
use crate::error::Refusal;

/// The user a CONNECT logs in as. A user name and password are checked by the broker's users
/// (the listener's authenticator, else the gateway's), and the user needs a permission in the
/// MQTT virtual host; a client without a user name logs in as the user its certificate names
/// (mutual TLS), else is let in as `anonymous` only if
/// [`MqttConfig::anonymous`](crate::config::MqttConfig::anonymous) allows its address.
pub(crate) async fn authenticate(
    conn: &Connection,
    ctx: &Context,
    login: Option<&Login>,
) -> Result<LoggedIn, Refusal> {
    let peer = conn.peer();
    let unchecked = |name: String| LoggedIn {
        name,
        checked: false,
    };
    let Some(authenticator) = conn.authenticator().or(ctx.authenticator.as_deref()) else {
        let name = login.map_or_else(|| "anonymous".to_string(), |l| l.username.clone());
        return Ok(unchecked(name));
    };
    let login = login.filter(|l| !l.username.is_empty());
    let outcome = match (login, conn.client_login()) {
        (Some(login), _) => {
            let credentials = Credentials {
                mechanism: "MQTT",
                user: &login.username,
                secret: login.password.as_bytes(),
                peer,
            };
            authenticator.authenticate(credentials).await
        }
        // RabbitMQ's `ssl_cert_login`: no user name, a verified certificate names the user.
        (None, Some(user)) => authenticator.authenticate_certificate(user, peer).await,
        (None, None) if ctx.config.anonymous.allows(peer.ip()) => {
            return Ok(unchecked("anonymous".to_string()));
        }
        (None, None) => {
            tracing::warn!(%peer, mechanism = "MQTT", "MQTT connection without a user name refused");
            return Err(Refusal::new(
                ConnectReturnCode::NotAuthorized,
                "a user name and password are required",
            ));
        }
    };
    let principal = match outcome {
        Ok(principal) => principal,
        Err(e) => {
            let mechanism = if login.is_some() {
                "MQTT"
            } else {
                "certificate"
            };
            if e.is_throttled() {
                tracing::debug!(%peer, mechanism, reason = %e, "MQTT authentication refused");
            } else {
                tracing::warn!(%peer, mechanism, reason = %e, "MQTT authentication failed");
            }
            return Err(Refusal::new(
                ConnectReturnCode::BadUserNamePassword,
                "bad user name or password",
            ));
        }
    };
    let vhost = &ctx.config.vhost;
    if !authenticator.may_use_vhost(&principal.user, vhost) {
        tracing::warn!(%peer, user = %principal.user, vhost = %vhost,
            "MQTT connection refused: the user has no permission in the MQTT virtual host");
        return Err(Refusal::new(
            ConnectReturnCode::NotAuthorized,
            format!(
                "access to vhost '{vhost}' refused for user '{}'",
                principal.user
            ),
        ));
    }
    Ok(LoggedIn {
        name: principal.user,
        checked: authenticator.enforces_permissions(),
    })
}

/// Who a CONNECT logged in as.
pub(crate) struct LoggedIn {
    pub name: String,
    /// Whether the user's permissions are checked on publish and subscribe.
    pub checked: bool,
}

/// AUTH's "continue authentication" reason code.
const CONTINUE: u8 = 0x18;

/// An enhanced-authentication exchange between CONNECT and CONNACK.
pub(crate) struct ScramLogin {
    method: String,
    exchange: ScramExchange,
}

/// What CONNACK carries back after SCRAM: the method and the server-final message.
pub(crate) struct ScramReply {
    pub method: String,
    pub data: Bytes,
}

fn scram_refused(peer: std::net::SocketAddr, method: &str, reason: &str) -> Refusal {
    tracing::warn!(%peer, mechanism = %method, reason, "MQTT authentication failed");
    Refusal::new(ConnectReturnCode::NotAuthorized, "authentication failed")
}

impl ScramLogin {
    /// Answers CONNECT's authentication method and data: the AUTH (continue) to send, encoded,
    /// or the refusal (0x8C for a method the broker does not offer, MQTT 5 §4.12).
    pub(crate) fn start(
        conn: &Connection,
        ctx: &Context,
        method: &str,
        client_first: Option<&[u8]>,
    ) -> Result<(ScramLogin, Bytes), Refusal> {
        let mechanism = ScramMechanism::from_name(method).filter(|_| {
            conn.authenticator()
                .or(ctx.authenticator.as_deref())
                .is_some_and(|a| a.enforces_permissions())
        });
        let Some(mechanism) = mechanism else {
            tracing::warn!(peer = %conn.peer(), method, "MQTT enhanced authentication method refused");
            return Err(Refusal::new(
                ConnectReturnCode::BadAuthenticationMethod,
                format!("authentication method {method:?} is not offered: SCRAM-SHA-256 or SCRAM-SHA-512"),
            ));
        };
        let Some(client_first) = client_first else {
            return Err(Refusal::new(
                ConnectReturnCode::ProtocolError,
                "SCRAM needs the client-first message as CONNECT's authentication data",
            ));
        };
        let broker = ctx.vhost.broker();
        let (exchange, server_first) = broker
            .scram_start(mechanism, client_first, conn.peer().ip())
            .map_err(|e| scram_refused(conn.peer(), method, &e.to_string()))?;
        let mut challenge = BytesMut::new();
        encode_auth(CONTINUE, method, server_first.as_bytes(), &mut challenge);
        let login = ScramLogin {
            method: method.to_string(),
            exchange,
        };
        Ok((login, challenge.freeze()))
    }

    /// Checks the client's AUTH (its final message): the user logged in and CONNACK's reply.
    pub(crate) fn finish(
        self,
        conn: &Connection,
        ctx: &Context,
        answer: Option<AuthPacket>,
    ) -> Result<(LoggedIn, ScramReply), Refusal> {
        let client_final = answer
            .filter(|a| a.reason == CONTINUE && a.method.as_deref() == Some(self.method.as_str()))
            .and_then(|a| a.data);
        let Some(client_final) = client_final else {
            return Err(Refusal::new(
                ConnectReturnCode::ProtocolError,
                "expected AUTH (continue) with the same method and the client-final message",
            ));
        };
        let broker = ctx.vhost.broker();
        let (user, server_final) = broker
            .scram_finish(&self.exchange, &client_final, conn.peer().ip())
            .map_err(|e| scram_refused(conn.peer(), &self.method, &e.to_string()))?;
        let vhost = &ctx.config.vhost;
        if broker.permission(&user.name, vhost).is_none() {
            tracing::warn!(peer = %conn.peer(), user = %user.name, vhost = %vhost,
                "MQTT connection refused: the user has no permission in the MQTT virtual host");
            return Err(Refusal::new(
                ConnectReturnCode::NotAuthorized,
                format!("access to vhost '{vhost}' refused for user '{}'", user.name),
            ));
        }
        let reply = ScramReply {
            method: self.method,
            data: Bytes::from(server_final),
        };
        let logged_in = LoggedIn {
            name: user.name,
            checked: true,
        };
        Ok((logged_in, reply))
    }
}
