//! Kafka client quotas (KIP-55, KIP-546): byte rates per user and client id, kept as metadata
//! commands, resolved with Kafka's precedence. The gateway measures and throttles; this module
//! only says which quota applies to a (user, client id).
//!
//! An entity names a user, a client id, or both; each may be a name or the default (`None`
//! here, Kafka's `<default>`). For a client, the most specific entity with a value wins:
//! user+client, user+default client, user, default user+client, default user+default client,
//! default user, client, default client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// The keys Porter enforces (Kafka's names); others are refused.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Kafka's request quota: the share of one request thread's time (percent) a client's requests
/// may take, measured as the time the broker works on them (not their durability waits).
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// The quota keys the broker enforces.
pub const QUOTA_KEYS: [&str; 3] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE];
/// Entities the broker holds at most.
pub const QUOTA_ENTITIES_MAX: usize = 10_000;

/// Who a quota is for. `Some(None)`: the default user or client id; `None`: not part of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
}

/// One entity's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaEntry {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

/// A change: set (`Some`) or remove (`None`) keys of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaChange {
    pub entity: QuotaEntity,
    pub ops: Vec<(String, Option<f64>)>,
}

// Values are finite (`check` refuses NaN), so equality is an equivalence: the metadata types,
// which are `Eq`, may hold them.
impl Eq for QuotaEntry {}
impl Eq for QuotaChange {}
impl Eq for ClientQuotas {}

/// Every quota of the broker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientQuotas {
    pub entries: Vec<QuotaEntry>,
}

impl ClientQuotas {
    pub fn check(&self, change: &QuotaChange) -> Result<()> {
        if change.entity.user.is_none() && change.entity.client_id.is_none() {
            return Err(CoreError::InvalidRequest(
                "a quota entity names a user or a client id".into(),
            ));
        }
        for (key, value) in &change.ops {
            if !QUOTA_KEYS.contains(&key.as_str()) {
                return Err(CoreError::InvalidRequest(format!(
                    "quota key {key:?} is not supported (only {})",
                    QUOTA_KEYS.join(", ")
                )));
            }
            if value.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(CoreError::InvalidRequest(format!(
                    "quota {key} must be a positive number"
                )));
            }
        }
        let new = !self.entries.iter().any(|e| e.entity == change.entity);
        if new && self.entries.len() >= QUOTA_ENTITIES_MAX {
            return Err(CoreError::LimitExceeded(format!(
                "the broker holds at most {QUOTA_ENTITIES_MAX} quota entities"
            )));
        }
        Ok(())
    }

    pub fn apply(&mut self, change: QuotaChange) {
        let at = match self.entries.iter().position(|e| e.entity == change.entity) {
            Some(at) => at,
            None => {
                self.entries.push(QuotaEntry {
                    entity: change.entity.clone(),
                    values: BTreeMap::new(),
                });
                self.entries.len() - 1
            }
        };
        for (key, value) in change.ops {
            match value {
                Some(v) => {
                    self.entries[at].values.insert(key, v);
                }
                None => {
                    self.entries[at].values.remove(&key);
                }
            }
        }
        if self.entries[at].values.is_empty() {
            self.entries.remove(at);
        }
    }

    /// The quota `key` for a client of `user` (None: not authenticated) with `client_id`.
    pub fn resolve(&self, user: Option<&str>, client_id: &str, key: &str) -> Option<f64> {
        // One pass, nothing allocated: this runs for every produce and fetch, and most brokers
        // have no quota at all.
        self.entries
            .iter()
            .filter_map(|e| {
                let value = e.values.get(key)?;
                Some((precedence(&e.entity, user, client_id)?, *value))
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, value)| value)
    }
}

/// Where `entity` ranks for a client of `user` with `client_id` in Kafka's order (0 first),
/// or `None` when it does not apply to that client.
fn precedence(entity: &QuotaEntity, user: Option<&str>, client_id: &str) -> Option<u8> {
    let is = |part: &Option<String>, name: Option<&str>| part.as_deref() == name;
    let named_user = |u: &Option<String>| u.is_some() && is(u, user);
    let named_client = |c: &Option<String>| is(c, Some(client_id));
    match (&entity.user, &entity.client_id) {
        (Some(u), Some(c)) if named_user(u) && named_client(c) => Some(0),
        (Some(u), Some(None)) if named_user(u) => Some(1),
        (Some(u), None) if named_user(u) => Some(2),
        (Some(None), Some(c)) if named_client(c) => Some(3),
        (Some(None), Some(None)) => Some(4),
        (Some(None), None) => Some(5),
        (None, Some(c)) if named_client(c) => Some(6),
        (None, Some(None)) => Some(7),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(
        quotas: &mut ClientQuotas,
        user: Option<Option<&str>>,
        client: Option<Option<&str>>,
        rate: f64,
    ) {
        let entity = QuotaEntity {
            user: user.map(|u| u.map(str::to_string)),
            client_id: client.map(|c| c.map(str::to_string)),
        };
        let change = QuotaChange {
            entity,
            ops: vec![(PRODUCER_BYTE_RATE.to_string(), Some(rate))],
        };
        quotas.check(&change).unwrap();
        quotas.apply(change);
    }

    #[test]
    fn the_most_specific_entity_wins() {
        let mut q = ClientQuotas::default();
        set(&mut q, None, Some(None), 1.0); // default client id
        set(&mut q, Some(None), None, 2.0); // default user
        set(&mut q, Some(Some("alice")), None, 3.0);
        set(&mut q, Some(Some("alice")), Some(Some("etl")), 4.0);
        let rate = |u, c| q.resolve(u, c, PRODUCER_BYTE_RATE);
        assert_eq!(rate(Some("alice"), "etl"), Some(4.0));
        assert_eq!(rate(Some("alice"), "web"), Some(3.0));
        assert_eq!(rate(Some("bob"), "web"), Some(2.0));
        assert_eq!(
            rate(None, "web"),
            Some(2.0),
            "unauthenticated: the default user"
        );
        assert_eq!(q.resolve(Some("bob"), "web", CONSUMER_BYTE_RATE), None);
    }

    #[test]
    fn removing_the_last_key_removes_the_entity_and_bad_values_are_refused() {
        let mut q = ClientQuotas::default();
        set(&mut q, Some(Some("alice")), None, 3.0);
        let entity = q.entries[0].entity.clone();
        q.apply(QuotaChange {
            entity: entity.clone(),
            ops: vec![(PRODUCER_BYTE_RATE.to_string(), None)],
        });
        assert!(q.entries.is_empty());
        let bad = QuotaChange {
            entity: entity.clone(),
            ops: vec![("connection_creation_rate".to_string(), Some(10.0))],
        };
        assert!(q.check(&bad).is_err());
        let requests = QuotaChange {
            entity,
            ops: vec![(REQUEST_PERCENTAGE.to_string(), Some(10.0))],
        };
        assert!(q.check(&requests).is_ok());
    }
}
