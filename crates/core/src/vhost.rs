//! [`VirtualHost`]: what the AMQP gateway (and later MQTT and STOMP) calls for RabbitMQ's model:
//! exchanges, queues, bindings, publishing. A cheap handle (the broker plus a vhost name); the
//! state lives in the [`Broker`]: routing tables in the metadata state, running queues in its
//! queue map.
//!
//! Every topology change is a metadata command (checked, journaled, applied), so it is whole or
//! absent after a crash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Result;
use crate::message::Message;
use crate::queue::api::{DeclaredQueue, OwnerId};
use crate::queue::{Queue, QueueDefinition};
use crate::routing::{Binding, Exchange};
use crate::Broker;

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

/// What became of a published message.
pub struct PublishOutcome {
    /// Whether some queue took it. `false` with `mandatory` is a `basic.return` (312 NO_ROUTE).
    pub routed: bool,
    /// A queue at its `x-max-length` with `x-overflow = reject-publish(-dlx)` refused it: a
    /// publisher-confirm nack.
    pub rejected: bool,
    /// Resolves when the message is as durable as it will get (persistent on durable queues:
    /// fsynced). Publisher confirms ack after it.
    pub durable: DurableWait,
}

/// The fsyncs a publish must wait for before it is confirmed.
#[derive(Default)]
pub struct DurableWait {
    pub(crate) waits: Vec<(Arc<Queue>, porter_storage::Offset)>,
}

impl DurableWait {
    pub async fn wait(self) -> Result<()> {
        for (queue, end) in self.waits {
            queue.wait_durable(end).await?;
        }
        Ok(())
    }
}

impl VirtualHost {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `exchange.declare`. With `passive`, only checks it exists (404 otherwise). A re-declare
    /// must be equivalent (406).
    pub async fn declare_exchange(&self, exchange: Exchange, passive: bool) -> Result<()> {
        let _ = (exchange, passive);
        todo!()
    }

    /// `exchange.delete`. Deleting a missing exchange succeeds, as in RabbitMQ 3.x.
    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        let _ = (name, if_unused);
        todo!()
    }

    /// `queue.bind` / `exchange.bind` (the destination says which). Idempotent.
    pub async fn bind(&self, binding: Binding, owner: OwnerId) -> Result<()> {
        let _ = (binding, owner);
        todo!()
    }

    /// `queue.unbind` / `exchange.unbind`. Unbinding a missing binding succeeds.
    pub async fn unbind(&self, binding: Binding, owner: OwnerId) -> Result<()> {
        let _ = (binding, owner);
        todo!()
    }

    /// `queue.declare`. An empty name asks for a server-named queue (`amq.gen-…`). With
    /// `passive`, only looks it up (404). Exclusive queues of another connection are 405.
    pub async fn declare_queue(
        &self,
        definition: QueueDefinition,
        passive: bool,
        owner: OwnerId,
    ) -> Result<DeclaredQueue> {
        let _ = (definition, passive, owner);
        todo!()
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
        let _ = (name, if_unused, if_empty, owner);
        todo!()
    }

    /// `queue.purge`: drops every ready message; returns how many.
    pub async fn purge_queue(&self, name: &str, owner: OwnerId) -> Result<u64> {
        let _ = (name, owner);
        todo!()
    }

    /// A queue to consume from or `basic.get`: 404 if missing, 405 if another connection's
    /// exclusive queue.
    pub fn queue(&self, name: &str, owner: OwnerId) -> Result<Arc<Queue>> {
        let _ = (name, owner);
        todo!()
    }

    /// `basic.publish`: routes through `exchange` (404 if missing, 403 if internal), appends to
    /// every destination queue and dead-letters what overflow pushes out. Returns once appended;
    /// `outcome.durable.wait()` resolves when it is durable.
    pub async fn publish(&self, exchange: &str, message: Message) -> Result<PublishOutcome> {
        let _ = (exchange, message);
        todo!()
    }

    /// A connection closed: its exclusive queues are deleted.
    pub async fn release_owner(&self, owner: OwnerId) {
        let _ = owner;
        todo!()
    }
}

impl Broker {
    /// The virtual host `name`: `VhostNotFound` (AMQP 530 NOT_ALLOWED on connection.open) if it
    /// was never created. `/` always exists.
    pub fn vhost(self: &Arc<Self>, name: &str) -> Result<VirtualHost> {
        let _ = name;
        todo!()
    }
}
