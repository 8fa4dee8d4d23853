//! The [`Broker`]: what gateways call. It owns the metadata store, the open partitions, the
//! writer threads ([`crate::commit`]) and the background work (retention, interval flushes,
//! compaction: these run on tokio's blocking pool, not the reactor), and it knows the
//! data-directory layout:
//!
//! ```text
//! <data_dir>/
//!   .lock                   held (flock) while a broker runs on this directory
//!   .clean-shutdown         present only between a graceful stop and the next start
//!   metadata/               the metadata journal and snapshot
//!   logs/<topic>/topic-id   which incarnation of the name this directory belongs to
//!   logs/<topic>/<n>/       partition n's segments (owned by porter-storage)
//!   internal/consumer-offsets/  committed offsets and group state (an internal log)
//!   queues/<queue id>/      a queue's log (segments) and its ack file (see [`queues`])
//!   trash/                  deleted topics, removed in the background and at start
//! ```
//!
//! Changes to existing topics (configs, partition growth, DeleteRecords) live in `broker/admin.rs`.

mod acls;
mod admin;
mod data_dir;
pub mod dynamic_config;
mod inventory;
pub mod limits;
mod queue_map;
mod queues;
pub mod tokens;
pub mod users;

pub use queues::{QUEUES_MAX, QUEUE_IDLE_BYTES, QUEUE_OPEN_THREADS};

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use porter_storage::{FileCache, Log};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::commit::Committer;
use crate::config::BrokerConfig;
use crate::error::{CoreError, Result};
use crate::group::GroupCoordinator;
use crate::metadata::{MetadataCommand, MetadataStore};
use crate::partition::{now_ms, run_blocking, Partition};
use crate::topic::{validate_topic_name, Topic, TopicConfig, TOPIC_PARTITIONS_MAX};

pub use admin::DELETE_RECORDS_TO_HIGH_WATERMARK;
pub use inventory::QueueSnapshot;

const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";
const TOPIC_ID_FILE: &str = "topic-id";
/// How often `interval`-mode logs are checked for a due flush.
const FLUSH_TICK_MS: u64 = 50;
/// Producer ids reserved per metadata command.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// How often group sessions and rebalance deadlines are checked.
const GROUP_TICK_MS: u64 = 100;

/// A topic together with its open partitions.
pub struct TopicHandle {
    pub topic: Topic,
    pub partitions: Vec<Arc<Partition>>,
}

/// Replicas of every partition: one broker. The cluster changes this.
pub const REPLICAS: u32 = 1;

impl TopicHandle {
    /// Whether a write that waits for every in-sync replica (Kafka's acks=all) may be taken:
    /// the topic's `min.insync.replicas` must not exceed the replicas there are.
    pub fn check_min_insync(&self) -> Result<()> {
        let required = self.topic.config.min_insync_replicas();
        if required > REPLICAS {
            return Err(CoreError::NotEnoughReplicas {
                topic: self.topic.name.clone(),
                required,
                in_sync: REPLICAS,
            });
        }
        Ok(())
    }
}

/// This broker's node id: one node is node 0. The cluster makes it a setting.
pub const NODE_ID: i32 = 0;

