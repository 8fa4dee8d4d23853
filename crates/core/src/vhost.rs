//! [`VirtualHost`]: what the AMQP gateway (and later MQTT and STOMP) calls for RabbitMQ's model:
//! exchanges, queues, bindings, publishing. A cheap handle (the broker plus a vhost name); the
//! state lives in the [`Broker`]: routing tables in the metadata state, running queues in its
//! queue map.
//!
//! Every topology change is a metadata command (checked, journaled, applied), so it is whole or
//! absent after a crash. Publishing is [`crate::publish`]'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::metadata::command::RoutingChange;
use crate::queue::api::{DeclaredQueue, OwnerId};
use crate::queue::{Queue, QueueArguments, QueueDefinition};
use crate::routing::{Binding, Destination, Exchange, RoutingError, DEFAULT_EXCHANGE};
use crate::users::access::{Access, Resource};
use crate::Broker;

/// Prefix of server-named queues, as RabbitMQ names them.
pub const SERVER_NAMED_PREFIX: &str = "amq.gen-";

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a connection that may own exclusive queues.
pub fn next_owner_id() -> OwnerId {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

#[derive(Clone)]
pub struct VirtualHost {
    pub(crate) broker: Arc<Broker>,
    pub(crate) name: String,
}

pub use crate::publish::{DurableWait, Publish, PublishOutcome};

impl VirtualHost {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broker this virtual host is part of.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The authorisation decision every gateway asks before an operation (see
    /// [`crate::users::access`]): `Forbidden` with RabbitMQ's text unless `user`'s permission
    /// in this virtual host grants `access` to `resource`.
    pub fn authorize(&self, user: &str, access: Access, resource: Resource<'_>) -> Result<()> {
        if self.broker.users.allows(user, &self.name, access, resource) {
            return Ok(());
        }
        Err(CoreError::Forbidden(format!(
            "access to {resource} in vhost '{}' refused for user '{user}'",
            self.name
        )))
    }

    /// Counts `user`'s connection into this virtual host while the guard lives (see
    /// [`crate::Broker::open_client_connection`]).
    pub fn open_client_connection(
        &self,
        user: &str,
    ) -> Result<crate::broker::limits::ClientConnection> {
        self.broker.open_client_connection(user, &self.name)
    }

    /// A publish's (`Write`) or a binding source's (`Read`) checks: the exchange permission, then
    /// the routing or binding key against the user's topic permission on the exchange.
    /// `client_id` is an MQTT client's, for `{client_id}` in topic permissions (other protocols
    /// have none: such a pattern grants them nothing).
    pub fn authorize_routing(
        &self,
        user: &str,
        client_id: Option<&str>,
        access: Access,
        exchange: &str,
        key: &str,
    ) -> Result<()> {
        self.authorize(user, access, Resource::Exchange(exchange))?;
        self.authorize_topic(user, client_id, exchange, access, key)
    }

    /// The topic check after [`authorize`](Self::authorize) for a publish (`Write`, the routing
    /// key) or a binding (`Read`, the binding key) on exchange `exchange` (see
    /// [`crate::users::topic_access`]): only topic exchanges are checked, and only when the user
    /// has a topic permission on that exchange. RabbitMQ's text on refusal.
    fn authorize_topic(
        &self,
        user: &str,
        client_id: Option<&str>,
        exchange: &str,
        access: Access,
        routing_key: &str,
    ) -> Result<()> {
        let topic = crate::users::topic_access::TopicUse {
            exchange,
            access,
            routing_key,
            client_id,
        };
        let allowed = self.broker.users.topic_allows(user, &self.name, &topic);
        if allowed != Some(false) {
            return Ok(());
        }
        // Looked up only on a refusal: other kinds of exchange are not subject to the check.
        let is_topic = self
            .broker
            .routes(&self.name)?
            .exchange(exchange)
            .is_some_and(|e| e.kind == crate::routing::ExchangeKind::Topic);
        if !is_topic {
            return Ok(());
        }
        Err(CoreError::Forbidden(format!(
            "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{}' refused for user '{user}'",
            self.name
        )))
    }

    /// `exchange.declare`. With `passive`, only checks it exists (404 otherwise). A re-declare
    /// must be equivalent (406); an equivalent one changes nothing and writes nothing.
    pub async fn declare_exchange(&self, exchange: Exchange, passive: bool) -> Result<()> {
        let routes = self.broker.routes(&self.name)?;
        if passive {
            routes.check_exchange(&exchange.name)?;
            return Ok(());
        }
        if let Some(existing) = routes.exchange(&exchange.name) {
            existing
                .check_equivalent(&exchange)
                .map_err(RoutingError::from)?;
            return Ok(());
        }
        self.broker
            .submit_routing(&self.name, RoutingChange::DeclareExchange { exchange })
            .await
    }

    /// `exchange.delete`. Deleting a missing exchange succeeds, as in RabbitMQ 3.x.
    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        let routes = self.broker.routes(&self.name)?;
        if name != DEFAULT_EXCHANGE && routes.exchange(name).is_none() {
            return Ok(());
        }
        self.broker
            .submit_routing(
                &self.name,
                RoutingChange::DeleteExchange {
                    name: name.to_string(),
                    if_unused,
                },
            )
            .await
    }

    /// `queue.bind` / `exchange.bind` (the destination says which). Idempotent.
    pub async fn bind(&self, binding: Binding, owner: OwnerId) -> Result<()> {
        self.check_destination(&binding.destination, owner)?;
        let routes = self.broker.routes(&self.name)?;
        if routes.has_binding(&binding) {
            return Ok(());
        }
        self.broker
            .submit_routing(&self.name, RoutingChange::Bind { binding })
            .await
    }

    /// `queue.unbind` / `exchange.unbind`. Unbinding a missing binding (or from a missing queue)
    /// succeeds, as in RabbitMQ; the default exchange is 403.
    pub async fn unbind(&self, binding: Binding, owner: OwnerId) -> Result<()> {
        if binding.source == DEFAULT_EXCHANGE {
            return Err(CoreError::Routing(RoutingError::AccessRefused {
                name: String::new(),
                reason: "the default exchange cannot be unbound",
            }));
        }
        if let Destination::Queue(name) = &binding.destination {
            if let Some(queue) = self.broker.find_queue(&self.name, name) {
                self.check_owner(&queue, owner)?;
            }
        }
        let routes = self.broker.routes(&self.name)?;
        if !routes.has_binding(&binding) {
            return Ok(());
        }
        self.broker
            .submit_routing(&self.name, RoutingChange::Unbind { binding })
            .await
    }

    /// A queue destination must exist (404) and not be another connection's exclusive queue
    /// (405).
    fn check_destination(&self, destination: &Destination, owner: OwnerId) -> Result<()> {
        if let Destination::Queue(name) = destination {
            self.queue(name, owner)?;
        }
        Ok(())
    }

    /// `queue.declare`. An empty name asks for a server-named queue (`amq.gen-…`). With
    /// `passive`, only looks it up (404). Exclusive queues of another connection are 405.
    pub async fn declare_queue(
        &self,
        mut definition: QueueDefinition,
        passive: bool,
        owner: OwnerId,
    ) -> Result<DeclaredQueue> {
        if passive {
            let queue = self.queue(&definition.name, owner)?;
            return Ok(declared(&queue));
        }
        if definition.name.is_empty() {
            definition.name = server_name();
        } else if definition.name.starts_with("amq.") {
            return Err(CoreError::Forbidden(format!(
                "queue name '{}' contains reserved prefix 'amq.*'",
                definition.name
            )));
        }
        // As RabbitMQ: an exclusive queue is never durable, whatever the declare said.
        definition.durable &= definition.exclusive_owner.is_none();
        let _lifecycle = self.broker.queue_lifecycle.lock().await;
        if let Some(existing) = self.broker.find_queue(&self.name, &definition.name) {
            // RabbitMQ's order: exclusivity (405) before the properties and arguments (406).
            if existing.definition().exclusive_owner != definition.exclusive_owner {
                return Err(self.locked(&existing));
            }
            existing
                .definition()
                .check_equivalent(&definition)
                .map_err(RoutingError::from)?;
            existing.touch();
            return Ok(declared(&existing));
        }
        // Arguments are checked when a queue is created; a re-declare is only compared, as in
        // RabbitMQ (an equivalent one repeats arguments that were checked then).
        // RabbitMQ accepts a DLX that does not exist yet; only the name must be valid.
        QueueArguments::parse(&definition.arguments)
            .map_err(|e| CoreError::Precondition(e.for_queue(&definition.name, &self.name)))?;
        let not_acted_on = QueueArguments::not_acted_on(&definition.arguments);
        let queue = self.broker.create_queue(&self.name, definition).await?;
        if !not_acted_on.is_empty() {
            tracing::warn!(
                vhost = %self.name,
                queue = %queue.name(),
                arguments = %not_acted_on.join(", "),
                "queue declared with arguments Porter does not act on yet: it is served as a classic \
                 queue without them (docs/amqp.md, where Porter differs)"
            );
        }
        Ok(declared(&queue))
    }

    /// `queue.delete`; returns the ready messages it held. A missing queue is 0, not 404, as in
    /// RabbitMQ 3.x.
    pub async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        owner: OwnerId,
    ) -> Result<u64> {
        let _lifecycle = self.broker.queue_lifecycle.lock().await;
        let Some(queue) = self.broker.find_queue(&self.name, name) else {
            return Ok(0);
        };
        self.check_owner(&queue, owner)?;
        if if_unused && queue.consumer_count() > 0 {
            return Err(CoreError::Precondition(format!(
                "queue '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        if if_empty && queue.ready() > 0 {
            return Err(CoreError::Precondition(format!(
                "queue '{name}' in vhost '{}' is not empty",
                self.name
            )));
        }
        self.broker.remove_queue(&self.name, queue).await
    }

    /// `queue.purge`: drops every ready message; returns how many.
    pub async fn purge_queue(&self, name: &str, owner: OwnerId) -> Result<u64> {
        self.queue(name, owner)?.purge()
    }

    /// A queue to consume from or `basic.get`: 404 if missing, 405 if another connection's
    /// exclusive queue.
    pub fn queue(&self, name: &str, owner: OwnerId) -> Result<Arc<Queue>> {
        let queue = self
            .broker
            .find_queue(&self.name, name)
            .ok_or_else(|| CoreError::Routing(RoutingError::QueueNotFound(name.to_string())))?;
        self.check_owner(&queue, owner)?;
        Ok(queue)
    }

    /// RabbitMQ's `check_exclusive_access/3`, lax: only another connection's exclusive queue
    /// is refused.
    fn check_owner(&self, queue: &Queue, owner: OwnerId) -> Result<()> {
        match queue.definition().exclusive_owner {
            Some(holder) if holder != owner => Err(self.locked(queue)),
            _ => Ok(()),
        }
    }

    /// 405 RESOURCE_LOCKED, in RabbitMQ's words (which also cover a re-declare whose exclusive
    /// flag differs).
    fn locked(&self, queue: &Queue) -> CoreError {
        CoreError::Locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
             originally declared on another connection or the exclusive property value does \
             not match that of the original declaration.",
            queue.name(),
            self.name
        ))
    }

    /// The bindings delivering to queue `name` (MQTT restores a session's subscriptions from
    /// them).
    pub fn bindings_to_queue(&self, name: &str) -> Result<Vec<Binding>> {
        let routes = self.broker.routes(&self.name)?;
        let destination = Destination::Queue(name.to_string());
        Ok(routes.bindings_to(&destination).cloned().collect())
    }

    /// A queue if it exists and `owner` may use it; `None` if it does not exist.
    pub fn find_queue(&self, name: &str, owner: OwnerId) -> Result<Option<Arc<Queue>>> {
        match self.broker.find_queue(&self.name, name) {
            Some(queue) => {
                self.check_owner(&queue, owner)?;
                Ok(Some(queue))
            }
            None => Ok(None),
        }
    }

    /// A connection closed: its exclusive queues are deleted.
    pub async fn release_owner(&self, owner: OwnerId) {
        for queue in self.broker.queues_owned_by(&self.name, owner) {
            let (name, id) = (queue.name().to_string(), queue.definition().id);
            if let Err(e) = self.broker.delete_queue_by_id(&self.name, &name, id).await {
                tracing::warn!(vhost = %self.name, queue = %name, error = %e, "deleting an exclusive queue failed");
            }
        }
    }
}

fn declared(queue: &Queue) -> DeclaredQueue {
    DeclaredQueue {
        name: queue.name().to_string(),
        message_count: queue.ready(),
        consumer_count: queue.consumer_count(),
    }
}

/// `amq.gen-` and 22 URL-safe characters from a random UUID, like RabbitMQ's names.
fn server_name() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = uuid::Uuid::new_v4().as_u128();
    let suffix: String = (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect();
    format!("{SERVER_NAMED_PREFIX}{suffix}")
}

impl Broker {
    /// The virtual host `name`: `VhostNotFound` (AMQP 530 NOT_ALLOWED on connection.open) if it
    /// was never created. `/` always exists.
    pub fn vhost(self: &Arc<Self>, name: &str) -> Result<VirtualHost> {
        self.routes(name)?;
        Ok(VirtualHost {
            broker: self.clone(),
            name: name.to_string(),
        })
    }
}
