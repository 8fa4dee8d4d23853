//! Changes to existing topics: their configs, their partition counts, and the log start of a
//! partition (DeleteRecords). Metadata changes follow `create_topic`'s order: checked, journaled
//! (fdatasync), applied to the state, then to the open partitions, all under the metadata lock
//! so the topics map never disagrees with the state a replay would rebuild.

use std::fs;
use std::sync::Arc;

use porter_storage::{Log, Offset};

use super::{io, Broker, TopicHandle};
use crate::error::{CoreError, Result};
use crate::metadata::MetadataCommand;
use crate::partition::{blocking, run_blocking, Partition};
use crate::topic::{Topic, TopicConfig, TopicDefaults, TOPIC_PARTITIONS_MAX};

/// DeleteRecords' offset meaning "everything below the high watermark".
pub const DELETE_RECORDS_TO_HIGH_WATERMARK: Offset = -1;

impl Broker {
    /// Replaces a topic's whole override set durably and applies it to every open partition at
    /// once (`Log::set_config`): retention, roll sizes and flush mode change without a restart.
    pub async fn alter_topic_config(
        self: &Arc<Self>,
        name: &str,
        config: TopicConfig,
    ) -> Result<Arc<TopicHandle>> {
        self.update_topic_config(name, false, move |_, _| Ok(config))
            .await
    }

    /// Computes a topic's new override set from its current one with `change` (given the
    /// current overrides and the broker defaults) and applies it like
    /// [`Broker::alter_topic_config`]. `change` runs under the metadata lock, so concurrent
    /// incremental changes never lose each other. With `validate_only`, nothing is changed and
    /// the returned handle shows the topic as it would be.
    pub async fn update_topic_config<F>(
        self: &Arc<Self>,
        name: &str,
        validate_only: bool,
        change: F,
    ) -> Result<Arc<TopicHandle>>
    where
        F: FnOnce(&TopicConfig, &TopicDefaults) -> Result<TopicConfig> + Send + 'static,
    {
        if self.shutdown.is_cancelled() {
            return Err(CoreError::ShuttingDown);
        }
        let this = self.clone();
        let name = name.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            let old = this
                .topic(&name)
                .ok_or_else(|| CoreError::UnknownTopic(name.clone()))?;
            let defaults = TopicDefaults(this.log_defaults());
            let config = change(&old.topic.config, &defaults)?;
            config.validate()?;
            let topic = Topic {
                config,
                ..old.topic.clone()
            };
            if validate_only {
                return Ok(Arc::new(TopicHandle {
                    topic,
                    partitions: old.partitions.clone(),
                }));
            }
            metadata.submit(MetadataCommand::SetTopicConfig {
                name: name.clone(),
                id: topic.id,
                config: topic.config.clone(),
            })?;
            let log_config = topic.config.log_config(&this.log_defaults());
            for partition in &old.partitions {
                partition.set_log_config(log_config.clone());
            }
            let handle = Arc::new(TopicHandle {
                topic,
                partitions: old.partitions.clone(),
            });
            this.topics.write().insert(name.clone(), handle.clone());
            tracing::info!(topic = %name, overrides = ?handle.topic.config.overrides, "topic config changed");
            Ok(handle)
        })
        .await
    }

    /// Checks that `name` can grow to `partitions` in total, changing nothing (validate_only).
    /// Returns the topic as it is now.
    pub fn validate_create_partitions(
        &self,
        name: &str,
        partitions: i64,
    ) -> Result<Arc<TopicHandle>> {
        let handle = self
            .topic(name)
            .ok_or_else(|| CoreError::UnknownTopic(name.to_string()))?;
        if partitions <= handle.topic.partitions as i64 || partitions > TOPIC_PARTITIONS_MAX as i64
        {
            return Err(CoreError::InvalidPartitions(partitions));
        }
        Ok(handle)
    }

    /// Grows a topic to `partitions` in total, durably. The new partitions' logs are opened
    /// before the command is journaled: if the journal write fails they are closed again and
    /// their (empty) directories removed; if the process dies in between, the directories are
    /// empty leftovers the next growth reuses. Existing partitions are not touched.
    pub async fn create_partitions(
        self: &Arc<Self>,
        name: &str,
        partitions: u32,
    ) -> Result<Arc<TopicHandle>> {
        if self.shutdown.is_cancelled() {
            return Err(CoreError::ShuttingDown);
        }
        let this = self.clone();
        let name = name.to_string();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            let old = this.validate_create_partitions(&name, partitions as i64)?;
            let topic = Topic {
                partitions,
                ..old.topic.clone()
            };
            let added = open_new_partitions(&this, &topic, old.topic.partitions)?;
            let command = MetadataCommand::CreatePartitions {
                name: name.clone(),
                id: topic.id,
                partitions,
            };
            if let Err(e) = metadata.submit(command) {
                for partition in &added {
                    discard_partition(partition);
                }
                return Err(e);
            }
            let mut all = old.partitions.clone();
            all.extend(added);
            assert_eq!(all.len(), partitions as usize);
            let handle = Arc::new(TopicHandle {
                topic,
                partitions: all,
            });
            this.topics.write().insert(name.clone(), handle.clone());
            tracing::info!(topic = %name, from = old.topic.partitions, to = partitions, "partitions created");
            Ok(handle)
        })
        .await
    }

    /// Moves a partition's log start to `before_offset` (Kafka's DeleteRecords), deleting the
    /// segments wholly below it; [`DELETE_RECORDS_TO_HIGH_WATERMARK`] means the high watermark.
    /// Returns the new low watermark. An offset past the high watermark is
    /// `CoreError::OffsetOutOfRange`; one below the current start changes nothing.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        before_offset: Offset,
    ) -> Result<Offset> {
        let partition = self.partition(topic, partition)?;
        let log = partition.log().clone();
        blocking(move || {
            let offset = if before_offset == DELETE_RECORDS_TO_HIGH_WATERMARK {
                log.high_watermark()
            } else {
                before_offset
            };
            log.delete_records_before(offset)
        })
        .await
    }
}

/// Opens partitions `from..topic.partitions` of `topic` (which must not be open yet).
fn open_new_partitions(broker: &Broker, topic: &Topic, from: u32) -> Result<Vec<Arc<Partition>>> {
    let dir = broker.config.data_dir.join("logs").join(&topic.name);
    let log_config = topic.config.log_config(&broker.log_defaults());
    let mut opened = Vec::with_capacity((topic.partitions - from) as usize);
    for index in from..topic.partitions {
        let result = Log::open(
            &dir.join(index.to_string()),
            log_config.clone(),
            broker.files.clone(),
            false,
        )
        .map_err(CoreError::from)
        .and_then(|log| Partition::open(topic.name.clone(), index as i32, log, &broker.committer));
        match result {
            Ok(partition) => opened.push(Arc::new(partition)),
            Err(e) => {
                for partition in &opened {
                    discard_partition(partition);
                }
                return Err(e);
            }
        }
    }
    Ok(opened)
}

/// Closes a partition that was never published and removes its directory (best effort: a
/// leftover directory is empty and reused by the next growth).
fn discard_partition(partition: &Partition) {
    if let Err(e) = partition.close() {
        tracing::warn!(topic = partition.topic(), partition = partition.index(), error = %e, "closing an unpublished partition failed");
    }
    let dir = partition.log().dir().to_path_buf();
    if let Err(e) = fs::remove_dir_all(&dir).map_err(io(&dir)) {
        tracing::warn!(error = %e, "removing an unpublished partition failed");
    }
}