pub struct Broker {
    config: BrokerConfig,
    /// The topic defaults in force: `config.log_defaults` with the dynamic broker configs
    /// applied ([`dynamic_config`]).
    log_defaults: RwLock<porter_storage::LogConfig>,
    /// This broker's scope of dynamic configs: its node id.
    node_scope: String,
    /// Serialises metadata changes together with the opening/closing of the logs they imply,
    /// so the topics map and the metadata state never disagree.
    metadata: Mutex<MetadataStore>,
    topics: RwLock<HashMap<String, Arc<TopicHandle>>>,
    files: Arc<FileCache>,
    /// The writer threads every log's writes and commits go through.
    pub(crate) committer: Arc<Committer>,
    groups: GroupCoordinator,
    /// Reserved but unused producer ids: [next, end).
    producer_ids: Mutex<(i64, i64)>,
    /// Running queues by vhost, then name.
    queues: RwLock<queue_map::QueueMap>,
    /// Each vhost's routing table as of its last change: publishes route on a snapshot instead
    /// of locking the metadata store.
    routes: RwLock<HashMap<String, Arc<crate::routing::RoutingTable>>>,
    /// The workers and timers every queue's deliveries, expiries and maintenance run on.
    pub(crate) queue_scheduler: Arc<crate::queue::QueueScheduler>,
    /// Undelivered bodies all queues keep in memory (`BrokerConfig::queue_cache_bytes_max`).
    pub(crate) queue_cache: Arc<crate::queue::cache_budget::CacheBudget>,
    /// Serialises queue declare/delete, which journal and then open or remove files.
    pub(crate) queue_lifecycle: tokio::sync::Mutex<()>,
    /// This incarnation: random per start. Transient messages carry it so that after a restart
    /// they are recognised and dropped.
    epoch: u64,
    /// Raised memory and disk alarms, updated by a sampler task; gateways watch it.
    alarms: tokio::sync::watch::Sender<crate::alarm::AlarmState>,
    /// Delayed messages of every protocol, waiting in the timer store.
    delayed: Arc<crate::delayed::DelayedDelivery>,
    /// The users as of their last change, and recent successful password logins ([`users`]).
    pub(crate) users: users::UserCache,
    /// The Kafka ACLs as of their last change (authorisation reads this, not the metadata lock).
    acls: parking_lot::RwLock<Arc<crate::acl::Acls>>,
    /// The Kafka client quotas as of their last change.
    quotas: parking_lot::RwLock<Arc<crate::quota::ClientQuotas>>,
    /// RabbitMQ's vhost limits as of their last change, and the connections they count.
    vhost_limits: parking_lot::RwLock<
        Arc<std::collections::BTreeMap<String, crate::vhost_limits::VhostLimits>>,
    >,
    vhost_connections: Arc<crate::vhost_limits::OpenConnections>,
    /// Open client connections per user, for users' `max-connections`.
    user_connections: Arc<crate::vhost_limits::OpenConnections>,
    /// Open AMQP channels per user, for users' `max-channels`.
    user_channels: Arc<crate::vhost_limits::OpenConnections>,
    /// Kept open so the flock is held for the broker's lifetime.
    _lock: File,
    shutdown: CancellationToken,
}

