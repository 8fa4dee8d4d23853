//! Durable group state: committed offsets and group metadata, kept in an internal log (Porter's
//! `__consumer_offsets`) and in memory.
//!
//! Each change is a record whose key says what it is about (a group's offset for one partition,
//! or a group's membership) and whose value is the new state, or null when deleted. Replay applies
//! records in order, last one wins. When the log outgrows [`OFFSETS_LOG_COMPACT_BYTES`], the live
//! state is appended again as a fresh run and everything before it is dropped: a snapshot inside
//! the same log, so a crash at any point leaves either the old run or the new one complete.
//!
//! Writes run on the log's writer thread ([`crate::commit`]): the cache is updated in the same
//! job as the append, so it follows log order, and callers await the commit point.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use porter_storage::records::{decode_batches, encode_batch, LogRecord};
use porter_storage::{FileCache, FlushMode, Log, LogConfig};
use serde::{Deserialize, Serialize};

use crate::commit::{Committer, LogWriter};
use crate::error::{CoreError, Result};

/// Compact the offsets log when it grows past this.
pub const OFFSETS_LOG_COMPACT_BYTES: u64 = 64 << 20;
const OFFSETS_SEGMENT_BYTES: u64 = 16 << 20;
/// Records per batch when rewriting the live state.
const COMPACTION_BATCH_RECORDS: usize = 1000;
const REPLAY_READ_BYTES: u32 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoreKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// A group's membership as of its last Stable or Empty state, so a restarted broker knows its
/// groups (and static members keep their assignments).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocols: Vec<(String, Vec<u8>)>,
    pub assignment: Vec<u8>,
}

#[derive(Default)]
struct Cache {
    /// group → (topic, partition) → offset
    offsets: HashMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    groups: HashMap<String, GroupSnapshot>,
}

pub struct OffsetStore {
    log: LogWriter,
    /// Appends and cache updates happen together (one writer job), so the cache follows log
    /// order.
    cache: Arc<Mutex<Cache>>,
}

/// A change to apply: offset commits/deletions and group snapshots/deletions.
pub enum Change {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        offset: CommittedOffset,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
        snapshot: GroupSnapshot,
    },
    DeleteGroup {
        group: String,
    },
}

impl OffsetStore {
    /// Opens the log in `dir`, replays it and pins it to a writer thread. Blocking.
    pub fn open(
        dir: &Path,
        files: Arc<FileCache>,
        after_crash: bool,
        committer: &Committer,
    ) -> Result<OffsetStore> {
        let config = LogConfig {
            segment_bytes: OFFSETS_SEGMENT_BYTES,
            retention_ms: None,
            retention_bytes: None,
            flush: FlushMode::Group,
            ..LogConfig::default()
        };
        let log = Arc::new(Log::open(dir, config, files, after_crash)?);
        let mut cache = Cache::default();
        let mut offset = log.log_start_offset();
        let end = log.high_watermark();
        while offset < end {
            let slice = log.read(offset, REPLAY_READ_BYTES)?;
            if slice.bytes.is_empty() {
                break;
            }
            let records = decode_batches(slice.bytes)?;
            let Some(last) = records.last().map(|r| r.offset) else {
                break;
            };
            for record in records.into_iter().filter(|r| r.offset >= offset) {
                apply(&mut cache, &record)?;
            }
            offset = last + 1;
        }
        Ok(OffsetStore {
            log: committer.register(log),
            cache: Arc::new(Mutex::new(cache)),
        })
    }

