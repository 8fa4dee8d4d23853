//! The broker's calls for RabbitMQ's vhost and user limits: set (a metadata command), read (a
//! snapshot published after each change, so a connection opening never waits for the metadata
//! lock), and the connection counts each `max-connections` is checked against.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::CoreError;
use crate::error::Result;
use crate::metadata::MetadataCommand;
use crate::partition::run_blocking;
use crate::vhost_limits::{CountedConnection, VhostLimits};

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

    /// Counts `user`'s client connection into `vhost` while the returned guard lives;
    /// `Forbidden` with RabbitMQ's "connection limit (N) is reached" past the vhost's
    /// `max-connections`, or "user connection limit (N) is reached" past the user's.
    pub fn open_client_connection(&self, user: &str, vhost: &str) -> Result<ClientConnection> {
        let max = self
            .vhost_limits
            .read()
            .get(vhost)
            .and_then(|l| l.max_connections);
        let in_vhost = self.vhost_connections.open(vhost, max)?;
        let of_user = self.open_user_connection(user)?;
        Ok(ClientConnection {
            _in_vhost: Some(in_vhost),
            _of_user: of_user,
        })
    }

    /// Counts `user`'s connection (a protocol without virtual hosts: Kafka) against the
    /// user's `max-connections`; `None` for a user without one, or not in the store.
    pub fn open_user_connection(&self, user: &str) -> Result<Option<CountedConnection>> {
        let Some(max) = self.user_limits(user).and_then(|l| l.max_connections) else {
            return Ok(None);
        };
        self.user_connections
            .open(user, Some(max))
            .map(Some)
            .map_err(|_| CoreError::Forbidden(format!("user connection limit ({max}) is reached")))
    }

    /// Counts an AMQP channel of `user` against its `max-channels` while the guard lives;
    /// `Forbidden` with RabbitMQ's text past it.
    pub fn open_user_channel(&self, user: &str) -> Result<Option<CountedConnection>> {
        let Some(max) = self.user_limits(user).and_then(|l| l.max_channels) else {
            return Ok(None);
        };
        self.user_channels
            .open(user, Some(max))
            .map(Some)
            .map_err(|_| {
                CoreError::Forbidden(format!(
                    "number of channels opened for user '{user}' has reached the maximum allowed \
                 user limit of ({max})"
                ))
            })
    }

    /// Open client connections of `user`, as counted for its limit (users with a limit only).
    pub fn user_connection_count(&self, user: &str) -> u64 {
        self.user_connections.count(user)
    }

    /// Open client connections into `vhost`, as counted for its limit.
    pub fn vhost_connection_count(&self, vhost: &str) -> u64 {
        self.vhost_connections.count(vhost)
    }
}

/// A client connection counted against its vhost's and its user's `max-connections` while it
/// lives.
#[derive(Debug)]
pub struct ClientConnection {
    _in_vhost: Option<CountedConnection>,
    _of_user: Option<CountedConnection>,
}
