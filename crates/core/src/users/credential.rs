//! A user's password as the broker keeps it: never the password, only SCRAM credentials
//! (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's SCRAM-SHA-512 name them): a
//! random salt, an iteration count, and the `StoredKey` and `ServerKey` derived from
//! `SaltedPassword = PBKDF2-HMAC(password, salt, iterations)`.
//!
//! The same credential checks a password sent in clear over an authenticated channel (PLAIN,
//! AMQPLAIN, MQTT, STOMP, HTTP basic): the password is salted and stretched again and its
//! `StoredKey` compared, in constant time. PBKDF2-HMAC-SHA-512 at 4096 iterations is the
//! password hash; no second, weaker hash is kept. What a stolen credential gives an attacker is
//! RFC 5802's answer: it cannot log in with it (the client proof needs `ClientKey`), only
//! brute-force the password at 4096 HMAC rounds per guess.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// Iterations for new credentials: RFC 7677's minimum and Kafka's default.
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Iterations a credential may be made with (Kafka accepts 4096 to 16384).
pub const SCRAM_ITERATIONS_MAX: u32 = 16_384;
/// Bytes of random salt per credential.
const SALT_BYTES: usize = 16;

/// The hash a SCRAM credential is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// `SaltedPassword` (RFC 5802 `Hi`): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramMechanism::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    /// `HMAC(key, message)` with this mechanism's hash.
    pub fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `H(message)`.
    pub fn hash(self, message: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(message).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(message).to_vec(),
        }
    }
}

/// One SCRAM credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// The credential for `password` with `salt` and `iterations`.
    pub fn new(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password, &salt, iterations);
        ScramCredential::from_salted(mechanism, &salted, salt, iterations)
    }

    /// The credential from an already salted password (Kafka's AlterUserScramCredentials sends
    /// that, never the password).
    pub fn from_salted(
        mechanism: ScramMechanism,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted, b"Client Key");
        ScramCredential {
            mechanism,
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from (constant-time compare).
    pub fn verify(&self, password: &[u8]) -> bool {
        let again =
            ScramCredential::new(self.mechanism, password, self.salt.clone(), self.iterations);
        constant_time_eq(&again.stored_key, &self.stored_key)
    }
}

/// A user's password credentials: one per SCRAM mechanism, from the same password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordCredentials {
    pub scram: Vec<ScramCredential>,
}

impl PasswordCredentials {
    /// Fresh credentials for `password` (random salts), SHA-256 and SHA-512.
    pub fn from_password(password: &str) -> PasswordCredentials {
        PasswordCredentials {
            scram: [ScramMechanism::Sha256, ScramMechanism::Sha512]
                .into_iter()
                .map(|m| ScramCredential::new(m, password.as_bytes(), salt(), SCRAM_ITERATIONS))
                .collect(),
        }
    }

    /// The credential for `mechanism`, if the user has one.
    pub fn scram(&self, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.scram.iter().find(|c| c.mechanism == mechanism)
    }

    /// Whether `password` matches: checked against the strongest credential held.
    pub fn verify(&self, password: &[u8]) -> bool {
        self.scram(ScramMechanism::Sha512)
            .or_else(|| self.scram.first())
            .is_some_and(|c| c.verify(password))
    }
}

/// A new random salt.
pub fn salt() -> Vec<u8> {
    let mut salt = vec![0u8; SALT_BYTES];
    getrandom::fill(&mut salt).expect("the OS random source");
    salt
}

/// Equal without an early exit, so timing does not say how much of a key matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Key bytes as base64 in the metadata journal.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(text: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }

    /// RFC 7677 section 3's exchange: the server's signature over the AuthMessage, from the
    /// credential made of "pencil", is the one the RFC shows.
    #[test]
    fn rfc7677_example_server_signature() {
        let credential = ScramCredential::new(
            ScramMechanism::Sha256,
            b"pencil",
            b64("W22ZaJ0SNY7soEsUEjb6gQ=="),
            4096,
        );
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature =
            ScramMechanism::Sha256.hmac(&credential.server_key, auth_message.as_bytes());
        assert_eq!(
            signature,
            b64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
        // And the client's proof from the RFC checks against the stored key:
        // ClientKey = proof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) == StoredKey.
        let proof = b64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let client_signature =
            ScramMechanism::Sha256.hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(
            ScramMechanism::Sha256.hash(&client_key),
            credential.stored_key
        );
    }

    #[test]
    fn a_password_verifies_and_no_other_does() {
        let credentials = PasswordCredentials::from_password("s3cret");
        assert!(credentials.verify(b"s3cret"));
        assert!(!credentials.verify(b"s3cret "));
        assert!(!credentials.verify(b""));
        let again = PasswordCredentials::from_password("s3cret");
        assert_ne!(credentials, again, "fresh salts");
        let json = serde_json::to_string(&credentials).unwrap();
        assert!(!json.contains("s3cret"));
        let back: PasswordCredentials = serde_json::from_str(&json).unwrap();
        assert!(back.verify(b"s3cret"));
    }
}
