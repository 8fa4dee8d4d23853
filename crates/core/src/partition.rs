//! One partition: an async face over a storage [`Log`]. Every storage call blocks on file I/O, so
//! each runs on tokio's blocking pool, never on a reactor thread.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use porter_storage::{AppendInfo, FlushMode, Log, Offset, ReadSlice};
use tokio::sync::watch;

use crate::error::{CoreError, Result};

pub struct Partition {
    topic: String,
    index: i32,
    log: Arc<Log>,
    /// When the interval flusher last synced this log (unix ms).
    last_flush_ms: AtomicI64,
}

impl Partition {
    pub(crate) fn new(topic: String, index: i32, log: Log) -> Self {
        Partition {
            topic,
            index,
            log: Arc::new(log),
            last_flush_ms: AtomicI64::new(now_ms()),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    /// Appends one or more record batches and returns their offsets. The data is written (in
    /// the page cache) but not necessarily durable: see [`Partition::wait_durable`].
    pub async fn append(&self, records: Bytes) -> Result<AppendInfo> {
        let log = self.log.clone();
        blocking(move || log.append(records, now_ms())).await
    }

    /// Returns once every offset below `end_offset` is as durable as the topic's flush mode
    /// promises: fdatasync'ed under `group` (shared with concurrent writers), immediately under
    /// `interval` and `never`.
    pub async fn wait_durable(&self, end_offset: Offset) -> Result<()> {
        if !matches!(self.log.config().flush, FlushMode::Group) {
            return Ok(());
        }
        if self.log.high_watermark() >= end_offset {
            return Ok(());
        }
        let log = self.log.clone();
        blocking(move || log.flush_to(end_offset)).await
    }

    /// Whole record batches from `offset`, at most `max_bytes` (but at least one batch).
    pub async fn read(&self, offset: Offset, max_bytes: u32) -> Result<ReadSlice> {
        let log = self.log.clone();
        blocking(move || log.read(offset, max_bytes)).await
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

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, porter_storage::StorageError> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(CoreError::from),
        // The closure panicked: a bug, not bad input. Propagate like any other panic.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
