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
use crate::queue::api::OwnerId;
use crate::queue::runtime::QueueEnv;
use crate::queue::{Queue, QueueDefinition};
use crate::routing::{RoutingError, RoutingTable};

/// Queues per broker, all virtual hosts together. A queue holds no task, timer or file
/// descriptor of its own (the [`crate::queue::QueueScheduler`] and the broker's `FileCache` are
/// shared), only memory: [`QUEUE_IDLE_BYTES`] when idle, so the worst case of this many idle
/// queues is `QUEUES_MAX * QUEUE_IDLE_BYTES` ≈ 4.9 GiB (checked below to stay under 8 GiB). Busy
/// queues add their bounded caches (`QUEUE_CACHE_BYTES_MAX`, the per-queue limits in
/// `queue::limits`). On disk each holds a directory with its first segment (3 files) and an ack
/// file, and the metadata snapshot grows by about 200 bytes per queue.
pub const QUEUES_MAX: usize = 1_000_000;

/// Memory of one idle durable queue with no consumers, rounded up from the `queue_open`
/// example's measurement (RSS growth opening 100k queues: 4,145 bytes each with the commit
/// seam's per-log writer handle): the `Queue`, its log's state and first segment, its ack file's
/// folded state, the broker's maps, the routing snapshot and the metadata state's definition.
pub const QUEUE_IDLE_BYTES: usize = 5 << 10;

/// Threads opening queues at broker start (at most the machine's parallelism).
pub const QUEUE_OPEN_THREADS: usize = 8;

const _: () = assert!(QUEUES_MAX as u64 * QUEUE_IDLE_BYTES as u64 <= 8 << 30);

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
        let mut durable = Vec::with_capacity(definitions.len());
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
            durable.push((vhost, definition));
        }
        // Directory names of live queues: a set, since 100k queues scan it 100k times.
        let live: std::collections::HashSet<String> = durable
            .iter()
            .map(|(_, definition)| definition.id.to_string())
            .collect();
        let opened = self.open_durable_queues(&root, durable, after_crash)?;
        let mut queues = self.queues.write();
        for (vhost, queue) in opened {
            queues.insert(&vhost, queue);
        }
        drop(queues);
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

    /// Opens these queues on up to [`QUEUE_OPEN_THREADS`] threads: opening is a few file
    /// system calls per queue (directory listing, index and ack files), so 100k queues take
    /// seconds on one thread and proportionally less on several. Blocking.
    fn open_durable_queues(
        self: &Arc<Self>,
        root: &std::path::Path,
        durable: Vec<(String, QueueDefinition)>,
        after_crash: bool,
    ) -> Result<Vec<(String, Arc<Queue>)>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, QUEUE_OPEN_THREADS);
        let chunk = durable.len().div_ceil(threads).max(1);
        // Queues with work waiting schedule a turn as they open: the scheduler starts its
        // workers on the caller's runtime, if it has one.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let runtime = &runtime;
        std::thread::scope(|scope| {
            let workers: Vec<_> = durable
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || -> Result<Vec<(String, Arc<Queue>)>> {
                        let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
                        part.iter()
                            .map(|(vhost, definition)| {
                                let dir = root.join(definition.id.to_string());
                                let queue = Queue::open(
                                    definition.clone(),
                                    vhost,
                                    &dir,
                                    after_crash,
                                    self.queue_env(),
                                )?;
                                Ok((vhost.clone(), queue))
                            })
                            .collect()
                    })
                })
                .collect();
            let mut opened = Vec::with_capacity(durable.len());
            for worker in workers {
                match worker.join() {
                    Ok(part) => opened.extend(part?),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok(opened)
        })
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

    /// Queues waiting for a scheduler worker and queues with a deadline: idle queues are in
    /// neither.
    pub fn queue_scheduler_pending(&self) -> (usize, usize) {
        self.queue_scheduler.pending()
    }

    /// Undelivered message bodies all queues keep in memory now, and the most they may (see
    /// [`crate::queue::cache_budget`]).
    pub fn queue_cache_bytes(&self) -> (usize, usize) {
        (self.queue_cache.used(), self.queue_cache.max())
    }

    fn queue_env(self: &Arc<Self>) -> QueueEnv {
        QueueEnv {
            files: self.files.clone(),
            epoch: self.epoch,
            broker: Arc::downgrade(self),
            scheduler: self.queue_scheduler.clone(),
            cache_budget: self.queue_cache.clone(),
        }
    }

    /// This incarnation's epoch, which transient messages carry (see `StoredMessage::epoch`).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Queues open in all virtual hosts.
    pub fn queue_count(&self) -> usize {
        self.queues.read().len()
    }

    pub(crate) fn find_queue(&self, vhost: &str, name: &str) -> Option<Arc<Queue>> {
        self.queues.read().get(vhost, name).cloned()
    }

    /// The exclusive queues `owner` holds in `vhost`, from the owner index: O(its own queues).
    pub(crate) fn queues_owned_by(&self, vhost: &str, owner: OwnerId) -> Vec<Arc<Queue>> {
        self.queues.read().owned_by(vhost, owner)
    }

    /// Queues looked at to find closing connections' exclusive queues, over the broker's life:
    /// the owner's own, not the vhost's (see `QueueMap`).
    pub fn queues_examined_on_release(&self) -> u64 {
        self.queues.read().examined()
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

    /// Publishes `vhost`'s table from the metadata state as its new routing snapshot. The table
    /// is structurally shared (see `routing::source`): this copy is O(1), and a publish still
    /// holding the previous snapshot keeps reading it unchanged.
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
        let count = self.queues.read().len();
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
            // The files first, outside the metadata lock: creating them waits on the disk
            // (directories, inodes), and every declare and bind waits for that lock. A crash
            // before the command is journaled leaves a directory no queue owns, which the next
            // start removes; a refused command removes it now.
            let dir = this
                .config
                .data_dir
                .join("queues")
                .join(definition.id.to_string());
            let queue = Queue::open(
                definition.clone(),
                &vhost,
                &dir,
                false,
                this.queue_env(),
            )?;
            let mut metadata = this.metadata.lock();
            let declared = metadata.submit(MetadataCommand::Routing {
                vhost: vhost.clone(),
                change: RoutingChange::DeclareQueue {
                    queue: definition.clone(),
                },
            });
            if let Err(e) = declared {
                drop(metadata);
                if let Err(close) = queue.close(true) {
                    tracing::warn!(vhost = %vhost, queue = %definition.name, error = %close, "removing a refused queue's files failed");
                }
                return Err(e);
            }
            this.queues.write().insert(&vhost, queue.clone());
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
            this.queues.write().remove(&vhost, queue.name());
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
        for queue in self.queues.read().all() {
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
