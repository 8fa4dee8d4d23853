//! The broker's calls for RabbitMQ's vhost limits: set (a metadata command), read (a snapshot
//! published after each change, so a connection opening never waits for the metadata lock),
//! and the connection count `max-connections` is checked against.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Result;
use crate::metadata::MetadataCommand;
use crate::partition::run_blocking;
use crate::vhost_limits::{VhostConnection, VhostLimits};

use super::Broker;

impl Broker {
    /// Every vhost's limits.
    pub fn vhost_limits(&self) -> Arc<BTreeMap<String, VhostLimits>> {
        self.vhost_limits.read().clone()
    }

    /// Sets limit `name` of `vhost` (`None` or negative: no limit).
    pub async fn set_vhost_limit(
        self: &Arc<Self>,
        vhost: &str,
        name: &str,
        value: Option<i64>,
    ) -> Result<()> {
        let this = self.clone();
        let (vhost, name) = (vhost.to_string(), name.to_string());
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            metadata.submit(MetadataCommand::VhostLimit { vhost, name, value })?;
            *this.vhost_limits.write() = Arc::new(metadata.state().vhost_limits.clone());
            Ok(())
        })
        .await
    }

    /// Counts a client connection into `vhost` while the returned guard lives; `Forbidden`
    /// with RabbitMQ's "connection limit (N) is reached" past the vhost's `max-connections`.
    pub fn open_vhost_connection(&self, vhost: &str) -> Result<VhostConnection> {
        let max = self
            .vhost_limits
            .read()
            .get(vhost)
            .and_then(|l| l.max_connections);
        self.vhost_connections.open(vhost, max)
    }

    /// Open client connections into `vhost`, as counted for its limit.
    pub fn vhost_connection_count(&self, vhost: &str) -> u64 {
        self.vhost_connections.count(vhost)
    }
}
