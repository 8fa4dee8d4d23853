//! A partition's `Log`: an ordered run of `Segment`s, the offsets that matter to readers, and
//! the locks that let appends, syncs and reads run side by side.
//!
//! Storage offers plain verbs and decides nothing about commitment: `append` writes (page
//! cache), `sync` fdatasyncs and returns the durable end, and `commit_to` moves the high
//! watermark readers stop at. The owner (porter-core's commit seam) decides when written or
//! durable data counts as committed: after an fdatasync, once written, or later after a quorum.
//!
//! Locks, always taken in this order and never held across another log's:
//! - `cleaner_lock`: one segment-list rewriter at a time besides appends: compaction (for its
//!   whole run), retention and delete-records (which delete segments compaction may be reading).
//!   These never take `append_lock`: they only drop segments from the front, appends only touch
//!   the active (last) one, and a queue that reclaims acked segments must not stall its
//!   publishers for the checkpoint fsyncs and the unlink of a 16 MiB file.
//! - `append_lock`: one writer at a time (append, roll, close, delete). Held during the data
//!   write, so the write position is known without file cursors. Nothing under it waits for
//!   the disk: a roll writes the old segment's indexes to the page cache, renames a `spare`
//!   segment's files into place, and leaves the three fdatasyncs to the `background` thread.
//! - `sync_lock`: one fdatasync at a time (the owner's writer thread and the interval flusher
//!   may both sync); a second caller usually finds its offset already durable.
//! - `state`: the segment list and offsets; held only to copy or publish, never across I/O.
//!   Readers take only this briefly, then read files with no lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::compaction::{self, CleanerCrashPoint, CleanerLimits, CompactionStats};
use crate::config::{FlushMode, LogConfig, TimestampType};
use crate::file_cache::FileCache;
use crate::log_state::LogState;
use crate::record_batch::{self, BatchHeader};
use crate::recovery;
use crate::segment::{FileRegion, Segment, NO_TIMESTAMP};
use crate::spare::Spare;
use crate::{Offset, StorageError};

mod external_sync;
mod tail;
mod trim;

/// Result of a successful `Log::append`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub record_count: u32,
    /// Largest `maxTimestamp` of the appended batches.
    pub max_timestamp: i64,
    pub bytes: u32,
    /// The broker time stamped into the batches under `TimestampType::LogAppendTime`; -1 under
    /// `CreateTime`.
    pub log_append_time: i64,
}

/// Result of `Log::read`: whole batches exactly as stored, and the log's offsets at read time.
#[derive(Clone, Debug)]
pub struct ReadSlice {
    pub bytes: Bytes,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// The log's offsets when a read was planned.
struct ReadAt {
    high_watermark: Offset,
    log_start_offset: Offset,
    log_end_offset: Offset,
}

/// Result of `Log::read_region`: where the batches lie, and the log's offsets at that time.
#[derive(Clone, Debug)]
pub struct ReadRegion {
    pub region: Option<FileRegion>,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

pub struct Log {
    dir: PathBuf,
    files: Arc<FileCache>,
    cleaner_lock: Mutex<()>,
    append_lock: Mutex<()>,
    sync_lock: Mutex<()>,
    state: Mutex<LogState>,
    high_watermark_sender: watch::Sender<Offset>,
    /// fdatasync calls that reached the disk (or failed): observability, and how tests prove
    /// that many waiters shared one sync.
    syncs: AtomicU64,
    /// Test hook: the next `sync` fails as a real fdatasync error would (EIO).
    fail_next_sync: AtomicBool,
    /// Test hook: rolls queue no background sync, as if the process died before it ran.
    hold_rolled_syncs: AtomicBool,
    /// The next segment's files, made off the append path (see `spare`).
    spare: Arc<Spare>,
}

impl Log {
    /// Opens (creating if missing) the log in `dir`. With `after_crash`, the tail of the last
    /// segment is CRC-checked and cut at the first torn batch; otherwise only walked.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        files: Arc<FileCache>,
        after_crash: bool,
    ) -> Result<Log, StorageError> {
        let recovered = recovery::recover(dir, &config, &files, after_crash)?;
        let segments: BTreeMap<Offset, Arc<Segment>> = recovered
            .segments
            .into_iter()
            .map(|s| (s.base_offset(), Arc::new(s)))
            .collect();
        let active = segments
            .values()
            .next_back()
            .expect("recovery returns a segment");
        let active_snapshot = active.snapshot();
        let log_end_offset = active_snapshot.next_offset;
        // What survived may sit only in the page cache: make it durable before readers see it.
        // An empty segment (a log just created, e.g. each new queue's) has nothing to sync: the
        // fdatasync cost 1-2 ms, up to 21 ms under load, per declare (issue 14, chat set-up).
        if active_snapshot.size_bytes > 0 {
            active.sync_log(&files)?;
        }
        let state = LogState {
            config,
            segments,
            log_start_offset: recovered.log_start_offset,
            log_end_offset,
            durable_offset: log_end_offset,
            high_watermark: log_end_offset,
            closed: false,
        };
        tracing::debug!(dir = %dir.display(), log_start = state.log_start_offset, log_end_offset, "opened log");
        Ok(Log {
            dir: dir.to_path_buf(),
            files,
            cleaner_lock: Mutex::new(()),
            append_lock: Mutex::new(()),
            sync_lock: Mutex::new(()),
            high_watermark_sender: watch::Sender::new(log_end_offset),
            state: Mutex::new(state),
            syncs: AtomicU64::new(0),
            fail_next_sync: AtomicBool::new(false),
            hold_rolled_syncs: AtomicBool::new(false),
            spare: Arc::new(Spare::new(dir)),
        })
    }

