//! SASL on a Kafka connection (KIP-43, KIP-152, KIP-368): the state each connection walks
//! through before its first real request, and again when it re-authenticates.
//!
//! ```text
//! start --SaslHandshake(mechanism)--> handshaken --SaslAuthenticate--> authenticated
//!                                          |  (SCRAM: client-first)
//!                                          v
//!                                     scram-first --SaslAuthenticate(client-final)--> authenticated
//! ```
//!
//! On a listener with mechanisms configured, a connection may send only ApiVersions,
//! SaslHandshake and SaslAuthenticate until it is authenticated; anything else closes it, as
//! Kafka does ("unexpected request during SASL handshake"). A failed authentication is answered
//! with SASL_AUTHENTICATION_FAILED, logged with the peer and mechanism (never the secret), and
//! the connection closes after the answer.
//!
//! With `reauth_ms` (Kafka's `connections.max.reauth.ms`) the answer carries
//! `session_lifetime_ms`; a client re-authenticates on the same connection before then (as
//! the same user: Kafka refuses a change of principal), and a request after the session
//! expired closes the connection.
//!
//! PLAIN checks the password against the user's stored SCRAM credential (one PBKDF2 on the
//! blocking pool, cached as AMQP's logins are); SCRAM-SHA-256/512 never need the password.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use porter_core::broker::users::LoginError;
use porter_core::users::scram::ScramExchange;
use porter_core::users::ScramMechanism;
use porter_core::Broker;
use porter_gateway_kit::auth::{parse_plain, Principal};
use porter_gateway_kit::CloseReason;

use crate::frame::{Request, RequestKind, ResponseKind};

/// A mechanism a Kafka listener can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// Every mechanism Porter knows, in the order offered by default.
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Scram(ScramMechanism::Sha512),
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            other => ScramMechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }
}

/// What the connection does with a request.
pub enum Admission {
    /// Not SASL's: handle it as usual.
    Handle(Box<Request>),
    /// SASL's own: this is the answer. With `close`, the connection ends after writing it.
    Answer {
        response: ResponseKind,
        close: Option<CloseReason>,
    },
    /// Refused before authentication (or after the session expired): close without answer.
    Refuse(CloseReason),
}

enum State {
    /// No handshake yet (or the last session's handshake is done).
    Start,
    Handshaken(SaslMechanism),
    ScramFirst(Box<ScramExchange>),
}

/// One connection's SASL state.
pub struct Sasl {
    mechanisms: Arc<[SaslMechanism]>,
    reauth: Option<Duration>,
    peer: SocketAddr,
    state: State,
    principal: Option<Arc<Principal>>,
    /// When the session ends (with `reauth`).
    expires: Option<Instant>,
    /// The authenticated user's connection, counted against its `max-connections`.
    slot: Option<porter_core::vhost_limits::CountedConnection>,
}

impl Sasl {
    /// `mechanisms` empty: the listener does not authenticate (Kafka's PLAINTEXT).
    pub fn new(mechanisms: Arc<[SaslMechanism]>, reauth_ms: u64, peer: SocketAddr) -> Sasl {
        Sasl {
            mechanisms,
            reauth: (reauth_ms > 0).then(|| Duration::from_millis(reauth_ms)),
            peer,
            state: State::Start,
            principal: None,
            expires: None,
            slot: None,
        }
    }

    /// Kafka's SSL principal on a listener without SASL: the user a verified client certificate
    /// names (mutual TLS), for ACLs and quotas. Its tags are the user store's user of that name
    /// (none when there is no such user, or it may not log in from this address).
    pub fn with_certificate(mut self, broker: &Broker, user: Option<&str>) -> Sasl {
        let Some(user) = user.filter(|_| self.mechanisms.is_empty()) else {
            return self;
        };
        let tags = broker
            .vouched_login(user, self.peer.ip())
            .map(|u| u.tags)
            .unwrap_or_default();
        self.principal = Some(Arc::new(Principal {
            user: user.to_string(),
            tags,
        }));
        self
    }

