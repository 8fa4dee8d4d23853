//! The broker's side of RabbitMQ's model: opening queues at start, creating and deleting them
//! with their metadata commands, and the routing snapshots publishes read without a lock on the
//! metadata store.
//!
//! Queue data lives in `<data_dir>/queues/<queue id>/` (`log/` segments, `acks`); the id makes
//! a re-created name a new directory, like topics' incarnations.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use uuid::Uuid;

use super::{io, Broker};
use crate::error::{CoreError, Result};
use crate::metadata::command::RoutingChange;
use crate::metadata::state::DEFAULT_VHOST;
use crate::metadata::{MetadataCommand, MetadataStore};
use crate::partition::run_blocking;
use crate::queue::{Queue, QueueDefinition};
use crate::routing::{RoutingError, RoutingTable};

/// Queues per broker, all virtual hosts together: each holds a delivery task, an open log and
/// an ack file.
pub const QUEUES_MAX: usize = 10_000;

pub(crate) type QueueMap = HashMap<String, HashMap<String, Arc<Queue>>>;

impl Broker {
    /// Opens every durable queue; deletes the others (transient and exclusive queues do not
    /// survive a restart) and any directory no live queue owns. Blocking.
    pub(crate) fn open_queues(self: &Arc<Self>, after_crash: bool) -> Result<()> {
        let root = self.config.data_dir.join("queues");
        fs::create_dir_all(&root).map_err(io(&root))?;
        let mut metadata = self.metadata.lock();
        let definitions: Vec<(String, QueueDefinition)> = metadata
            .state()
            .queues
            .iter()
            .flat_map(|(vhost, qs)| qs.values().map(move |q| (vhost.clone(), q.clone())))
            .collect();
        let mut live = Vec::new();
        for (vhost, definition) in definitions {
            if !definition.durable || definition.exclusive_owner.is_some() {
                metadata.submit(MetadataCommand::Routing {
                    vhost: vhost.clone(),
                    change: RoutingChange::RemoveQueue {
                        name: definition.name.clone(),
                    },
                })?;
                tracing::info!(vhost = %vhost, queue = %definition.name, "transient queue removed at start");
                continue;
            }
            let dir = root.join(definition.id.to_string());
            let queue = Queue::open(
                definition.clone(),
                &vhost,
                &dir,
                self.files.clone(),
                after_crash,
                self.epoch,
                Arc::downgrade(self),
                self.queue_scheduler.clone(),
            )?;
            live.push(definition.id.to_string());
            self.queues
                .write()
                .entry(vhost)
                .or_default()
                .insert(definition.name, queue);
        }
        // Transient exchanges do not survive a restart either.
        let transient: Vec<(String, String)> = metadata
            .state()
            .vhosts
            .iter()
            .flat_map(|(vhost, table)| {
                table
                    .exchanges()
                    .filter(|x| !x.durable)
                    .map(move |x| (vhost.clone(), x.name.clone()))
            })
            .collect();
        for (vhost, name) in transient {
            metadata.submit(MetadataCommand::Routing {
                vhost,
                change: RoutingChange::DeleteExchange {
                    name,
                    if_unused: false,
                },
            })?;
        }
        for entry in fs::read_dir(&root).map_err(io(&root))? {
            let entry = entry.map_err(io(&root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) {
                let path = entry.path();
                tracing::info!(dir = %path.display(), "removing data of a deleted queue");
                fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        self.refresh_all_routes(&metadata);
        Ok(())
    }

    /// Rebuilds every vhost's routing snapshot from the metadata state.
    pub(crate) fn refresh_all_routes(&self, metadata: &MetadataStore) {
        let mut routes: HashMap<String, Arc<RoutingTable>> = metadata
            .state()
            .vhosts
            .iter()
            .map(|(name, table)| (name.clone(), Arc::new(table.clone())))
            .collect();
        routes
            .entry(DEFAULT_VHOST.to_string())
            .or_insert_with(|| Arc::new(RoutingTable::new()));
        *self.routes.write() = routes;
    }

    /// The routing snapshot of `vhost`, as of the last routing change.
    pub(crate) fn routes(&self, vhost: &str) -> Result<Arc<RoutingTable>> {
        self.routes
            .read()
            .get(vhost)
            .cloned()
            .ok_or_else(|| CoreError::Routing(RoutingError::VhostNotFound(vhost.to_string())))
    }

    pub(crate) fn find_queue(&self, vhost: &str, name: &str) -> Option<Arc<Queue>> {
        self.queues.read().get(vhost)?.get(name).cloned()
    }

    pub(crate) fn queues_of(&self, vhost: &str) -> Vec<Arc<Queue>> {
        self.queues
            .read()
            .get(vhost)
            .map(|qs| qs.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Checks, journals and applies one routing change, then refreshes the vhost's snapshot.
    pub(crate) async fn submit_routing(
        self: &Arc<Self>,
        vhost: &str,
        change: RoutingChange,
    ) -> Result<()> {
        if self.shutdown.is_cancelled() {
            return Err(CoreError::ShuttingDown);
        }
        let this = self.clone();
        let vhost = vhost.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            metadata.submit(MetadataCommand::Routing {
                vhost: vhost.clone(),
                change,
            })?;
            this.refresh_routes(&metadata, &vhost);
            Ok(())
        })
        .await
    }

    fn refresh_routes(&self, metadata: &MetadataStore, vhost: &str) {
        let table = metadata
            .state()
            .vhosts
            .get(vhost)
            .cloned()
            .unwrap_or_default();
        self.routes
            .write()
            .insert(vhost.to_string(), Arc::new(table));
    }

    /// Journals a new queue and opens it. The caller (under `queue_lifecycle`) has checked that
    /// the name is free.
    pub(crate) async fn create_queue(
        self: &Arc<Self>,
        vhost: &str,
        mut definition: QueueDefinition,
    ) -> Result<Arc<Queue>> {
        if self.shutdown.is_cancelled() {
            return Err(CoreError::ShuttingDown);
        }
        let count: usize = self.queues.read().values().map(HashMap::len).sum();
        if count >= QUEUES_MAX {
            return Err(CoreError::LimitExceeded(format!(
                "QUEUES_MAX ({QUEUES_MAX}) queues"
            )));
        }
        definition.id = Uuid::new_v4();
        let this = self.clone();
        let vhost = vhost.to_string();
        let handle = tokio::runtime::Handle::current();
        run_blocking(move || {
            let _runtime = handle.enter();
            let mut metadata = this.metadata.lock();
            metadata.submit(MetadataCommand::Routing {
                vhost: vhost.clone(),
                change: RoutingChange::DeclareQueue {
                    queue: definition.clone(),
                },
            })?;
            let dir = this
                .config
                .data_dir
                .join("queues")
                .join(definition.id.to_string());
            let queue = Queue::open(
                definition.clone(),
                &vhost,
                &dir,
                this.files.clone(),
                false,
                this.epoch,
                Arc::downgrade(&this),
                this.queue_scheduler.clone(),
            )?;
            this.queues
                .write()
                .entry(vhost.clone())
                .or_default()
                .insert(definition.name.clone(), queue.clone());
            this.refresh_routes(&metadata, &vhost);
            tracing::debug!(vhost = %vhost, queue = %definition.name, durable = definition.durable, "queue declared");
            Ok(queue)
        })
        .await
    }

    /// Deletes queue `name` if it is still incarnation `id`; returns the ready messages it held.
    pub(crate) async fn delete_queue_by_id(
        self: &Arc<Self>,
        vhost: &str,
        name: &str,
        id: Uuid,
    ) -> Result<u64> {
        let _lifecycle = self.queue_lifecycle.lock().await;
        let Some(queue) = self.find_queue(vhost, name) else {
            return Ok(0);
        };
        if queue.definition().id != id {
            return Ok(0);
        }
        self.remove_queue(vhost, queue).await
    }

    /// Journals the removal, drops the queue from the maps and deletes its data. Caller holds
    /// `queue_lifecycle`.
    pub(crate) async fn remove_queue(
        self: &Arc<Self>,
        vhost: &str,
        queue: Arc<Queue>,
    ) -> Result<u64> {
        let ready = queue.ready();
        let this = self.clone();
        let vhost = vhost.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            if metadata.state().queue(&vhost, queue.name()).is_some() {
                metadata.submit(MetadataCommand::Routing {
                    vhost: vhost.clone(),
                    change: RoutingChange::RemoveQueue {
                        name: queue.name().to_string(),
                    },
                })?;
            }
            if let Some(qs) = this.queues.write().get_mut(&vhost) {
                qs.remove(queue.name());
            }
            this.refresh_routes(&metadata, &vhost);
            drop(metadata);
            queue.close(true)?;
            tracing::debug!(vhost = %vhost, queue = %queue.name(), "queue deleted");
            Ok(ready)
        })
        .await
    }

    /// Graceful stop of every queue (syncs and closes their files). Blocking.
    pub(crate) fn close_queues(&self) -> bool {
        self.queue_scheduler.stop();
        let mut failed = false;
        for queue in self.queues.read().values().flat_map(HashMap::values) {
            if let Err(e) = queue.close(false) {
                failed = true;
                tracing::error!(queue = %queue.name(), error = %e, "closing queue failed");
            }
        }
        failed
    }

    /// Creates a virtual host (durably) unless it exists. RabbitMQ's `rabbitmqctl add_vhost`.
    pub async fn create_vhost(self: &Arc<Self>, name: &str) -> Result<()> {
        let this = self.clone();
        let name = name.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            if metadata.state().vhost_exists(&name) {
                return Ok(());
            }
            metadata.submit(MetadataCommand::CreateVhost { name: name.clone() })?;
            this.refresh_routes(&metadata, &name);
            tracing::info!(vhost = %name, "virtual host created");
            Ok(())
        })
        .await
    }

    /// Virtual hosts, `/` included.
    pub fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.routes.read().keys().cloned().collect();
        names.sort();
        names
    }
}
