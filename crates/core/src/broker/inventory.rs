//! Read-only snapshots of the AMQP model for the management API: queues with their counts,
//! and each virtual host's routing table (exchanges and bindings).
//!
//! A listing never holds a broker lock while it is serialised or while the queues' counts are
//! read: the queue map's read lock is held only to clone the `Arc`s, the routing table is an
//! immutable snapshot. So listing 100k queues does not stall a publish or a declare.

use std::sync::Arc;

use crate::error::Result;
use crate::queue::{Queue, QueueDefinition};
use crate::routing::RoutingTable;

use super::Broker;

/// One queue as the management API shows it.
#[derive(Clone, Debug)]
pub struct QueueSnapshot {
    pub vhost: String,
    pub definition: QueueDefinition,
    /// Messages ready for delivery.
    pub ready: u64,
    /// Messages delivered and not yet acknowledged.
    pub unacked: u64,
    pub consumers: u32,
    /// Taken in, delivered, acknowledged so far: rates are differences of two snapshots.
    pub counts: crate::queue::state::MessageCounts,
}

impl QueueSnapshot {
    fn of(vhost: &str, queue: &Queue) -> QueueSnapshot {
        QueueSnapshot {
            vhost: vhost.to_string(),
            definition: queue.definition().clone(),
            ready: queue.ready(),
            unacked: queue.unacked(),
            consumers: queue.consumer_count(),
            counts: queue.message_counts(),
        }
    }

    /// Ready plus unacknowledged, RabbitMQ's `messages`.
    pub fn messages(&self) -> u64 {
        self.ready + self.unacked
    }
}

impl Broker {
    /// Every queue of `vhost` (or of every vhost), ordered by vhost then name.
    pub fn queue_snapshots(&self, vhost: Option<&str>) -> Vec<QueueSnapshot> {
        let queues: Vec<(String, Arc<Queue>)> = self.queues.read().with_vhosts(vhost);
        let mut snapshots: Vec<QueueSnapshot> = queues
            .iter()
            .map(|(vhost, queue)| QueueSnapshot::of(vhost, queue))
            .collect();
        snapshots.sort_by(|a, b| {
            (a.vhost.as_str(), a.definition.name.as_str())
                .cmp(&(b.vhost.as_str(), b.definition.name.as_str()))
        });
        snapshots
    }

    /// Every running queue with its vhost, by vhost then name (for per-queue reads that need the
    /// queue itself, such as its oldest message).
    pub fn queue_handles(&self) -> Vec<(String, Arc<Queue>)> {
        let mut queues: Vec<(String, Arc<Queue>)> = self.queues.read().with_vhosts(None);
        queues.sort_by(|a, b| (a.0.as_str(), a.1.name()).cmp(&(b.0.as_str(), b.1.name())));
        queues
    }

    /// Every consumer of every queue: (vhost, queue, consumer), by vhost, queue and tag.
    pub fn queue_consumers(&self) -> Vec<(String, String, crate::queue::runtime::QueueConsumer)> {
        let queues: Vec<(String, Arc<Queue>)> = self.queues.read().with_vhosts(None);
        let mut all = Vec::new();
        for (vhost, queue) in queues {
            for consumer in queue.consumer_list() {
                all.push((vhost.clone(), queue.name().to_string(), consumer));
            }
        }
        all.sort_by(|a, b| (&a.0, &a.1, &a.2.tag).cmp(&(&b.0, &b.1, &b.2.tag)));
        all
    }

    /// Queue `name` of `vhost`, if it exists.
    pub fn queue_snapshot(&self, vhost: &str, name: &str) -> Option<QueueSnapshot> {
        self.find_queue(vhost, name)
            .map(|queue| QueueSnapshot::of(vhost, &queue))
    }

    /// `vhost`'s routing table (exchanges and bindings), an immutable snapshot:
    /// `VhostNotFound` if the vhost does not exist.
    pub fn routing_table(&self, vhost: &str) -> Result<Arc<RoutingTable>> {
        self.routes(vhost)
    }
}