    /// The authenticated user, if any.
    pub fn principal(&self) -> Option<Arc<Principal>> {
        self.principal.clone()
    }

    /// Decides what becomes of `request` (the ordered stage: SASL requests change state).
    pub async fn admit(&mut self, broker: &Arc<Broker>, request: Request) -> Admission {
        let version = request.version;
        match request.body {
            RequestKind::SaslHandshake(req) => self.handshake(req),
            RequestKind::SaslAuthenticate(req) => {
                self.authenticate(broker, req.auth_bytes, version).await
            }
            _ if self.mechanisms.is_empty() => Admission::Handle(Box::new(request)),
            RequestKind::ApiVersions(_) => Admission::Handle(Box::new(request)),
            _ => match (&self.principal, self.expires) {
                (None, _) => Admission::Refuse(CloseReason::protocol(
                    0,
                    format!(
                        "unexpected Kafka request {:?} before SASL authentication",
                        request.api_key
                    ),
                )),
                (Some(p), Some(at)) if Instant::now() >= at => {
                    Admission::Refuse(CloseReason::protocol(
                        0,
                        format!(
                            "SASL session of user '{}' expired without re-authentication",
                            p.user
                        ),
                    ))
                }
                _ => Admission::Handle(Box::new(request)),
            },
        }
    }