    /// Appends the changes and applies them to the cache (on the log's writer thread); returns
    /// the end offset to wait on for durability ([`OffsetStore::wait_durable`]).
    pub async fn write(&self, changes: Vec<Change>) -> Result<i64> {
        if changes.is_empty() {
            return Ok(self.log.log().log_end_offset());
        }
        let cache = Arc::clone(&self.cache);
        let (end, compacted_from) = self
            .log
            .write(move |log| {
                let now = crate::partition::now_ms();
                let records = changes
                    .into_iter()
                    .map(|change| to_record(change, now))
                    .collect::<Result<Vec<_>>>()?;
                let mut cache = cache.lock();
                let info = log.append(encode_batch(&records)?, now)?;
                for record in &records {
                    apply(&mut cache, record)?;
                }
                let compacted_from = if log.size_bytes() > OFFSETS_LOG_COMPACT_BYTES {
                    Some(rewrite_live_state(log, &cache, now)?)
                } else {
                    None
                };
                debug_assert!(log.log_end_offset() > info.last_offset);
                Ok((log.log_end_offset(), compacted_from))
            })
            .await?;
        if let Some(start) = compacted_from {
            // The new run must be committed (durable) before the old one goes.
            self.log.wait_committed(end).await?;
            self.log
                .write(move |log| Ok(log.delete_records_before(start)?))
                .await?;
        }
        Ok(end)
    }

    /// Returns once everything below `end_offset` is committed (fdatasync'ed: this log's flush
    /// mode is `group`).
    pub async fn wait_durable(&self, end_offset: i64) -> Result<()> {
        self.log.wait_committed(end_offset).await
    }

