//! [`Session`]: what every channel of one connection shares, and no I/O — the virtual host, the
//! authenticated user, the owner id exclusive queues and consumers are tied to, the client's
//! capabilities, the one delivery sink all of its consumers feed, and the confirm results
//! coming back from the channels' confirmer tasks. The receiving ends of those two feeds are
//! [`SessionFeeds`], which the connection (or a test) drains.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use porter_core::queue::api::{ConsumerEvent, OwnerId, CONSUMER_BUFFER_MAX};
use porter_core::users::access::{Access, Resource};
use porter_core::vhost::next_owner_id;
use porter_core::{CoreError, VirtualHost};
use tokio::sync::mpsc;

use crate::config::AmqpConfig;
use crate::error::AmqpError;
use crate::reply_to::ReplyRegistry;

/// A publisher confirm decided by a channel's confirmer task.
#[derive(Debug)]
pub struct ConfirmResult {
    pub channel: u16,
    pub delivery_tag: u64,
    pub multiple: bool,
    pub ack: bool,
}

/// Client capabilities from `connection.start-ok` that change what the server may send.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capabilities {
    pub consumer_cancel_notify: bool,
    pub connection_blocked: bool,
}

pub struct Session {
    pub vhost: VirtualHost,
    pub user: String,
    pub owner: OwnerId,
    pub config: Arc<AmqpConfig>,
    pub capabilities: Capabilities,
    /// The sink every consumer of this connection is given; events carry an internal consumer
    /// tag that names the channel (see [`internal_tag`]).
    pub deliveries: mpsc::Sender<ConsumerEvent>,
    pub confirms: mpsc::UnboundedSender<ConfirmResult>,
    /// Publishes waiting for their confirm across the connection's channels; bounded by
    /// `AmqpConfig::confirms_pending_max` (the connection stops reading past it).
    pub confirms_pending: Arc<AtomicUsize>,
    /// Direct reply-to consumers of the whole broker.
    pub replies: Arc<ReplyRegistry>,
    /// How long each method took (`/metrics`); the listener's table once the connection is
    /// open, a private one otherwise (tests).
    pub operations: Arc<porter_telemetry::Operations>,
    /// Whether operations are checked against the user's permissions: the user is one of the
    /// broker's ([`Authenticator::enforces_permissions`](porter_gateway_kit::auth::Authenticator::enforces_permissions)).
    pub permissions_checked: bool,
    /// This connection, counted against its vhost's `max-connections` while it lives.
    pub vhost_slot: Option<porter_core::broker::limits::ClientConnection>,
}

/// The receiving ends of a session's feeds: consumer events (bounded by the core's
/// [`CONSUMER_BUFFER_MAX`], so a slow connection makes its queues wait) and confirm results
/// (unbounded, but at most `confirms_pending_max` are outstanding before reading stops).
pub struct SessionFeeds {
    pub deliveries: mpsc::Receiver<ConsumerEvent>,
    pub confirms: mpsc::UnboundedReceiver<ConfirmResult>,
}

impl Session {
    /// A session for an opened connection, with a fresh owner id.
    pub fn new(
        vhost: VirtualHost,
        user: String,
        config: Arc<AmqpConfig>,
        capabilities: Capabilities,
        replies: Arc<ReplyRegistry>,
    ) -> (Session, SessionFeeds) {
        let (deliveries_tx, deliveries) = mpsc::channel(CONSUMER_BUFFER_MAX);
        let (confirms_tx, confirms) = mpsc::unbounded_channel();
        let session = Session {
            vhost,
            user,
            owner: next_owner_id(),
            config,
            capabilities,
            deliveries: deliveries_tx,
            confirms: confirms_tx,
            confirms_pending: Arc::new(AtomicUsize::new(0)),
            replies,
            operations: Arc::default(),
            permissions_checked: false,
            vhost_slot: None,
        };
        (
            session,
            SessionFeeds {
                deliveries,
                confirms,
            },
        )
    }

    /// The broker's permission check for this connection's user (see
    /// [`porter_core::users::access`]); none when the listener's users are not the broker's.
    pub fn authorize(&self, access: Access, resource: Resource<'_>) -> Result<(), CoreError> {
        if !self.permissions_checked {
            return Ok(());
        }
        self.vhost.authorize(&self.user, access, resource)
    }

    /// A publish's checks: write on the exchange, then the routing key against the user's topic
    /// permission on it.
    pub fn authorize_publish(&self, exchange: &str, routing_key: &str) -> Result<(), CoreError> {
        self.authorize_routing_key(Access::Write, exchange, routing_key)
    }

    /// A binding's checks on its source: read on the exchange, then the binding key against the
    /// user's topic permission on it (the destination's write check is the caller's).
    pub fn authorize_bind_source(
        &self,
        exchange: &str,
        binding_key: &str,
    ) -> Result<(), CoreError> {
        self.authorize_routing_key(Access::Read, exchange, binding_key)
    }

    fn authorize_routing_key(
        &self,
        access: Access,
        exchange: &str,
        key: &str,
    ) -> Result<(), CoreError> {
        if !self.permissions_checked {
            return Ok(());
        }
        self.vhost
            .authorize_routing(&self.user, None, access, exchange, key)
    }

    /// A core failure as this session's clients see it (RabbitMQ names the vhost in texts).
    pub fn error(&self, error: &CoreError) -> AmqpError {
        AmqpError::from_core(error, self.vhost.name())
    }

    pub fn confirms_pending(&self) -> usize {
        self.confirms_pending.load(Ordering::Relaxed)
    }

    /// Too many publishes await their confirm: the connection stops reading frames.
    pub fn confirms_backlogged(&self) -> bool {
        self.confirms_pending() >= self.config.confirms_pending_max
    }
}

/// The consumer tag a queue knows: unique per connection and channel, since AMQP consumer tags
/// are only unique within a channel.
pub fn internal_tag(owner: OwnerId, channel: u16, tag: &str) -> String {
    format!("{owner}:{channel}:{tag}")
}

/// The channel and client tag an internal tag stands for.
pub fn split_internal_tag(internal: &str) -> Option<(u16, &str)> {
    let mut parts = internal.splitn(3, ':');
    let _owner = parts.next()?;
    let channel = parts.next()?.parse().ok()?;
    Some((channel, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_tags_round_trip_even_with_colons() {
        let tag = internal_tag(7, 3, "amq.ctag:x:y");
        assert_eq!(split_internal_tag(&tag), Some((3, "amq.ctag:x:y")));
    }
}
