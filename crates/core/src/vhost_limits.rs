//! RabbitMQ's virtual-host limits: `max-connections` and `max-queues` per vhost, set with
//! `PUT /api/vhost-limits/{vhost}/{name}` (and `rabbitmqctl set_vhost_limits`). They are
//! metadata (the journal keeps them); the queue limit is checked where a declare is journaled,
//! the connection limit where a gateway opens a connection into the vhost ([`CountedConnection`]
//! counts it while it lives; users' `max-connections` are counted the same way).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

pub const MAX_CONNECTIONS: &str = "max-connections";
pub const MAX_QUEUES: &str = "max-queues";

/// One vhost's limits; `None`: unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostLimits {
    pub max_connections: Option<u64>,
    pub max_queues: Option<u64>,
}

impl VhostLimits {
    /// Sets `name` (`None` or a negative value, as RabbitMQ takes it: no limit).
    pub fn set(&mut self, name: &str, value: Option<i64>) -> Result<()> {
        let value = value.and_then(|v| u64::try_from(v).ok());
        match name {
            MAX_CONNECTIONS => self.max_connections = value,
            MAX_QUEUES => self.max_queues = value,
            other => {
                return Err(CoreError::InvalidRequest(format!(
                    "unknown vhost limit {other:?} ({MAX_CONNECTIONS}, {MAX_QUEUES})"
                )))
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_queues.is_none()
    }

    /// As RabbitMQ's API shows them: `{"max-connections": 10}`.
    pub fn as_map(&self) -> BTreeMap<&'static str, u64> {
        let mut map = BTreeMap::new();
        if let Some(v) = self.max_connections {
            map.insert(MAX_CONNECTIONS, v);
        }
        if let Some(v) = self.max_queues {
            map.insert(MAX_QUEUES, v);
        }
        map
    }
}

/// Open connections per vhost (or per user), for `max-connections`.
#[derive(Debug, Default)]
pub struct OpenConnections {
    open: Mutex<HashMap<String, u64>>,
}

/// A connection counted against its vhost (or user) while it lives.
#[derive(Debug)]
pub struct CountedConnection {
    counter: Arc<OpenConnections>,
    vhost: String,
}

impl OpenConnections {
    /// Counts a new connection into `vhost` (or of a user), unless that would pass `max`.
    pub fn open(self: &Arc<Self>, vhost: &str, max: Option<u64>) -> Result<CountedConnection> {
        let mut open = self.open.lock();
        let count = open.entry(vhost.to_string()).or_default();
        if let Some(max) = max {
            if *count >= max {
                return Err(CoreError::Forbidden(format!(
                    "connection limit ({max}) is reached"
                )));
            }
        }
        *count += 1;
        Ok(CountedConnection {
            counter: self.clone(),
            vhost: vhost.to_string(),
        })
    }

    /// Open connections into `vhost`.
    pub fn count(&self, vhost: &str) -> u64 {
        self.open.lock().get(vhost).copied().unwrap_or(0)
    }
}

impl Drop for CountedConnection {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock();
        if let Some(count) = open.get_mut(&self.vhost) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.vhost);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_while_they_live() {
        let counter = Arc::new(OpenConnections::default());
        let a = counter.open("/", Some(2)).unwrap();
        let _b = counter.open("/", Some(2)).unwrap();
        assert!(counter.open("/", Some(2)).is_err());
        assert!(counter.open("other", Some(2)).is_ok(), "per vhost");
        drop(a);
        let _c = counter.open("/", Some(2)).unwrap();
        assert_eq!(counter.count("/"), 2);
    }

    #[test]
    fn limits_take_rabbitmq_s_values() {
        let mut limits = VhostLimits::default();
        limits.set(MAX_QUEUES, Some(5)).unwrap();
        limits.set(MAX_CONNECTIONS, Some(-1)).unwrap();
        assert_eq!(limits.as_map(), BTreeMap::from([(MAX_QUEUES, 5)]));
        assert!(limits.set("max-channels", Some(1)).is_err());
        limits.set(MAX_QUEUES, None).unwrap();
        assert!(limits.is_empty());
    }
}