    /// Validates every batch in `records` (nothing is written if one is bad), assigns offsets
    /// and writes them at the end of the log (page cache). Readers see them once the owner
    /// calls `commit_to` past them.
    pub fn append(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, StorageError> {
        self.append_checked(records, now_ms, record_batch::validate_all)
    }

    /// `append` for batches the broker encoded itself (already CRC'd): headers are parsed but
    /// the CRC is not computed again (see `record_batch::prepared_batches`; debug builds check
    /// it). Shared `Bytes` are copied once here, as in `append`.
    pub fn append_prepared(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, StorageError> {
        self.append_checked(records, now_ms, record_batch::prepared_batches)
    }

    /// Checks `records` with `check` and appends them.
    fn append_checked(
        &self,
        records: Bytes,
        now_ms: i64,
        check: fn(&[u8], u32) -> Result<record_batch::Batches, StorageError>,
    ) -> Result<AppendInfo, StorageError> {
        // CPU work (the one copy, the checks) happens before the append lock, so concurrent
        // producers to one partition overlap it and only take turns for the write.
        let config = {
            let state = self.state.lock();
            state.check_open()?;
            state.config.clone()
        };
        // Zero-copy when the caller handed over the only reference; else the one copy.
        let buffer = records
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let batches = check(&buffer, config.max_batch_bytes)?;
        self.append_batches(buffer, batches, config, now_ms)
    }

    fn append_batches(
        &self,
        mut buffer: BytesMut,
        batches: Vec<(usize, BatchHeader)>,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let _append = self.append_lock.lock();
        let (mut active, first_offset) = {
            let state = self.state.lock();
            state.check_open()?;
            (Arc::clone(state.active()), state.log_end_offset)
        };
        let log_append_time = match config.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => NO_TIMESTAMP,
        };
        let mut headers: Vec<BatchHeader> = Vec::with_capacity(batches.len());
        let mut next_offset = first_offset;
        for &(position, mut header) in &batches {
            if config.timestamp_type == TimestampType::LogAppendTime {
                let end = position + header.total_bytes();
                header = record_batch::set_log_append_time(&mut buffer[position..end], now_ms);
            }
            record_batch::set_base_offset(&mut buffer[position..], next_offset);
            header.base_offset = next_offset;
            next_offset = header
                .last_offset()
                .checked_add(1)
                .ok_or_else(|| StorageError::CorruptBatch("offsets overflow".into()))?;
            headers.push(header);
        }
        let result = self.write_batches(&buffer, &batches, &headers, &mut active, now_ms, &config);
        // Publish what was written even on a failed write, so state follows the segments.
        let written_end = active.snapshot().next_offset;
        {
            let mut state = self.state.lock();
            assert!(
                written_end >= state.log_end_offset,
                "log end offset went backwards"
            );
            state.log_end_offset = written_end;
        }
        result?;
        debug_assert_eq!(written_end, next_offset);
        Ok(AppendInfo {
            base_offset: first_offset,
            last_offset: next_offset - 1,
            record_count: headers.iter().map(|h| h.records_count as u32).sum(),
            max_timestamp: headers
                .iter()
                .map(|h| h.max_timestamp)
                .max()
                .expect("at least one batch"),
            bytes: buffer.len() as u32,
            log_append_time,
        })
    }

    /// Writes runs of adjacent batches with one write per segment, rolling when needed.
    fn write_batches(
        &self,
        buffer: &[u8],
        batches: &[(usize, BatchHeader)],
        headers: &[BatchHeader],
        active: &mut Arc<Segment>,
        now_ms: i64,
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        let mut run_start = 0;
        let mut run_bytes = 0u64;
        for (i, header) in headers.iter().enumerate() {
            if active.should_roll(header, run_bytes, now_ms, config) {
                let (from, to) = (batches[run_start].0, batches[i].0);
                if to > from {
                    active.append(
                        &self.files,
                        &buffer[from..to],
                        &headers[run_start..i],
                        now_ms,
                        config.index_interval_bytes,
                    )?;
                }
                *active = self.roll(active, config)?;
                run_start = i;
                run_bytes = 0;
            }
            run_bytes += header.total_bytes() as u64;
        }
        let from = batches[run_start].0;
        active.append(
            &self.files,
            &buffer[from..],
            &headers[run_start..],
            now_ms,
            config.index_interval_bytes,
        )
    }

    /// Closes the active segment and starts a new one at its end offset. The old segment's
    /// indexes go to the page cache here; their fdatasync (and its data's, unless `Never`) runs
    /// on the `background` thread, not in front of the appends queued behind this one. Safe:
    /// the commit step's `sync` covers the old segment's data before any offset past it is
    /// durable (it syncs from the segment holding the durable end), and after a crash recovery
    /// walks every segment from where its two indexes agree (see `recovery::load_segment`).
    /// The new segment's files are the spare the background thread made after the last roll,
    /// renamed; created here only when none is ready.
    fn roll(&self, old: &Arc<Segment>, config: &LogConfig) -> Result<Arc<Segment>, StorageError> {
        old.flush_indexes(&self.files, false)?;
        let mut sync = None;
        if config.flush != FlushMode::Never {
            old.mark_rolled_unsynced();
            if !self.hold_rolled_syncs.load(Ordering::Relaxed) {
                sync = Some(Arc::clone(old));
            }
        }
        let base_offset = old.snapshot().next_offset;
        let segment = Arc::new(if self.spare.take(base_offset) {
            Segment::empty(&self.dir, base_offset)
        } else {
            Segment::create(&self.dir, base_offset, &self.files)?
        });
        old.forget_recent();
        let (files, dir, spare) = (
            Arc::clone(&self.files),
            self.dir.clone(),
            Arc::clone(&self.spare),
        );
        crate::background::run(Box::new(move || {
            if let Some(segment) = sync {
                if let Err(error) = segment.sync_rolled(&files) {
                    tracing::error!(dir = %dir.display(), segment = segment.base_offset(), %error, "fdatasync of a rolled segment failed: closing the log retries it");
                }
            }
            spare.make();
        }));
        let mut state = self.state.lock();
        assert!(
            state.active().base_offset() < base_offset,
            "segments must grow"
        );
        state.segments.insert(base_offset, Arc::clone(&segment));
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled segment");
        Ok(segment)
    }

    /// fdatasyncs everything written so far and returns the durable end: every offset below
    /// it survives a power loss. Does not move the high watermark: that is the owner's call
    /// (`commit_to`). Concurrent callers take turns; one that finds the log end already durable
    /// returns without a syscall.
    pub fn sync(&self) -> Result<Offset, StorageError> {
        self.sync_segments(false)
    }

    /// `sync`, indexes included: the `FlushMode::Interval` timer and shutdown, so a restart
    /// finds indexes that match the data.
    pub fn flush(&self) -> Result<Offset, StorageError> {
        self.sync_segments(true)
    }

    fn sync_segments(&self, with_indexes: bool) -> Result<Offset, StorageError> {
        let _sync = self.sync_lock.lock();
        let (target, segments) = {
            let state = self.state.lock();
            state.check_open()?;
            if state.durable_offset >= state.log_end_offset && !with_indexes {
                return Ok(state.durable_offset);
            }
            (state.log_end_offset, state.unsynced_segments())
        };
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if self.fail_next_sync.swap(false, Ordering::Relaxed) {
            return Err(StorageError::Io(std::io::Error::other(
                "injected fdatasync failure",
            )));
        }
        for segment in &segments {
            if with_indexes {
                segment.flush_indexes(&self.files, true)?;
            } else {
                segment.sync_log(&self.files)?;
            }
        }
        if with_indexes {
            self.sync_rolled_segments()?;
        }
        let mut state = self.state.lock();
        state.durable_offset = state.durable_offset.max(target);
        Ok(state.durable_offset)
    }

    /// Moves the high watermark (what readers see, what `subscribe` reports) up to `offset`;
    /// a lower `offset` changes nothing. The owner decides what committed means: storage only
    /// checks that `offset` was written. Returns the high watermark.
    pub fn commit_to(&self, offset: Offset) -> Offset {
        let mut state = self.state.lock();
        state.set_high_watermark(offset, &self.high_watermark_sender);
        state.high_watermark
    }

    /// Offsets below this have been fdatasync'ed.
    pub fn durable_offset(&self) -> Offset {
        self.state.lock().durable_offset
    }

    /// fdatasync calls made (or attempted) on this log since it was opened.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Runs the fdatasyncs rolls left to the background thread and that are still due, so a
    /// clean close (or an interval flush) leaves every index durable.
    fn sync_rolled_segments(&self) -> Result<(), StorageError> {
        let segments: Vec<Arc<Segment>> = self.state.lock().segments.values().cloned().collect();
        for segment in segments {
            segment.sync_rolled(&self.files)?;
        }
        Ok(())
    }

    /// Rolled segments whose deferred fdatasyncs have not run yet (tests, observability).
    pub fn rolled_unsynced_segments(&self) -> usize {
        let state = self.state.lock();
        state
            .segments
            .values()
            .filter(|s| s.is_rolled_unsynced())
            .count()
    }

    /// From now on rolls leave their fdatasyncs undone, as if the process died before the
    /// background thread ran them: tests of the crash window (tests only).
    #[doc(hidden)]
    pub fn hold_rolled_syncs(&self) {
        self.hold_rolled_syncs.store(true, Ordering::Relaxed);
    }

    /// Makes the next `sync` fail with an I/O error, as a failing disk would (tests only).
    #[doc(hidden)]
    pub fn fail_next_sync(&self) {
        self.fail_next_sync.store(true, Ordering::Relaxed);
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (at least one batch),
    /// never past the high watermark. `offset == high_watermark` gives empty bytes.
    pub fn read(&self, offset: Offset, max_bytes: u32) -> Result<ReadSlice, StorageError> {
        let (at, segments) = self.read_plan(offset)?;
        let mut slice = ReadSlice {
            bytes: Bytes::new(),
            high_watermark: at.high_watermark,
            log_start_offset: at.log_start_offset,
            log_end_offset: at.log_end_offset,
        };
        // The floor segment holds `offset` unless compaction removed it (a gap) or the
        // segment is empty: then the next batch is in a later segment.
        for segment in segments {
            if let Some(bytes) =
                segment.read(&self.files, offset, max_bytes, slice.high_watermark)?
            {
                slice.bytes = bytes;
                break;
            }
        }
        Ok(slice)
    }

    /// Where the batches [`Log::read`] would return lie on disk, without reading them (see
    /// `Segment::region`); `region` is `None` at the high watermark.
    pub fn read_region(&self, offset: Offset, max_bytes: u32) -> Result<ReadRegion, StorageError> {
        let (at, segments) = self.read_plan(offset)?;
        let mut read = ReadRegion {
            region: None,
            high_watermark: at.high_watermark,
            log_start_offset: at.log_start_offset,
            log_end_offset: at.log_end_offset,
        };
        for segment in segments {
            if let Some(region) =
                segment.region(&self.files, offset, max_bytes, read.high_watermark)?
            {
                read.region = (region.len > 0).then_some(region);
                break;
            }
        }
        Ok(read)
    }

    /// What both reads start from: the log's offsets, `offset` checked against them, and the
    /// segments to look in from `offset` on (none at the high watermark).
    fn read_plan(&self, offset: Offset) -> Result<(ReadAt, Vec<Arc<Segment>>), StorageError> {
        let state = self.state.lock();
        state.check_open()?;
        if offset < state.log_start_offset || offset > state.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: state.log_start_offset,
                high_watermark: state.high_watermark,
            });
        }
        let at = ReadAt {
            high_watermark: state.high_watermark,
            log_start_offset: state.log_start_offset,
            log_end_offset: state.log_end_offset,
        };
        let segments = if offset == state.high_watermark {
            Vec::new()
        } else {
            state.segments_from(offset)
        };
        Ok((at, segments))
    }

