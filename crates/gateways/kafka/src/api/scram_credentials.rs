//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): `kafka-configs.sh
//! --alter --add-config 'SCRAM-SHA-512=[password=...]' --entity-type users` and AdminClient's
//! calls. The client salts and stretches the password itself and sends only the salted
//! password; the broker keeps `StoredKey` and `ServerKey` from it, in the same user store
//! `porter users` and the management API change.
//!
//! Who may call them: an authenticated user tagged `administrator` (Kafka asks for ALTER or
//! DESCRIBE on the cluster). On a listener without SASL nobody may: user management over an
//! unauthenticated connection would let anyone make themselves a user of every protocol.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use porter_core::broker::users::ScramChange;
use porter_core::users::credential::{SCRAM_ITERATIONS, SCRAM_ITERATIONS_MAX};
use porter_core::users::{ScramCredential, ScramMechanism};

use super::{Caller, Context};
use crate::authorize::is_super_user;
use crate::error::error_code;

/// One credential change of a request, or why it is refused.
type Change = Result<ScramChange, (ResponseError, String)>;

/// Kafka's numbering of SCRAM mechanisms on the wire.
fn mechanism_of(code: i8) -> Option<ScramMechanism> {
    match code {
        1 => Some(ScramMechanism::Sha256),
        2 => Some(ScramMechanism::Sha512),
        _ => None,
    }
}

fn code_of(mechanism: ScramMechanism) -> i8 {
    match mechanism {
        ScramMechanism::Sha256 => 1,
        ScramMechanism::Sha512 => 2,
    }
}

/// Whether the caller may manage users; logged when not.
fn allowed(caller: &Caller, api: &str) -> bool {
    let admin = is_super_user(caller);
    if !admin {
        let user = caller.principal.as_ref().map(|p| p.user.as_str());
        tracing::warn!(peer = %caller.peer, user, api, "refused: needs an authenticated administrator");
    }
    admin
}

fn text(message: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(message.into()))
}

pub fn describe(
    ctx: &Arc<Context>,
    request: DescribeUserScramCredentialsRequest,
    caller: &Caller,
) -> DescribeUserScramCredentialsResponse {
    let response = DescribeUserScramCredentialsResponse::default();
    if !allowed(caller, "DescribeUserScramCredentials") {
        return response
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(text("describing SCRAM credentials needs an administrator"));
    }
    let broker = &ctx.broker;
    // None or empty: every user with a credential.
    let names: Vec<(String, bool)> = match request.users {
        Some(users) if !users.is_empty() => {
            let names: Vec<String> = users.iter().map(|u| u.name.to_string()).collect();
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for name in &names {
                *seen.entry(name.as_str()).or_default() += 1;
            }
            names
                .iter()
                .map(|n| (n.clone(), seen[n.as_str()] > 1))
                .collect()
        }
        _ => broker
            .users()
            .into_iter()
            .filter(|u| u.credentials.is_some())
            .map(|u| (u.name, false))
            .collect(),
    };
    let results = names
        .into_iter()
        .map(|(name, duplicated)| {
            let result = DescribeUserScramCredentialsResult::default();
            if duplicated {
                return result
                    .with_user(StrBytes::from_string(name))
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(text("user named more than once"));
            }
            let infos: Vec<CredentialInfo> = broker
                .user(&name)
                .and_then(|u| u.credentials)
                .map(|c| c.scram)
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    CredentialInfo::default()
                        .with_mechanism(code_of(c.mechanism))
                        .with_iterations(c.iterations as i32)
                })
                .collect();
            let result = if infos.is_empty() {
                result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(text(format!(
                        "Attempt to describe a user credential that does not exist: {name}"
                    )))
            } else {
                result.with_credential_infos(infos)
            };
            result.with_user(StrBytes::from_string(name))
        })
        .collect();
    response.with_results(results)
}

pub async fn alter(
    ctx: &Arc<Context>,
    request: AlterUserScramCredentialsRequest,
    caller: &Caller,
) -> AlterUserScramCredentialsResponse {
    // Every user of the request, with its changes in order; a user named twice for the same
    // mechanism is refused whole, as Kafka does.
    let mut users: Vec<(String, Vec<Change>)> = Vec::new();
    let mut push = |name: String, change| match users.iter_mut().find(|(n, _)| *n == name) {
        Some((_, changes)) => changes.push(change),
        None => users.push((name, vec![change])),
    };
    for deletion in &request.deletions {
        let change = mechanism_of(deletion.mechanism)
            .map(ScramChange::Delete)
            .ok_or((
                ResponseError::UnsupportedSaslMechanism,
                "unknown SCRAM mechanism".to_string(),
            ));
        push(deletion.name.to_string(), change);
    }
    for upsertion in &request.upsertions {
        let change = match mechanism_of(upsertion.mechanism) {
            None => Err((
                ResponseError::UnsupportedSaslMechanism,
                "unknown SCRAM mechanism".to_string(),
            )),
            Some(_)
                if !(SCRAM_ITERATIONS as i32..=SCRAM_ITERATIONS_MAX as i32)
                    .contains(&upsertion.iterations) =>
            {
                Err((
                    ResponseError::UnacceptableCredential,
                    format!(
                        "iterations must be {SCRAM_ITERATIONS} to {SCRAM_ITERATIONS_MAX}, not {}",
                        upsertion.iterations
                    ),
                ))
            }
            Some(_) if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() => Err((
                ResponseError::UnacceptableCredential,
                "salt and salted password must not be empty".to_string(),
            )),
            Some(mechanism) => Ok(ScramChange::Put(ScramCredential::from_salted(
                mechanism,
                &upsertion.salted_password,
                upsertion.salt.to_vec(),
                upsertion.iterations as u32,
            ))),
        };
        push(upsertion.name.to_string(), change);
    }
    let admin = allowed(caller, "AlterUserScramCredentials");
    let mut results = Vec::with_capacity(users.len());
    for (name, changes) in users {
        let outcome = apply(ctx, &name, changes, admin).await;
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err((error, message)) => (error.code(), text(message)),
        };
        results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(name))
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// One user's changes: all checked first, then applied in order.
async fn apply(
    ctx: &Arc<Context>,
    name: &str,
    changes: Vec<Change>,
    admin: bool,
) -> Result<(), (ResponseError, String)> {
    if !admin {
        return Err((
            ResponseError::ClusterAuthorizationFailed,
            "altering SCRAM credentials needs an administrator".to_string(),
        ));
    }
    let changes: Vec<ScramChange> = changes.into_iter().collect::<Result<_, _>>()?;
    let mechanism = |c: &ScramChange| match c {
        ScramChange::Put(credential) => credential.mechanism,
        ScramChange::Delete(mechanism) => *mechanism,
    };
    for (i, change) in changes.iter().enumerate() {
        if changes[..i]
            .iter()
            .any(|c| mechanism(c) == mechanism(change))
        {
            return Err((
                ResponseError::DuplicateResource,
                "a mechanism named twice for one user".to_string(),
            ));
        }
    }
    if name.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "empty user name".to_string(),
        ));
    }
    for change in changes {
        ctx.broker
            .change_scram_credential(name, change)
            .await
            .map_err(|e| {
                let code = match e {
                    porter_core::CoreError::NotFound(_) => ResponseError::ResourceNotFound,
                    ref other => error_code(other),
                };
                (code, e.to_string())
            })?;
    }
    Ok(())
}