    fn handshake(&mut self, req: SaslHandshakeRequest) -> Admission {
        let offered: Vec<StrBytes> = self
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let answer = |error: Option<ResponseError>| {
            ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(error.map_or(0, |e| e.code()))
                    .with_mechanisms(offered.clone()),
            )
        };
        if self.mechanisms.is_empty() {
            tracing::info!(peer = %self.peer, mechanism = %req.mechanism.as_str(),
                "SASL handshake on a Kafka listener without SASL (configure [kafka] sasl_mechanisms)");
            return Admission::Answer {
                response: answer(Some(ResponseError::IllegalSaslState)),
                close: None,
            };
        }
        let wanted = SaslMechanism::from_name(req.mechanism.as_str())
            .filter(|m| self.mechanisms.contains(m));
        match wanted {
            Some(mechanism) => {
                self.state = State::Handshaken(mechanism);
                Admission::Answer {
                    response: answer(None),
                    close: None,
                }
            }
            None => {
                tracing::warn!(peer = %self.peer, mechanism = %req.mechanism.as_str(),
                    "Kafka SASL handshake with a mechanism this listener does not offer");
                Admission::Answer {
                    response: answer(Some(ResponseError::UnsupportedSaslMechanism)),
                    close: Some(CloseReason::protocol(
                        0,
                        format!("unsupported SASL mechanism {}", req.mechanism.as_str()),
                    )),
                }
            }
        }
    }

    async fn authenticate(
        &mut self,
        broker: &Arc<Broker>,
        bytes: Bytes,
        version: i16,
    ) -> Admission {
        let state = std::mem::replace(&mut self.state, State::Start);
        let (mechanism, outcome) = match state {
            State::Handshaken(SaslMechanism::Plain) => {
                let outcome = match parse_plain(&bytes) {
                    Some((user, password)) => broker
                        .login(user, password, self.peer.ip())
                        .await
                        .map(|user| (user, Bytes::new())),
                    None => Err(LoginError::UnknownUser(String::new())),
                };
                (SaslMechanism::Plain, outcome)
            }
            State::Handshaken(SaslMechanism::Scram(m)) => {
                return match broker.scram_start(m, &bytes, self.peer.ip()) {
                    Ok((exchange, server_first)) => {
                        self.state = State::ScramFirst(Box::new(exchange));
                        Admission::Answer {
                            response: authenticated(Bytes::from(server_first), 0),
                            close: None,
                        }
                    }
                    Err(e) => self.failed(SaslMechanism::Scram(m), &e),
                };
            }
            State::ScramFirst(exchange) => {
                let mechanism = SaslMechanism::Scram(exchange.mechanism());
                let outcome = broker
                    .scram_finish(&exchange, &bytes, self.peer.ip())
                    .map(|(user, server_final)| (user, Bytes::from(server_final)));
                (mechanism, outcome)
            }
            State::Start => {
                let why = "SaslAuthenticate without a SaslHandshake first";
                tracing::warn!(peer = %self.peer, "{why}");
                return Admission::Answer {
                    response: ResponseKind::SaslAuthenticate(
                        SaslAuthenticateResponse::default()
                            .with_error_code(ResponseError::IllegalSaslState.code())
                            .with_error_message(Some(StrBytes::from_static_str(why))),
                    ),
                    close: Some(CloseReason::protocol(0, why)),
                };
            }
        };
        let (user, reply) = match outcome {
            Ok(done) => done,
            Err(e) => return self.failed(mechanism, &e),
        };
        if let Some(before) = &self.principal {
            if before.user != user.name {
                let why = format!(
                    "re-authentication as '{}' on a connection of '{}'",
                    user.name, before.user
                );
                tracing::warn!(peer = %self.peer, mechanism = mechanism.name(), "{why}");
                return Admission::Answer {
                    response: failure("Cannot change principals during re-authentication"),
                    close: Some(CloseReason::protocol(0, why)),
                };
            }
        }
        // The first login counts against the user's max-connections (re-authentication keeps
        // the count it has).
        if self.principal.is_none() {
            match broker.open_user_connection(&user.name) {
                Ok(slot) => self.slot = slot,
                Err(e) => {
                    tracing::warn!(peer = %self.peer, user = %user.name, error = %e,
                        "Kafka connection refused: user connection limit");
                    return Admission::Answer {
                        response: failure(&e.to_string()),
                        close: Some(CloseReason::limit(0, e.to_string())),
                    };
                }
            }
        }
        // A v0 client cannot be told the lifetime and cannot re-authenticate: its connection
        // ends at expiry all the same (KIP-368), and it reconnects.
        self.expires = self.reauth.map(|lifetime| Instant::now() + lifetime);
        let lifetime_ms = match self.reauth {
            Some(lifetime) if version >= 1 => lifetime.as_millis() as i64,
            _ => 0,
        };
        tracing::debug!(peer = %self.peer, user = %user.name, mechanism = mechanism.name(),
            reauthentication = self.principal.is_some(), "Kafka SASL authentication");
        self.principal = Some(Arc::new(Principal {
            user: user.name,
            tags: user.tags,
        }));
        Admission::Answer {
            response: authenticated(reply, lifetime_ms),
            close: None,
        }
    }

    /// The answer to a failed authentication: logged, answered, and the connection closes.
    fn failed(&mut self, mechanism: SaslMechanism, error: &LoginError) -> Admission {
        // A throttled address was logged once by the throttle, not at every attempt.
        if error.is_throttled() {
            tracing::debug!(peer = %self.peer, mechanism = mechanism.name(), reason = %error,
                "Kafka SASL authentication refused");
        } else {
            tracing::warn!(peer = %self.peer, mechanism = mechanism.name(), reason = %error,
                "Kafka SASL authentication failed");
        }
        Admission::Answer {
            // Kafka's text: the client prints it, and it says nothing about which part was wrong.
            response: failure(&format!(
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism {}",
                mechanism.name()
            )),
            close: Some(CloseReason::protocol(
                0,
                format!("SASL {} authentication failed", mechanism.name()),
            )),
        }
    }
}

fn authenticated(bytes: Bytes, session_lifetime_ms: i64) -> ResponseKind {
    ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_auth_bytes(bytes)
            .with_session_lifetime_ms(session_lifetime_ms),
    )
}

fn failure(message: &str) -> ResponseKind {
    ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string()))),
    )
}