    /// Headers of the batches from the one holding `from_offset` (or the first after it, or the
    /// log start) to the log end, at most `max_batches`, in offset order. Reads headers only:
    /// the core rebuilds idempotent-producer state from them after a restart.
    pub fn batch_headers(
        &self,
        from_offset: Offset,
        max_batches: usize,
    ) -> Result<Vec<BatchHeader>, StorageError> {
        let (from_offset, segments) = {
            let state = self.state.lock();
            state.check_open()?;
            let from_offset = from_offset.max(state.log_start_offset);
            (from_offset, state.segments_from(from_offset))
        };
        let mut headers = Vec::new();
        for segment in segments {
            if headers.len() >= max_batches {
                break;
            }
            segment.batch_headers(&self.files, from_offset, max_batches, &mut headers)?;
        }
        debug_assert!(headers
            .windows(2)
            .all(|w| w[0].last_offset() < w[1].base_offset));
        Ok(headers)
    }

    /// Offset and timestamp of the readable record with the largest timestamp, the earliest
    /// such offset on ties (Kafka's ListOffsets `MAX_TIMESTAMP`, KIP-734); `None` when empty.
    pub fn max_timestamp(&self) -> Result<Option<(Offset, i64)>, StorageError> {
        let (log_start_offset, high_watermark, segments) = {
            let state = self.state.lock();
            state.check_open()?;
            let segments: Vec<Arc<Segment>> = state.segments.values().cloned().collect();
            (state.log_start_offset, state.high_watermark, segments)
        };
        // Whole segments answer from their snapshot; the one or two the log start or the high
        // watermark cut are walked. A snapshot's maximum may be an empty batch's (compaction
        // keeps a producer's emptied last batch with its old `maxTimestamp`): when no record
        // carries it, every segment is walked, skipping empty batches.
        for trust_snapshots in [true, false] {
            let Some((max, segment)) = self.largest_timestamp(
                &segments,
                log_start_offset,
                high_watermark,
                trust_snapshots,
            )?
            else {
                return Ok(None);
            };
            let found =
                segment.offset_for_timestamp(&self.files, max, log_start_offset, high_watermark)?;
            debug_assert!(found.is_none_or(|(_, timestamp)| timestamp == max));
            if found.is_some() || !trust_snapshots {
                return Ok(found);
            }
        }
        unreachable!("the second round returns")
    }

