//! DescribeClientQuotas and AlterClientQuotas (KIP-546): what `kafka-configs.sh --entity-type
//! users --entity-type clients --alter --add-config producer_byte_rate=...` calls. Entities are
//! users and client ids (a null name is the default); the values are the core's metadata, the
//! throttling is `crate::throttle`. Both need an administrator, or with ACLs on, `DescribeConfigs`
//! / `AlterConfigs` on the cluster (as Kafka asks).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntityData as AlterEntity;
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlteredEntity, EntryData as AlteredEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use porter_core::quota::{QuotaChange, QuotaEntity};

use super::{Caller, Context};
use crate::authorize::{allowed, is_super_user, Operation, ResourceType, CLUSTER};
use crate::error::error_code;

/// Whether the caller may: an administrator always; with ACLs off, nobody else (quotas are the
/// operator's); with ACLs on, whoever they grant.
fn may(ctx: &Context, caller: &Caller, operation: Operation) -> bool {
    is_super_user(caller)
        || (ctx.config.acls && allowed(ctx, caller, operation, ResourceType::Cluster, CLUSTER))
}

fn entity_of(parts: &[AlterEntity]) -> Result<QuotaEntity, String> {
    let mut entity = QuotaEntity {
        user: None,
        client_id: None,
    };
    for part in parts {
        let name = part.entity_name.as_ref().map(|n| n.to_string());
        match part.entity_type.as_str() {
            "user" => entity.user = Some(name),
            "client-id" => entity.client_id = Some(name),
            other => {
                return Err(format!(
                    "entity type {other:?} is not supported (user, client-id)"
                ))
            }
        }
    }
    Ok(entity)
}

fn entity_data(entity: &QuotaEntity) -> Vec<(&'static str, Option<String>)> {
    let mut parts = Vec::new();
    if let Some(user) = &entity.user {
        parts.push(("user", user.clone()));
    }
    if let Some(client) = &entity.client_id {
        parts.push(("client-id", client.clone()));
    }
    parts
}

pub fn describe(
    ctx: &Arc<Context>,
    request: DescribeClientQuotasRequest,
    caller: &Caller,
) -> DescribeClientQuotasResponse {
    if !may(ctx, caller, Operation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "describing client quotas needs an administrator",
            )));
    }
    // Components filter by type: match_type 0 exact name, 1 the default, 2 any. `strict`: the
    // entity has no other types.
    let matches = |entity: &QuotaEntity| {
        let types = entity_data(entity);
        let each = request.components.iter().all(|c| {
            let part = types.iter().find(|(t, _)| *t == c.entity_type.as_str());
            match (c.match_type, part) {
                (_, None) => false,
                (0, Some((_, name))) => {
                    name.as_deref() == c._match.as_ref().map(|m| m.to_string()).as_deref()
                }
                (1, Some((_, name))) => name.is_none(),
                (_, Some(_)) => true,
            }
        });
        each && (!request.strict || types.len() == request.components.len())
    };
    let entries = ctx
        .broker
        .client_quotas()
        .entries
        .iter()
        .filter(|e| matches(&e.entity))
        .map(|e| {
            EntryData::default()
                .with_entity(
                    entity_data(&e.entity)
                        .into_iter()
                        .map(|(t, name)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(t))
                                .with_entity_name(name.map(StrBytes::from_string))
                        })
                        .collect(),
                )
                .with_values(
                    e.values
                        .iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(*v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub async fn alter(
    ctx: &Arc<Context>,
    request: AlterClientQuotasRequest,
    caller: &Caller,
) -> AlterClientQuotasResponse {
    let allowed = may(ctx, caller, Operation::AlterConfigs);
    let mut results = Vec::with_capacity(request.entries.len());
    for entry in request.entries {
        let echoed: Vec<AlteredEntity> = entry
            .entity
            .iter()
            .map(|e| {
                AlteredEntity::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        let outcome = if !allowed {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "altering client quotas needs an administrator".to_string(),
            ))
        } else {
            match entity_of(&entry.entity) {
                Err(why) => Err((ResponseError::InvalidRequest, why)),
                Ok(entity) => {
                    let change = QuotaChange {
                        entity,
                        ops: entry
                            .ops
                            .iter()
                            .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                            .collect(),
                    };
                    if request.validate_only {
                        Ok(())
                    } else {
                        ctx.broker
                            .alter_client_quota(change)
                            .await
                            .map_err(|e| (error_code(&e), e.to_string()))
                    }
                }
            }
        };
        let result = AlteredEntry::default().with_entity(echoed);
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    AlterClientQuotasResponse::default().with_entries(results)
}