impl Broker {
    /// Opens the data directory: takes the lock, replays metadata, removes leftovers of deleted
    /// topics and opens every partition (scanning tails when the last stop was not clean).
    /// Blocks on file I/O; call it before serving.
    pub fn open(mut config: BrokerConfig) -> Result<Arc<Broker>> {
        let taken = data_dir::take(&config.data_dir)?;
        // Absolute from here on, so what gateways report (Kafka's DescribeLogDirs) needs no
        // file system call of theirs.
        config.data_dir = taken.path;
        let data_dir = config.data_dir.clone();
        let lock = taken.lock;

        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        // A new directory has no marker and nothing to scan; treating it as after a crash costs
        // nothing, and keeps the marker's rule simple: present only after a graceful stop.
        let after_crash = !marker.exists();
        if taken.is_new {
            tracing::info!(data_dir = %data_dir.display(), "new data directory");
        } else if after_crash {
            tracing::info!(data_dir = %data_dir.display(), "no clean-shutdown marker: recovering log tails");
        }
        let metadata = MetadataStore::open(&data_dir.join("metadata"))?;
        let user_snapshot = metadata.state().users.clone();
        let acl_snapshot = Arc::new(metadata.state().acls.clone());
        let quota_snapshot = Arc::new(metadata.state().quotas.clone());
        let limits_snapshot = Arc::new(metadata.state().vhost_limits.clone());
        let files = FileCache::new(config.open_files_max);
        let committer = Committer::start(&config.commit)?;

        empty_dir(&data_dir.join("trash"))?;
        remove_stale_topic_dirs(&data_dir.join("logs"), &metadata)?;

        let groups = GroupCoordinator::open(
            &data_dir.join("internal").join("consumer-offsets"),
            files.clone(),
            after_crash,
            config.groups.clone(),
            &committer,
        )?;
        let node_scope = NODE_ID.to_string();
        let log_defaults = dynamic_config::effective_log_defaults(
            &config.log_defaults,
            &metadata.state().broker_configs,
            &node_scope,
        );
        let mut topics = HashMap::new();
        for topic in metadata.state().topics.values() {
            let handle = open_topic(
                &config,
                &log_defaults,
                &files,
                &committer,
                topic,
                after_crash,
            )?;
            topics.insert(topic.name.clone(), Arc::new(handle));
        }
        // From here on, new writes may happen: a crash must be treated as one again.
        if !after_crash {
            fs::remove_file(&marker).map_err(io(&marker))?;
            sync_dir(&data_dir)?;
        }
        let queue_cache = Arc::new(crate::queue::cache_budget::CacheBudget::new(
            config.queue_cache_bytes_max,
        ));
        let delayed = Arc::new(crate::delayed::DelayedDelivery::open(&config.data_dir)?);
        let broker = Arc::new(Broker {
            config,
            log_defaults: RwLock::new(log_defaults),
            node_scope,
            metadata: Mutex::new(metadata),
            topics: RwLock::new(topics),
            files,
            committer,
            groups,
            producer_ids: Mutex::new((0, 0)),
            queues: RwLock::default(),
            routes: RwLock::new(HashMap::new()),
            queue_scheduler: crate::queue::QueueScheduler::new(),
            queue_cache,
            queue_lifecycle: tokio::sync::Mutex::new(()),
            epoch: Uuid::new_v4().as_u64_pair().0,
            alarms: tokio::sync::watch::Sender::new(Default::default()),
            delayed,
            users: users::UserCache::new(user_snapshot),
            acls: parking_lot::RwLock::new(acl_snapshot),
            quotas: parking_lot::RwLock::new(quota_snapshot),
            vhost_limits: parking_lot::RwLock::new(limits_snapshot),
            vhost_connections: Default::default(),
            user_connections: Default::default(),
            user_channels: Default::default(),
            _lock: lock,
            shutdown: CancellationToken::new(),
        });
        broker.open_queues(after_crash)?;
        tracing::info!(
            topics = broker.topics.read().len(),
            queues = broker.queues.read().len(),
            "broker opened"
        );
        Ok(broker)
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Delayed delivery (RocketMQ delay messages, AMQP delayed-message exchanges).
    pub fn delayed(&self) -> &Arc<crate::delayed::DelayedDelivery> {
        &self.delayed
    }

    /// The one cache of open files every log and ack file goes through.
    pub(crate) fn files(&self) -> &Arc<FileCache> {
        &self.files
    }

    /// How long the commit seam's fsyncs took so far (`/metrics`).
    pub fn fsync_latency(&self) -> porter_telemetry::Snapshot {
        self.committer.fsync_latency()
    }

    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    /// Memory and disk alarms: the current state and its changes. Publishing connections are
    /// blocked while any is raised.
    pub fn alarms(&self) -> tokio::sync::watch::Receiver<crate::alarm::AlarmState> {
        self.alarms.subscribe()
    }

    /// Starts retention and interval-flush timers; they stop at [`Broker::shutdown`].
    pub fn start_background_tasks(self: &Arc<Self>) {
        self.delayed.start_firing(self);
        let broker = self.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(crate::alarm::ALARM_SAMPLE_INTERVAL_MS);
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = broker.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let limits = broker.config.alarms.clone();
                let dir = broker.config.data_dir.clone();
                let Ok(state) =
                    tokio::task::spawn_blocking(move || crate::alarm::evaluate(&limits, &dir))
                        .await
                else {
                    continue;
                };
                let previous = *broker.alarms.borrow();
                if state != previous {
                    if state.any() {
                        tracing::warn!(memory = state.memory, disk = state.disk, limits = ?broker.config.alarms, "resource alarm raised: publishers blocked");
                    } else {
                        tracing::info!("resource alarms cleared: publishers unblocked");
                    }
                    broker.alarms.send_replace(state);
                }
            }
        });
        let broker = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(FLUSH_TICK_MS));
            loop {
                tokio::select! {
                    _ = broker.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let partitions = broker.all_partitions();
                let result = tokio::task::spawn_blocking(move || {
                    let now = now_ms();
                    for p in partitions {
                        if let Err(e) = p.flush_if_due(now) {
                            tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "interval flush failed");
                        }
                    }
                })
                .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "interval flush task panicked");
                }
            }
        });
        let broker = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(GROUP_TICK_MS));
            loop {
                tokio::select! {
                    _ = broker.shutdown.cancelled() => return,
                    _ = tick.tick() => broker.groups.tick().await,
                }
            }
        });
        let broker = self.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(broker.config.compaction_interval_ms.max(1));
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = broker.shutdown.cancelled() => return,
                    _ = tick.tick() => broker.compact_now().await,
                }
            }
        });
        let broker = self.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(broker.config.retention_check_interval_ms.max(1));
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = broker.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                broker.enforce_retention().await;
            }
        });
    }

    /// Runs one cleaner pass over every compacted partition now.
    pub async fn compact_now(&self) {
        let partitions = self.all_partitions();
        let limits = self.config.cleaner;
        let result = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in partitions {
                if let Err(e) = p.compact_if_due(now, &limits) {
                    tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "compaction failed");
                }
            }
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "compaction task panicked");
        }
    }

    /// Applies time and size retention to every partition now.
    pub async fn enforce_retention(&self) {
        let partitions = self.all_partitions();
        let result = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in partitions {
                match p.log().apply_retention(now) {
                    Ok(0) => {}
                    Ok(freed) => tracing::info!(topic = p.topic(), partition = p.index(), freed_bytes = freed, "retention deleted segments"),
                    Err(e) => tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "retention failed"),
                }
            }
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "retention task panicked");
        }
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<TopicHandle>> {
        let mut topics: Vec<_> = self.topics.read().values().cloned().collect();
        topics.sort_by(|a, b| a.topic.name.cmp(&b.topic.name));
        topics
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicHandle>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<TopicHandle>> {
        self.topics
            .read()
            .values()
            .find(|t| t.topic.id == id)
            .cloned()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>> {
        let handle = self
            .topic(topic)
            .ok_or_else(|| CoreError::UnknownTopic(topic.to_string()))?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| handle.partitions.get(i).cloned())
            .ok_or_else(|| CoreError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })
    }

    /// The topic, created with default settings if it does not exist and auto-creation is on.
    pub async fn topic_or_auto_create(self: &Arc<Self>, name: &str) -> Result<Arc<TopicHandle>> {
        if let Some(handle) = self.topic(name) {
            return Ok(handle);
        }
        if !self.config.auto_create_topics {
            return Err(CoreError::UnknownTopic(name.to_string()));
        }
        self.topic_or_create(name, self.config.default_partitions)
            .await
    }

    /// The topic, created with `partitions` and default settings if it does not exist (whatever
    /// `auto_create_topics` says: the caller decided). A concurrent creation of the same name is
    /// not an error: both callers get the one topic.
    pub async fn topic_or_create(
        self: &Arc<Self>,
        name: &str,
        partitions: u32,
    ) -> Result<Arc<TopicHandle>> {
        if let Some(handle) = self.topic(name) {
            return Ok(handle);
        }
        match self
            .create_topic(name, partitions, TopicConfig::default())
            .await
        {
            Ok(handle) => Ok(handle),
            // Another connection created it first.
            Err(CoreError::TopicExists(_)) => self
                .topic(name)
                .ok_or_else(|| CoreError::UnknownTopic(name.to_string())),
            Err(e) => Err(e),
        }
    }

    /// A producer id never handed out before (InitProducerId). Ids are reserved in blocks
    /// through the metadata journal, so a restart skips the rest of a block rather than reuse it.
    pub async fn allocate_producer_id(self: &Arc<Self>) -> Result<i64> {
        {
            let mut ids = self.producer_ids.lock();
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
            }
        }
        let this = self.clone();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            let mut ids = this.producer_ids.lock();
            if ids.0 >= ids.1 {
                let start = metadata.state().next_producer_id;
                metadata.submit(MetadataCommand::AllocateProducerIds {
                    start,
                    count: PRODUCER_ID_BLOCK,
                })?;
                *ids = (start, start + PRODUCER_ID_BLOCK);
            }
            ids.0 += 1;
            Ok(ids.0 - 1)
        })
        .await
    }

    /// Validates without creating (CreateTopics with `validate_only`).
    pub fn validate_new_topic(&self, name: &str, partitions: i64) -> Result<()> {
        validate_topic_name(name)?;
        if self.topic(name).is_some() {
            return Err(CoreError::TopicExists(name.to_string()));
        }
        if partitions < 1 || partitions > TOPIC_PARTITIONS_MAX as i64 {
            return Err(CoreError::InvalidPartitions(partitions));
        }
        Ok(())
    }

    /// Creates a topic durably: once this returns, the topic survives a kill -9; if the process
    /// dies before, the topic exists whole or not at all.
    pub async fn create_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<Arc<TopicHandle>> {
        if self.shutdown.is_cancelled() {
            return Err(CoreError::ShuttingDown);
        }
        self.validate_new_topic(name, partitions as i64)?;
        let topic = Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            config,
        };
        let this = self.clone();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            metadata.submit(MetadataCommand::CreateTopic {
                topic: topic.clone(),
            })?;
            let handle = Arc::new(open_topic(
                &this.config,
                &this.log_defaults(),
                &this.files,
                &this.committer,
                &topic,
                false,
            )?);
            this.topics
                .write()
                .insert(topic.name.clone(), handle.clone());
            tracing::info!(topic = %topic.name, partitions, "topic created");
            Ok(handle)
        })
        .await
    }

    /// Deletes a topic durably and removes its data.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<()> {
        let this = self.clone();
        let name = name.to_string();
        run_blocking(move || {
            let name = name.as_str();
            let mut metadata = this.metadata.lock();
            let handle = this
                .topic(name)
                .ok_or_else(|| CoreError::UnknownTopic(name.to_string()))?;
            metadata.submit(MetadataCommand::DeleteTopic {
                name: name.to_string(),
                id: handle.topic.id,
            })?;
            this.topics.write().remove(name);
            for partition in &handle.partitions {
                if let Err(e) = partition.close() {
                    tracing::warn!(topic = name, error = %e, "closing a deleted partition failed");
                }
            }
            let dir = this.config.data_dir.join("logs").join(name);
            let trash = this
                .config
                .data_dir
                .join("trash")
                .join(handle.topic.id.to_string());
            fs::rename(&dir, &trash).map_err(io(&dir))?;
            tracing::info!(topic = name, "topic deleted");
            std::thread::spawn(move || {
                if let Err(e) = fs::remove_dir_all(&trash) {
                    tracing::warn!(dir = %trash.display(), error = %e, "removing deleted topic data failed");
                }
            });
            Ok(())
        })
        .await
    }

    /// Graceful stop: refuses new metadata changes, lets the writer threads finish what was
    /// queued, flushes and closes every log, then writes the clean-shutdown marker so the next
    /// start skips tail recovery.
    pub async fn shutdown(self: &Arc<Self>) -> Result<()> {
        self.shutdown.cancel();
        // No more firing: what is due now fires after the restart, from the synced store.
        self.delayed.shutdown().await;
        let this = self.clone();
        run_blocking(move || {
            let _metadata = this.metadata.lock();
            // Writes queued after this fail with ShuttingDown; logs close with none in flight.
            this.committer.shutdown();
            let mut failed = this.close_queues();
            for partition in this.all_partitions() {
                if let Err(e) = partition.close() {
                    failed = true;
                    tracing::error!(topic = partition.topic(), partition = partition.index(), error = %e, "closing log failed");
                }
            }
            if let Err(e) = this.groups.close() {
                failed = true;
                tracing::error!(error = %e, "closing the consumer offsets log failed");
            }
            if failed {
                // Without a marker the next start scans tails: safe, just slower.
                return Err(CoreError::Metadata("some logs failed to close".into()));
            }
            let marker = this.config.data_dir.join(CLEAN_SHUTDOWN_MARKER);
            File::create(&marker)
                .and_then(|f| f.sync_all())
                .map_err(io(&marker))?;
            sync_dir(&this.config.data_dir)?;
            tracing::info!("broker stopped cleanly");
            Ok(())
        })
        .await
    }
}

