//! One partition: an async face over a storage [`Log`]. Writes go through the partition's
//! [`LogWriter`] (its writer thread, see [`crate::commit`]); reads and other blocking storage
//! calls run on tokio's blocking pool. Neither runs on a reactor thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use porter_storage::record_batch::BatchHeader;
use porter_storage::{FlushMode, Log, Offset};
use tokio::sync::watch;

use crate::commit::{Committer, LogWriter};
use crate::error::{CoreError, Result};
use crate::producer_state::{ProducerState, Verdict};

/// Batch headers read per call while rebuilding producer state at start.
const PRODUCER_REPLAY_BATCHES: usize = 4096;

/// Where an append landed: the core's own answer, so gateways never handle storage's types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// The broker time stamped into the batches under `LogAppendTime`; -1 under `CreateTime`
    /// (and for a retried idempotent batch, answered from memory).
    pub log_append_time: i64,
}

/// Whole record batches as stored, and the partition's offsets at read time.
#[derive(Clone, Debug)]
pub struct Batches {
    pub bytes: Bytes,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// Where whole record batches from an offset lie on disk, not yet read (a Fetch streams them
/// from the file to the socket), and the partition's offsets at that time.
#[derive(Clone, Debug)]
pub struct StoredBatches {
    /// `None` at the high watermark.
    pub region: Option<BatchRegion>,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// `len` bytes of `file` from `position`: whole batches exactly as stored. The handle keeps them
/// readable after retention or compaction deletes the segment.
#[derive(Clone, Debug)]
pub struct BatchRegion {
    pub file: Arc<std::fs::File>,
    pub position: u64,
    pub len: u64,
}

pub struct Partition {
    topic: String,
    index: i32,
    log: Arc<Log>,
    /// Appends run here, on the log's writer thread; produce waits on its commit point.
    writer: LogWriter,
    /// When the interval flusher last synced this log (unix ms).
    last_flush_ms: AtomicI64,
    /// Idempotent-producer state. Checked, appended and recorded in one job on the writer
    /// thread, so the check follows log order; the lock only guards against readers
    /// (`producers`, `close`).
    producers: Arc<Mutex<ProducerState>>,
    producer_snapshot: PathBuf,
    /// Log end offset and time of the last compaction: a log that has not grown since is not
    /// cleaned again (each pass reads the whole log) until its tombstones may have expired.
    compacted_at_end: AtomicI64,
    compacted_at_ms: AtomicI64,
    /// The log's size after the last compaction: what it grew by since is its dirty part
    /// (`min.cleanable.dirty.ratio`). Zero before the first pass: all of it counts as dirty.
    compacted_size: AtomicU64,
    /// When the first append after the last compaction happened (unix ms; 0: none since), for
    /// `max.compaction.lag.ms`.
    dirty_since_ms: Arc<AtomicI64>,
    /// Bytes of batches handed to readers since the broker started (Kafka's per-topic
    /// `BytesOutPerSec`): a statistic, so relaxed.
    bytes_read: AtomicU64,
}

impl Partition {
    /// Wraps an opened log and rebuilds its producer state: the last snapshot, then the
    /// batches appended after it, and pins the log to a writer thread. Blocking.
    pub(crate) fn open(topic: String, index: i32, log: Log, committer: &Committer) -> Result<Self> {
        let topic_dir = log
            .dir()
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let producer_snapshot = ProducerState::snapshot_path(&topic_dir, index);
        let producers = rebuild_producer_state(&log, &producer_snapshot)?;
        let log = Arc::new(log);
        Ok(Partition {
            topic,
            index,
            writer: committer.register(Arc::clone(&log)),
            log,
            last_flush_ms: AtomicI64::new(now_ms()),
            producers: Arc::new(Mutex::new(producers)),
            producer_snapshot,
            compacted_at_end: AtomicI64::new(-1),
            compacted_at_ms: AtomicI64::new(0),
            compacted_size: AtomicU64::new(0),
            dirty_since_ms: Arc::new(AtomicI64::new(now_ms())),
            bytes_read: AtomicU64::new(0),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    /// Appends one or more record batches and returns their offsets. The data is written (in
    /// the page cache) but not necessarily committed: see [`Partition::wait_durable`].
    ///
    /// Batches from idempotent producers are checked first, on the writer thread in log
    /// order: a retry of a batch already in the log returns the original offsets without
    /// writing again.
    pub async fn append(&self, records: Bytes) -> Result<Appended> {
        self.start_append(records).await?.await
    }

    /// [`Partition::append`] in two steps: this returns once the append is queued on the log's
    /// writer thread, and the returned future resolves with its outcome. Appends queued one
    /// after another are applied in that order, so a connection can queue its next request's
    /// append without waiting for this one to be written (which, on a writer busy with an
    /// fsync, means waiting for that fsync).
    pub async fn start_append(
        &self,
        records: Bytes,
    ) -> Result<impl std::future::Future<Output = Result<Appended>> + Send + use<>> {
        let producers = self.producers.clone();
        let dirty_since_ms = self.dirty_since_ms.clone();
        let (topic, partition) = (self.topic.clone(), self.index);
        let written = self
            .writer
            .enqueue(move |log| {
                let records = conform(records, &log.config(), now_ms(), &topic, partition)?;
                let headers = batch_headers(&records);
                let mut state = producers.lock();
                let mut duplicates = Vec::new();
                for header in &headers {
                    match state.check(header)? {
                        Verdict::Append => {}
                        Verdict::Duplicate {
                            first_offset,
                            last_offset,
                        } => duplicates.push((first_offset, last_offset)),
                    }
                }
                if !duplicates.is_empty() {
                    if duplicates.len() != headers.len() {
                        return Err(CoreError::Corrupt(
                            "a request mixing retried and new batches of one producer".into(),
                        ));
                    }
                    let (first, _) = duplicates[0];
                    let (_, last) = duplicates[duplicates.len() - 1];
                    return Ok(Appended {
                        base_offset: first,
                        last_offset: last,
                        log_append_time: -1,
                    });
                }
                let now = now_ms();
                let info = log.append(records, now)?;
                let mut base = info.base_offset;
                for header in &headers {
                    let mut header = *header;
                    header.base_offset = base;
                    base = header.last_offset() + 1;
                    state.record(&header, now);
                }
                state.end_offset = state.end_offset.max(info.last_offset + 1);
                let _ = dirty_since_ms.compare_exchange(
                    0,
                    now_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Ok(Appended {
                    base_offset: info.base_offset,
                    last_offset: info.last_offset,
                    log_append_time: info.log_append_time,
                })
            })
            .await?;
        Ok(written)
    }

    /// Idempotent producers known to this partition: (id, epoch, last sequence, last seen ms).
    pub fn producers(&self) -> Vec<(i64, i16, i32, i64)> {
        self.producers.lock().producers()
    }

    /// Saves the producer state and closes the log (graceful shutdown, topic deletion).
    pub fn close(&self) -> Result<()> {
        {
            let mut state = self.producers.lock();
            state.expire(now_ms());
            state.end_offset = self.log.log_end_offset();
            if let Err(e) = state.save(&self.producer_snapshot) {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "saving producer state failed; it will be rebuilt from the log");
            }
        }
        Ok(self.log.close()?)
    }

    /// Returns once every offset below `end_offset` is committed: as durable as the topic's
    /// flush mode promises (fdatasync'ed under `group`, by one fsync shared with every write of
    /// the writer's batch; written under `interval` and `never`). Awaits a watch: no thread
    /// waits.
    pub async fn wait_durable(&self, end_offset: Offset) -> Result<()> {
        self.writer.wait_committed(end_offset).await
    }

    /// Changes the log's configuration and takes a commit step, so leaving `group` commits
    /// what was written but not yet synced. Blocking-safe: the commit step is queued, not
    /// awaited.
    pub(crate) fn set_log_config(&self, config: porter_storage::LogConfig) {
        self.log.set_config(config);
        let writer = self.writer.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = writer.recommit().await {
                    tracing::debug!(error = %e, "commit after a config change failed");
                }
            });
        }
    }

