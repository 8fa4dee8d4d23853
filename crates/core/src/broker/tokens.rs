//! The broker's calls for the HTTP API's bearer tokens (see [`crate::users::tokens`]): make one
//! for a user (shown once), list and delete them, and log a request in by one.

use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::users::tokens::{self, ApiToken, API_TOKENS_PER_USER_MAX};
use crate::users::{validate_name, User};

use super::users::LoginError;
use super::Broker;

/// A token just made: its text, shown this once.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub token: String,
    pub record: ApiToken,
}

impl Broker {
    /// Makes token `name` for user `user`, valid for `ttl_ms` (`None`: until deleted).
    pub async fn create_api_token(
        self: &Arc<Self>,
        user: &str,
        name: &str,
        ttl_ms: Option<u64>,
    ) -> Result<NewToken> {
        validate_name(name)?;
        let token = tokens::new_token();
        let now = crate::partition::now_ms().max(0) as u64;
        let record = ApiToken {
            name: name.to_string(),
            digest: tokens::digest(&token),
            created_ms: now,
            expires_ms: ttl_ms.map(|ttl| now.saturating_add(ttl)),
        };
        let kept = record.clone();
        self.change_user(user, move |u| {
            if u.api_tokens.iter().any(|t| t.name == kept.name) {
                return Err(CoreError::InvalidRequest(format!(
                    "a token named {:?} exists: delete it first",
                    kept.name
                )));
            }
            // Expired tokens make room; they would never work again.
            u.api_tokens.retain(|t| !t.expired(now));
            if u.api_tokens.len() >= API_TOKENS_PER_USER_MAX {
                return Err(CoreError::LimitExceeded(format!(
                    "{API_TOKENS_PER_USER_MAX} API tokens per user"
                )));
            }
            u.api_tokens.push(kept);
            Ok(())
        })
        .await?;
        tracing::info!(user, token = name, "API token created");
        Ok(NewToken { token, record })
    }

    /// User `user`'s tokens (their names and dates, never the tokens).
    pub fn api_tokens(&self, user: &str) -> Option<Vec<ApiToken>> {
        self.user(user).map(|u| u.api_tokens)
    }

    pub async fn delete_api_token(self: &Arc<Self>, user: &str, name: &str) -> Result<()> {
        let wanted = name.to_string();
        self.change_user(user, move |u| {
            let before = u.api_tokens.len();
            u.api_tokens.retain(|t| t.name != wanted);
            if u.api_tokens.len() == before {
                return Err(CoreError::NotFound(format!("no token named {wanted:?}")));
            }
            Ok(())
        })
        .await?;
        tracing::info!(user, token = name, "API token deleted");
        Ok(())
    }

    /// The user a bearer token belongs to, if it is known, unexpired, and its owner may log in
    /// from `peer`. Throttled and counted like a password login.
    pub fn token_login(&self, token: &str, peer: IpAddr) -> std::result::Result<User, LoginError> {
        const SOURCE: &str = "(API token)";
        self.throttled(peer, SOURCE)?;
        let digest = tokens::digest(token);
        let now = crate::partition::now_ms().max(0) as u64;
        let checked = self
            .users
            .token_owner(&digest)
            .ok_or(LoginError::BadToken)
            .and_then(|owner| self.vouched_login(&owner, peer))
            .and_then(|user| {
                let live = user
                    .api_tokens
                    .iter()
                    .any(|t| t.digest == digest && !t.expired(now));
                if live {
                    Ok(user)
                } else {
                    Err(LoginError::BadToken)
                }
            });
        self.count_failure(checked, peer, SOURCE)
    }
}