fn open_topic(
    config: &BrokerConfig,
    log_defaults: &porter_storage::LogConfig,
    files: &Arc<FileCache>,
    committer: &Committer,
    topic: &Topic,
    after_crash: bool,
) -> Result<TopicHandle> {
    let dir = config.data_dir.join("logs").join(&topic.name);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let id_file = dir.join(TOPIC_ID_FILE);
    if fs::read_to_string(&id_file).ok().as_deref() != Some(topic.id.to_string().as_str()) {
        fs::write(&id_file, topic.id.to_string())
            .and_then(|_| File::open(&id_file)?.sync_all())
            .map_err(io(&id_file))?;
        sync_dir(&dir)?;
    }
    let log_config = topic.config.log_config(log_defaults);
    let partitions = (0..topic.partitions)
        .map(|i| {
            let log = Log::open(
                &dir.join(i.to_string()),
                log_config.clone(),
                files.clone(),
                after_crash,
            )?;
            Ok(Arc::new(Partition::open(
                topic.name.clone(),
                i as i32,
                log,
                committer,
            )?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TopicHandle {
        topic: topic.clone(),
        partitions,
    })
}

/// Removes topic directories that no live topic owns: left by a delete interrupted by a crash,
/// or by an older incarnation of a re-created name.
fn remove_stale_topic_dirs(logs: &Path, metadata: &MetadataStore) -> Result<()> {
    for entry in fs::read_dir(logs).map_err(io(logs))? {
        let entry = entry.map_err(io(logs))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let live = metadata.state().topics.get(&name);
        let stored_id = fs::read_to_string(entry.path().join(TOPIC_ID_FILE)).ok();
        let stale = match (live, stored_id) {
            (None, _) => true,
            (Some(topic), Some(id)) => id != topic.id.to_string(),
            // Created but crashed before the id was written: it is this topic's.
            (Some(_), None) => false,
        };
        if stale {
            tracing::info!(dir = %entry.path().display(), "removing data of a deleted topic");
            fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}

fn empty_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let result = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(io(&path))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CoreError + '_ {
    move |source| CoreError::Io {
        path: PathBuf::from(path),
        source,
    }
}