    /// Whole record batches from `offset`, at most `max_bytes` (but at least one batch).
    pub async fn read(&self, offset: Offset, max_bytes: u32) -> Result<Batches> {
        let log = self.log.clone();
        let slice = blocking(move || log.read(offset, max_bytes)).await?;
        self.count_read(slice.bytes.len() as u64);
        Ok(Batches {
            bytes: slice.bytes,
            high_watermark: slice.high_watermark,
            log_start_offset: slice.log_start_offset,
            log_end_offset: slice.log_end_offset,
        })
    }

    /// [`Partition::read`] from `offset`, or from the log's start if retention or delete-records
    /// moved it past `offset` meanwhile; returns the offset actually read from.
    pub async fn read_from(&self, offset: Offset, max_bytes: u32) -> Result<(Offset, Batches)> {
        match self.read(offset, max_bytes).await {
            Err(CoreError::OffsetOutOfRange { log_start, .. }) if log_start > offset => {
                Ok((log_start, self.read(log_start, max_bytes).await?))
            }
            read => Ok((offset, read?)),
        }
    }

    /// Counts `bytes` of batches sent to a reader. [`Partition::read`] counts its own; a reader of
    /// [`Partition::read_region`] counts what it finally sends (a long poll looks up regions
    /// it never sends).
    pub fn count_read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes of batches read since the broker started.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Where the batches [`Partition::read`] would return lie on disk, found from the log's
    /// indexes without reading them: cheap enough to call on every append a long poll sees.
    pub async fn read_region(&self, offset: Offset, max_bytes: u32) -> Result<StoredBatches> {
        // A consumer at the tail is answered from memory, on this thread: a trip to the blocking
        // pool costs a context switch or two per partition per fetch (issue 14).
        let read = match self.log.read_region_cached(offset, max_bytes) {
            Some(read) => read?,
            None => {
                let log = self.log.clone();
                blocking(move || log.read_region(offset, max_bytes)).await?
            }
        };
        Ok(StoredBatches {
            region: read.region.map(|r| BatchRegion {
                file: r.file,
                position: r.position,
                len: r.len,
            }),
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
            log_end_offset: read.log_end_offset,
        })
    }

