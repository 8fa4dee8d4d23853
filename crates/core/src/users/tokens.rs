//! The HTTP API's bearer tokens: for scripts and dashboards that should not hold a user's
//! password. A token is 32 random bytes the broker shows once, when it is made; the broker keeps
//! only its SHA-256 (a token is random, so no stretching is needed, unlike a password), the
//! name its owner gave it and when it expires. A request with `Authorization: Bearer <token>` is
//! its owner's, with the owner's tags, until the token expires or is deleted.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Tokens one user may hold.
pub const API_TOKENS_PER_USER_MAX: usize = 20;
/// What every token starts with, so secret scanners and people can tell one.
pub const TOKEN_PREFIX: &str = "porter_";

/// One token as the broker keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Its owner's name for it (unique per user).
    pub name: String,
    /// Hex SHA-256 of the token.
    pub digest: String,
    /// Milliseconds since the epoch.
    pub created_ms: u64,
    /// When it stops working (milliseconds since the epoch); `None`: never.
    pub expires_ms: Option<u64>,
}

impl ApiToken {
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A new token's text: the prefix and 64 hex digits.
pub fn new_token() -> String {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("the OS random source");
    format!("{TOKEN_PREFIX}{}", crate::hex::encode(&random))
}

/// The digest a token is kept and looked up by.
pub fn digest(token: &str) -> String {
    crate::hex::encode(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_kept_as_digests() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a).len(), 64);
        let token = ApiToken {
            name: "ci".into(),
            digest: digest(&a),
            created_ms: 1,
            expires_ms: Some(10),
        };
        assert!(!token.expired(9) && token.expired(10));
    }
}
