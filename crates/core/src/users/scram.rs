//! The server side of a SCRAM exchange (RFC 5802, with RFC 7677's SHA-256 and Kafka's
//! SCRAM-SHA-512): two messages from the client, two answers. Pure: it neither looks users up
//! nor does I/O, so every protocol that offers SCRAM (Kafka's SaslAuthenticate, later MQTT 5's
//! enhanced authentication) drives the same code, and tests drive it with RFC 7677's example.
//!
//! ```text
//! client-first  n,,n=user,r=<client nonce>
//! server-first  r=<client nonce><server nonce>,s=<salt>,i=<iterations>
//! client-final  c=biws,r=<both nonces>,p=<ClientProof>
//! server-final  v=<ServerSignature>
//! ```
//!
//! The proof is checked as RFC 5802 says: `ClientKey = ClientProof XOR HMAC(StoredKey,
//! AuthMessage)` and `H(ClientKey) == StoredKey`, so the server never needs the password. No
//! channel binding (`p=`) and no Kafka delegation tokens (`tokenauth=true`): both are refused.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::credential::{constant_time_eq, ScramCredential, ScramMechanism};

/// Longest client message taken: a user name of at most 255 bytes, escaped, plus nonces and a
/// proof fit many times over.
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 4096;
/// Random bytes in the server's half of the nonce (base64 in the message).
const SERVER_NONCE_BYTES: usize = 24;

/// Why an exchange failed. The text is for the broker's log; clients are told only that
/// authentication failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("SCRAM extension '{0}' is not supported")]
    Extension(String),
    #[error("the client's nonce does not continue the exchange's")]
    NonceMismatch,
    #[error("the client proof is wrong (wrong password)")]
    InvalidProof,
}

/// The client's first message, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name, unescaped (`=2C` is `,`, `=3D` is `=`).
    pub user: String,
    nonce: String,
    /// `n=...,r=...` as sent: part of the AuthMessage.
    bare: String,
    /// `n,,` (or `n,a=user,`): echoed base64 in the client's final `c=`.
    gs2_header: String,
}

impl ClientFirst {
    pub fn parse(message: &[u8]) -> Result<ClientFirst, ScramError> {
        if message.len() > SCRAM_MESSAGE_BYTES_MAX {
            return Err(ScramError::Malformed("message too long"));
        }
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (flag, rest) = text
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        let mut user = None;
        let mut nonce = None;
        for (i, attribute) in bare.split(',').enumerate() {
            let (key, value) = attribute
                .split_once('=')
                .ok_or(ScramError::Malformed("attribute without '='"))?;
            match (i, key) {
                (0, "m") => return Err(ScramError::Extension("m".into())),
                (0, "n") => user = Some(unescape(value)?),
                (1, "r") if !value.is_empty() => nonce = Some(value.to_string()),
                (0 | 1, _) => return Err(ScramError::Malformed("expected n= then r=")),
                // Kafka's extensions: `tokenauth=true` asks for delegation tokens.
                (_, "tokenauth") if value == "true" => {
                    return Err(ScramError::Extension("tokenauth".into()))
                }
                _ => {}
            }
        }
        let user = user.ok_or(ScramError::Malformed("no user name"))?;
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce"))?;
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if unescape(authzid)? != user {
                return Err(ScramError::Malformed("authorization id differs from user"));
            }
        } else if !authzid.is_empty() {
            return Err(ScramError::Malformed("bad authorization id"));
        }
        Ok(ClientFirst {
            user,
            nonce,
            bare: bare.to_string(),
            gs2_header: format!("{flag},{authzid},"),
        })
    }
}

/// An exchange after the server's first message, waiting for the client's final one.
#[derive(Clone, Debug)]
pub struct ScramExchange {
    credential: ScramCredential,
    client_first: ClientFirst,
    server_first: String,
    /// Client and server nonce: what the final message must carry.
    nonce: String,
}

impl ScramExchange {
    /// Answers `client_first` for the user's `credential` with a fresh random server nonce.
    pub fn start(
        client_first: ClientFirst,
        credential: ScramCredential,
    ) -> (ScramExchange, String) {
        let mut random = [0u8; SERVER_NONCE_BYTES];
        getrandom::fill(&mut random).expect("the OS random source");
        ScramExchange::start_with_nonce(client_first, credential, &STANDARD.encode(random))
    }