    /// The record with the largest timestamp: (offset, timestamp) (ListOffsets -3, KIP-734).
    pub async fn max_timestamp(&self) -> Result<Option<(Offset, i64)>> {
        let log = self.log.clone();
        blocking(move || log.max_timestamp()).await
    }

    /// Compacts the log if its cleanup policy says so (the background cleaner's call).
    pub(crate) fn compact_if_due(
        &self,
        now_ms: i64,
        limits: &porter_storage::CleanerLimits,
    ) -> Result<()> {
        if !self.log.config().cleanup_policy.compacts() {
            return Ok(());
        }
        let end = self.log.log_end_offset();
        let config = self.log.config();
        // Tombstones whose delete.retention.ms ran out since the last pass are due to go, grown
        // or not (KIP-534: a log with expired tombstones is cleanable).
        let tombstones_due = now_ms - self.compacted_at_ms.load(Ordering::Relaxed)
            >= config.delete_retention_ms as i64;
        // A grown log: once enough of it is dirty, or its oldest dirty record waited too long.
        let dirty_due = self.compacted_at_end.load(Ordering::Relaxed) != end && {
            let size = self.log.size_bytes();
            let dirty = size.saturating_sub(self.compacted_size.load(Ordering::Relaxed));
            let ratio = if size == 0 {
                0.0
            } else {
                dirty as f64 / size as f64
            };
            let dirty_since = self.dirty_since_ms.load(Ordering::Relaxed);
            let waited = if dirty_since == 0 {
                0
            } else {
                now_ms - dirty_since
            };
            ratio >= config.min_cleanable_dirty_ratio
                || waited >= config.max_compaction_lag_ms.min(i64::MAX as u64) as i64
        };
        let due = tombstones_due || dirty_due;
        if !due {
            return Ok(());
        }
        self.compacted_at_end.store(end, Ordering::Relaxed);
        self.compacted_at_ms.store(now_ms, Ordering::Relaxed);
        self.dirty_since_ms.store(0, Ordering::Relaxed);
        let stats = self.log.compact(now_ms, limits)?;
        self.compacted_size
            .store(self.log.size_bytes(), Ordering::Relaxed);
        tracing::debug!(topic = %self.topic, partition = self.index, ?stats, "compaction pass");
        Ok(())
    }