    pub fn offsets(&self, group: &str) -> BTreeMap<(String, i32), CommittedOffset> {
        self.cache
            .lock()
            .offsets
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    pub fn groups(&self) -> HashMap<String, GroupSnapshot> {
        self.cache.lock().groups.clone()
    }

    /// Groups that have committed offsets (they exist for ListGroups even with no members).
    pub fn groups_with_offsets(&self) -> Vec<String> {
        self.cache.lock().offsets.keys().cloned().collect()
    }

    /// Syncs and closes the log. Blocking; call it after the committer stopped.
    pub fn close(&self) -> Result<()> {
        Ok(self.log.log().close()?)
    }
}

/// Appends the live state of `cache` as a fresh run after everything written; returns where
/// the run starts. Everything before it may go once the run is committed.
fn rewrite_live_state(log: &Log, cache: &Cache, now: i64) -> Result<i64> {
    let mut live = Vec::new();
    for (group, snapshot) in &cache.groups {
        live.push(to_record(
            Change::Group {
                group: group.clone(),
                snapshot: snapshot.clone(),
            },
            now,
        )?);
    }
    for (group, offsets) in &cache.offsets {
        for ((topic, partition), offset) in offsets {
            live.push(to_record(
                Change::Commit {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: offset.clone(),
                },
                now,
            )?);
        }
    }
    let start = log.log_end_offset();
    for chunk in live.chunks(COMPACTION_BATCH_RECORDS) {
        log.append(encode_batch(chunk)?, now)?;
    }
    tracing::info!(records = live.len(), "compacted the consumer offsets log");
    Ok(start)
}

fn to_record(change: Change, now: i64) -> Result<LogRecord> {
    let (key, value): (StoreKey, Option<Vec<u8>>) = match change {
        Change::Commit {
            group,
            topic,
            partition,
            offset,
        } => (
            StoreKey::Offset {
                group,
                topic,
                partition,
            },
            Some(to_json(&offset)?),
        ),
        Change::DeleteOffset {
            group,
            topic,
            partition,
        } => (
            StoreKey::Offset {
                group,
                topic,
                partition,
            },
            None,
        ),
        Change::Group { group, snapshot } => (StoreKey::Group { group }, Some(to_json(&snapshot)?)),
        Change::DeleteGroup { group } => (StoreKey::Group { group }, None),
    };
    Ok(LogRecord {
        timestamp: now,
        key: Some(Bytes::from(
            serde_json::to_vec(&key).map_err(CoreError::metadata)?,
        )),
        value: value.map(Bytes::from),
        ..LogRecord::default()
    })
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(CoreError::metadata)
}

fn apply(cache: &mut Cache, record: &LogRecord) -> Result<()> {
    let corrupt = |e: serde_json::Error| {
        CoreError::Corrupt(format!("consumer offsets record at {}: {e}", record.offset))
    };
    let Some(key) = &record.key else {
        return Ok(());
    };
    let key: StoreKey = serde_json::from_slice(key).map_err(corrupt)?;
    match (key, &record.value) {
        (
            StoreKey::Offset {
                group,
                topic,
                partition,
            },
            Some(value),
        ) => {
            let offset = serde_json::from_slice(value).map_err(corrupt)?;
            cache
                .offsets
                .entry(group)
                .or_default()
                .insert((topic, partition), offset);
        }
        (
            StoreKey::Offset {
                group,
                topic,
                partition,
            },
            None,
        ) => {
            if let Some(offsets) = cache.offsets.get_mut(&group) {
                offsets.remove(&(topic, partition));
                if offsets.is_empty() {
                    cache.offsets.remove(&group);
                }
            }
        }
        (StoreKey::Group { group }, Some(value)) => {
            let snapshot = serde_json::from_slice(value).map_err(corrupt)?;
            cache.groups.insert(group, snapshot);
        }
        (StoreKey::Group { group }, None) => {
            cache.groups.remove(&group);
            cache.offsets.remove(&group);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::CommitConfig;

    fn committer() -> Arc<Committer> {
        Committer::start(&CommitConfig::default()).unwrap()
    }

    fn commit(group: &str, partition: i32, offset: i64) -> Change {
        Change::Commit {
            group: group.into(),
            topic: "t".into(),
            partition,
            offset: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: Some("m".into()),
                commit_timestamp_ms: 1,
            },
        }
    }

    #[tokio::test]
    async fn commits_survive_reopen_and_last_write_wins() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileCache::new(16);
        let committer = committer();
        {
            let store = OffsetStore::open(dir.path(), files.clone(), false, &committer).unwrap();
            let end = store
                .write(vec![commit("g", 0, 5), commit("g", 1, 7)])
                .await
                .unwrap();
            store.write(vec![commit("g", 0, 9)]).await.unwrap();
            store
                .write(vec![Change::DeleteOffset {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 1,
                }])
                .await
                .unwrap();
            store.wait_durable(end).await.unwrap();
            store.close().unwrap();
        }
        let store = OffsetStore::open(dir.path(), files, true, &committer).unwrap();
        let offsets = store.offsets("g");
        assert_eq!(offsets.len(), 1);
        assert_eq!(offsets[&("t".to_string(), 0)].offset, 9);
    }

    #[tokio::test]
    async fn compaction_keeps_live_state() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileCache::new(16);
        let committer = committer();
        let store = OffsetStore::open(dir.path(), files.clone(), false, &committer).unwrap();
        let mut expected = 0;
        // Enough commits to cross the compaction threshold at least once.
        let big_metadata = "x".repeat(4000);
        for round in 0..(OFFSETS_LOG_COMPACT_BYTES / (4000 * 50) + 2) as i64 {
            let changes = (0..50)
                .map(|p| Change::Commit {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: p,
                    offset: CommittedOffset {
                        offset: round,
                        leader_epoch: -1,
                        metadata: Some(big_metadata.clone()),
                        commit_timestamp_ms: 1,
                    },
                })
                .collect();
            store.write(changes).await.unwrap();
            expected = round;
        }
        assert!(
            store.log.log().log_start_offset() > 0,
            "compaction moved the log start"
        );
        assert!(store.log.log().size_bytes() <= OFFSETS_LOG_COMPACT_BYTES + (1 << 20) * 20);
        drop(store);
        let store = OffsetStore::open(dir.path(), files, true, &committer).unwrap();
        let offsets = store.offsets("g");
        assert_eq!(offsets.len(), 50);
        assert!(offsets.values().all(|o| o.offset == expected));
    }
}