    /// [`ScramExchange::start`] with a given server nonce (tests replay RFC 7677's example).
    pub fn start_with_nonce(
        client_first: ClientFirst,
        credential: ScramCredential,
        server_nonce: &str,
    ) -> (ScramExchange, String) {
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let exchange = ScramExchange {
            credential,
            client_first,
            server_first: server_first.clone(),
            nonce,
        };
        (exchange, server_first)
    }

    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> ScramMechanism {
        self.credential.mechanism
    }

    /// The user the client named.
    pub fn user(&self) -> &str {
        &self.client_first.user
    }

    /// Checks the client's final message; the server's final message (its signature) when the
    /// proof is right.
    pub fn finish(&self, client_final: &[u8]) -> Result<String, ScramError> {
        if client_final.len() > SCRAM_MESSAGE_BYTES_MAX {
            return Err(ScramError::Malformed("message too long"));
        }
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("expected c="))?;
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r="))?;
        if STANDARD.decode(binding).ok().as_deref() != Some(self.client_first.gs2_header.as_bytes())
        {
            return Err(ScramError::ChannelBinding);
        }
        if nonce != self.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first.bare, self.server_first
        );
        let mechanism = self.credential.mechanism;
        let client_signature = mechanism.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidProof);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&mechanism.hash(&client_key), &self.credential.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = mechanism.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)))
    }
}

/// `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_credential() -> ScramCredential {
        ScramCredential::new(
            ScramMechanism::Sha256,
            b"pencil",
            STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            4096,
        )
    }

    /// RFC 7677 section 3, message by message.
    #[test]
    fn rfc7677_exchange() {
        let first = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let (exchange, server_first) = ScramExchange::start_with_nonce(
            first,
            rfc_credential(),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            exchange.finish(client_final.as_bytes()),
            Ok("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_string())
        );
        // One flipped bit of the proof, or another nonce, fails.
        let wrong = client_final.replace("p=dHz", "p=dHy");
        assert_eq!(
            exchange.finish(wrong.as_bytes()),
            Err(ScramError::InvalidProof)
        );
        let replayed = client_final.replace("k0,", "k1,");
        assert_eq!(
            exchange.finish(replayed.as_bytes()),
            Err(ScramError::NonceMismatch)
        );
    }

    #[test]
    fn client_first_messages_are_checked() {
        let parsed = ClientFirst::parse(b"n,a=a=2Cb,n=a=2Cb,r=x,tokenauth=false").unwrap();
        assert_eq!(parsed.user, "a,b");
        for (message, error) in [
            (&b"p=tls-unique,,n=u,r=x"[..], ScramError::ChannelBinding),
            (
                b"n,,n=u,r=x,tokenauth=true",
                ScramError::Extension("tokenauth".into()),
            ),
            (b"n,,r=x,n=u", ScramError::Malformed("expected n= then r=")),
            (
                b"n,,n=u=41,r=x",
                ScramError::Malformed("bad escape in user name"),
            ),
            (b"n,,n=u", ScramError::Malformed("no nonce")),
            (
                b"n,a=v,n=u,r=x",
                ScramError::Malformed("authorization id differs from user"),
            ),
            (b"\xff", ScramError::Malformed("not UTF-8")),
        ] {
            assert_eq!(ClientFirst::parse(message), Err(error), "{message:?}");
        }
        let long = vec![b'a'; SCRAM_MESSAGE_BYTES_MAX + 1];
        assert!(ClientFirst::parse(&long).is_err());
    }

    proptest::proptest! {
        /// Whatever the client sends, parsing and finishing answer (no panic).
        #[test]
        fn arbitrary_messages_never_panic(first in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                          last in ".{0,200}") {
            let _ = ClientFirst::parse(&first);
            let parsed = ClientFirst::parse(b"n,,n=u,r=abc").unwrap();
            let (exchange, _) = ScramExchange::start(parsed, rfc_credential());
            let _ = exchange.finish(last.as_bytes());
        }
    }
}