    /// The largest timestamp of readable records and the first segment holding it; with
    /// `trust_snapshots`, segments wholly readable answer from `snapshot().max_timestamp`.
    fn largest_timestamp<'s>(
        &self,
        segments: &'s [Arc<Segment>],
        log_start_offset: Offset,
        high_watermark: Offset,
        trust_snapshots: bool,
    ) -> Result<Option<(i64, &'s Arc<Segment>)>, StorageError> {
        let mut best: Option<(i64, &Arc<Segment>)> = None;
        for segment in segments {
            let snapshot = segment.snapshot();
            if snapshot.next_offset <= log_start_offset || snapshot.size_bytes == 0 {
                continue;
            }
            if segment.base_offset() >= high_watermark {
                break;
            }
            let whole =
                segment.base_offset() >= log_start_offset && snapshot.next_offset <= high_watermark;
            let segment_max = if whole && trust_snapshots {
                Some(snapshot.max_timestamp)
            } else {
                segment.visible_max_timestamp(&self.files, log_start_offset, high_watermark)?
            };
            if let Some(segment_max) = segment_max {
                if best.is_none_or(|(max, _)| segment_max > max) {
                    best = Some((segment_max, segment));
                }
            }
        }
        Ok(best)
    }

    /// First record with timestamp >= `timestamp` among the readable ones: (offset, timestamp).
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(Offset, i64)>, StorageError> {
        let (log_start_offset, high_watermark, segments) = {
            let state = self.state.lock();
            state.check_open()?;
            let segments: Vec<Arc<Segment>> = state.segments.values().cloned().collect();
            (state.log_start_offset, state.high_watermark, segments)
        };
        for segment in segments {
            let snapshot = segment.snapshot();
            if snapshot.next_offset <= log_start_offset || snapshot.max_timestamp < timestamp {
                continue;
            }
            if segment.base_offset() >= high_watermark {
                break;
            }
            let found = segment.offset_for_timestamp(
                &self.files,
                timestamp,
                log_start_offset,
                high_watermark,
            )?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> Offset {
        self.state.lock().log_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.state.lock().log_end_offset
    }

    pub fn high_watermark(&self) -> Offset {
        self.state.lock().high_watermark
    }

    /// Notified on every high-watermark change (long-poll fetch).
    pub fn subscribe(&self) -> watch::Receiver<Offset> {
        self.high_watermark_sender.subscribe()
    }

    /// Compacts the non-active segments when the cleanup policy includes compact (see
    /// `compaction`): keeps the last record per key, drops tombstones after
    /// `delete_retention_ms`, leaves segments younger than `min_compaction_lag_ms`. Appends and
    /// reads run concurrently; retention and delete-records wait for it. Called periodically by
    /// the core, on a blocking thread.
    pub fn compact(
        &self,
        now_ms: i64,
        limits: &CleanerLimits,
    ) -> Result<CompactionStats, StorageError> {
        self.compact_until(now_ms, limits, None)
    }

    /// `compact`, stopping at `crash_point` with the files a crash there leaves (tests only).
    #[doc(hidden)]
    pub fn compact_until(
        &self,
        now_ms: i64,
        limits: &CleanerLimits,
        crash_point: Option<CleanerCrashPoint>,
    ) -> Result<CompactionStats, StorageError> {
        let _cleaner = self.cleaner_lock.lock();
        let (config, segments, high_watermark) = {
            let state = self.state.lock();
            state.check_open()?;
            let segments: Vec<Arc<Segment>> = state.segments.values().cloned().collect();
            (state.config.clone(), segments, state.high_watermark)
        };
        if !config.cleanup_policy.compacts() {
            return Ok(CompactionStats::default());
        }
        let cleanable = compaction::cleanable_count(&segments, high_watermark, now_ms, &config);
        if cleanable == 0 {
            return Ok(CompactionStats::default());
        }
        let cleaner = compaction::Cleaner {
            dir: &self.dir,
            files: &self.files,
            config: &config,
            now_ms,
            limits: *limits,
            high_watermark,
            crash_point,
        };
        let stats = compaction::compact(&cleaner, segments, cleanable, &mut |old, new| {
            let new = Arc::new(new);
            let mut state = self.state.lock();
            let slot = state
                .segments
                .get_mut(&old.base_offset())
                .expect("the cleaner lock keeps segments from being deleted");
            assert!(Arc::ptr_eq(slot, old), "one cleaner at a time");
            *slot = Arc::clone(&new);
            new
        })?;
        tracing::info!(dir = %self.dir.display(), ?stats, "compacted log");
        Ok(stats)
    }

    /// Takes effect for the next append. Changes no offset: leaving `Group` makes written data
    /// readable only once the owner commits it.
    pub fn set_config(&self, config: LogConfig) {
        self.state.lock().config = config;
    }

    pub fn config(&self) -> LogConfig {
        self.state.lock().config.clone()
    }

    /// Bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        let segments: Vec<Arc<Segment>> = self.state.lock().segments.values().cloned().collect();
        segments.iter().map(|s| s.snapshot().size_bytes).sum()
    }

    /// Segment files the log holds (the active one included).
    pub fn segment_count(&self) -> usize {
        self.state.lock().segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes and fdatasyncs data and indexes, then refuses further use. Reopening afterwards
    /// with `after_crash = false` skips the CRC scan. Idempotent.
    pub fn close(&self) -> Result<(), StorageError> {
        let _append = self.append_lock.lock();
        let _sync = self.sync_lock.lock();
        self.spare.close();
        let (target, segments) = {
            let state = self.state.lock();
            if state.closed {
                return Ok(());
            }
            (state.log_end_offset, state.unsynced_segments())
        };
        for segment in &segments {
            segment.flush_indexes(&self.files, true)?;
        }
        self.sync_rolled_segments()?;
        let mut state = self.state.lock();
        state.durable_offset = state.durable_offset.max(target);
        state.closed = true;
        drop(state);
        self.files.evict_dir(&self.dir);
        Ok(())
    }

    /// Closes the log and removes its directory.
    pub fn delete(&self) -> Result<(), StorageError> {
        // The cleaner lock too: retention and delete-records write files without the append lock.
        let _cleaner = self.cleaner_lock.lock();
        let _append = self.append_lock.lock();
        let _sync = self.sync_lock.lock();
        self.state.lock().closed = true;
        self.spare.close(); // none being made while the directory goes
        self.files.evict_dir(&self.dir);
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &state.log_start_offset)
            .field("log_end_offset", &state.log_end_offset)
            .field("high_watermark", &state.high_watermark)
            .field("segments", &state.segments.len())
            .finish()
    }
}