    /// The first record with a timestamp at or after `timestamp_ms`: (offset, timestamp).
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(Offset, i64)>> {
        let log = self.log.clone();
        blocking(move || log.offset_for_timestamp(timestamp_ms)).await
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// The end of what readers may see (the durable end under `flush = "group"`).
    pub fn high_watermark(&self) -> Offset {
        self.log.high_watermark()
    }

    /// Changes of the high watermark, for long-polling readers.
    pub fn subscribe(&self) -> watch::Receiver<Offset> {
        self.log.subscribe()
    }

    /// Segment files of the partition's log.
    pub fn segment_count(&self) -> usize {
        self.log.segment_count()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    pub(crate) fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Flushes the log if it is in `interval` mode and its interval has passed.
    pub(crate) fn flush_if_due(&self, now_ms: i64) -> Result<()> {
        let config = self.log.config();
        if !matches!(config.flush, FlushMode::Interval) {
            return Ok(());
        }
        let last = self.last_flush_ms.load(Ordering::Relaxed);
        if now_ms - last < config.flush_interval_ms as i64 {
            return Ok(());
        }
        self.last_flush_ms.store(now_ms, Ordering::Relaxed);
        self.log.flush()?;
        Ok(())
    }
}

/// Runs file work on tokio's blocking pool, never on a reactor thread.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        // The closure panicked: a bug, not bad input. Propagate like any other panic.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// [`run_blocking`] for a storage call.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, porter_storage::StorageError> + Send + 'static,
) -> Result<T> {
    run_blocking(move || f().map_err(CoreError::from)).await
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Headers of the batches in a produce buffer. Stops at the first unparsable header: the log's
/// own validation rejects such a buffer with a precise error.
fn batch_headers(records: &[u8]) -> Vec<BatchHeader> {
    let mut headers = Vec::new();
    let mut position = 0;
    while position < records.len() {
        match BatchHeader::parse(&records[position..]) {
            Ok(header) => {
                position += header.total_bytes();
                headers.push(header);
            }
            Err(_) => break,
        }
    }
    headers
}

fn rebuild_producer_state(log: &Log, snapshot: &std::path::Path) -> Result<ProducerState> {
    let mut state = ProducerState::load(snapshot);
    let end = log.log_end_offset();
    if state.end_offset > end || state.end_offset < log.log_start_offset() {
        // The log lost its tail (or its head) since the snapshot: start over from the log.
        state = ProducerState::default();
    }
    let mut from = state.end_offset.max(log.log_start_offset());
    while from < end {
        let headers = log.batch_headers(from, PRODUCER_REPLAY_BATCHES)?;
        let Some(last) = headers.last().map(|h| h.last_offset()) else {
            break;
        };
        for header in headers.iter().filter(|h| h.last_offset() >= from) {
            state.record(header, header.max_timestamp);
        }
        from = last + 1;
    }
    state.end_offset = end;
    state.expire(now_ms());
    Ok(state)
}

/// What the topic's config asks of a batch before it is stored (on the writer thread: decoding
/// and recompressing are CPU work): keys on a compacted topic, CreateTime timestamps within the
/// allowed window, the configured codec. A record that fails refuses the whole batch.
fn conform(
    records: Bytes,
    config: &porter_storage::LogConfig,
    now_ms: i64,
    topic: &str,
    partition: i32,
) -> Result<Bytes> {
    use crate::error::RecordFault;
    use porter_storage::records;
    let refuse = |records: Vec<i32>, fault| CoreError::InvalidRecords {
        topic: topic.to_string(),
        partition,
        records,
        fault,
    };
    if config.cleanup_policy.compacts() {
        let keyless = records::keyless_records(&records)?;
        if !keyless.is_empty() {
            return Err(refuse(keyless, RecordFault::NoKey));
        }
    }
    let bounded = config.timestamp_before_max_ms < i64::MAX as u64
        || config.timestamp_after_max_ms < i64::MAX as u64;
    if bounded && config.timestamp_type == porter_storage::TimestampType::CreateTime {
        let outside = records::records_outside_time_window(
            &records,
            now_ms,
            config.timestamp_before_max_ms,
            config.timestamp_after_max_ms,
        )?;
        if !outside.is_empty() {
            return Err(refuse(outside, RecordFault::TimestampOutOfRange));
        }
    }
    match config.compression.codec() {
        Some(codec) => Ok(records::recompress(records, codec)?),
        None => Ok(records),
    }
}

#[cfg(test)]
mod tests {
    use porter_storage::records::{encode_batch, LogRecord};
    use porter_storage::{FileCache, LogConfig};

    use super::*;
    use crate::commit::CommitConfig;

    fn record(value: &'static str) -> Bytes {
        encode_batch(&[LogRecord {
            value: Some(Bytes::from_static(value.as_bytes())),
            ..LogRecord::default()
        }])
        .unwrap()
    }

    /// What a producer with acks=all sees: acknowledged only once fsynced, and never after a
    /// failed fsync; the partition then refuses writes until a restart.
    #[tokio::test]
    async fn produce_is_acknowledged_only_after_a_successful_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Committer::start(&CommitConfig::default()).unwrap();
        let log = Log::open(
            &dir.path().join("t").join("0"),
            LogConfig::default(),
            FileCache::new(8),
            false,
        )
        .unwrap();
        let partition = Partition::open("t".into(), 0, log, &committer).unwrap();
        let syncs = partition.log().sync_count();
        let info = partition.append(record("kept")).await.unwrap();
        partition.wait_durable(info.last_offset + 1).await.unwrap();
        assert!(
            partition.log().sync_count() > syncs,
            "acknowledged after an fsync"
        );
        assert_eq!(partition.high_watermark(), 1);

        partition.log().fail_next_sync();
        let info = partition.append(record("lost")).await.unwrap();
        let error = partition
            .wait_durable(info.last_offset + 1)
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            crate::error::ErrorKind::Unavailable,
            "{error}"
        );
        assert_eq!(partition.high_watermark(), 1, "consumers never see it");
        assert!(partition.append(record("refused")).await.is_err());
    }
}
