//! One segment of a log: a `.log` file of whole batches starting at `base_offset`, with its
//! sparse `.index` and `.timeindex`.
//!
//! Only the log's append path writes (the caller holds the log's append lock), so the write
//! position is known and every write is positional. Readers run concurrently: they snapshot the
//! written size under the segment's small mutex and read below it without any lock.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::Mutex;

use crate::config::LogConfig;
use crate::file_cache::FileCache;
use crate::limits;
use crate::offset_index::{OffsetEntry, OffsetIndex};
use crate::recent_batches::RecentBatches;
use crate::record_batch::{BatchHeader, HEADER_BYTES};
use crate::time_index::{TimeEntry, TimeIndex};
use crate::{Offset, StorageError};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const OFFSET_INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
/// No record yet: Kafka's `NO_TIMESTAMP`.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// `00000000000000000042.log`: zero padding makes a directory listing sort by offset.
pub(crate) fn file_path(dir: &Path, base_offset: Offset, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Bytes of a log file: whole batches exactly as stored, not yet read. The handle keeps the
/// file readable after retention or compaction removes its path (an unlinked file that is
/// still open keeps its data), so a region may be queued for writing for as long as it takes.
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

pub(crate) struct Segment {
    base_offset: Offset,
    log_path: PathBuf,
    state: Mutex<SegmentState>,
    /// Set by a roll that left this segment's fdatasyncs to later (`sync_rolled`): its data and
    /// indexes may still be only in the page cache. Its data is synced anyway by the next
    /// `Log::sync` before anything past it is durable; its indexes only by `sync_rolled`.
    rolled_unsynced: AtomicBool,
}

/// Everything about a segment that changes on append.
pub(crate) struct SegmentState {
    /// Set when compaction replaced this segment's files: a handle to the old log file, which
    /// readers still holding this `Segment` keep using (its path now names the new file).
    /// Lookups then walk from the start, since the index paths also name the new files.
    pub(crate) retired: Option<Arc<File>>,
    /// Bytes of whole batches written; the next write goes here.
    pub(crate) size_bytes: u64,
    /// Last offset of the last batch + 1, or `base_offset` when empty.
    pub(crate) next_offset: Offset,
    /// Largest batch max timestamp, `NO_TIMESTAMP` when empty.
    pub(crate) max_timestamp: i64,
    /// When the first batch was appended (for `segment_ms`); `None` while empty.
    pub(crate) first_append_ms: Option<i64>,
    /// Log bytes written since the last offset-index entry.
    pub(crate) bytes_since_index_entry: u64,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// The last batches appended, for reads at the tail without disk I/O.
    pub(crate) recent: RecentBatches,
}

/// What a reader needs to know about a segment, copied out under its mutex.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentSnapshot {
    pub(crate) size_bytes: u64,
    pub(crate) next_offset: Offset,
    pub(crate) max_timestamp: i64,
}

impl SegmentState {
    /// The state of a segment with no batches yet, over the given (empty) indexes.
    pub(crate) fn empty(
        base_offset: Offset,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
    ) -> SegmentState {
        SegmentState {
            retired: None,
            size_bytes: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            first_append_ms: None,
            bytes_since_index_entry: 0,
            offset_index,
            time_index,
            recent: RecentBatches::default(),
        }
    }

    pub(crate) fn relative(&self, base_offset: Offset, offset: Offset) -> u32 {
        let relative = offset - base_offset;
        assert!(
            (0..=u32::MAX as i64).contains(&relative),
            "offset {offset} outside segment {base_offset}"
        );
        relative as u32
    }

    /// Records one batch just written at `position`; adds index entries every
    /// `index_interval_bytes`.
    pub(crate) fn record_batch(
        &mut self,
        base_offset: Offset,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u32,
    ) {
        // Appends are contiguous; a compacted segment has gaps, never overlaps.
        assert!(
            header.base_offset >= self.next_offset,
            "batches must not overlap"
        );
        assert_eq!(position, self.size_bytes, "batches must be adjacent");
        if self.bytes_since_index_entry >= index_interval_bytes as u64 {
            let relative_offset = self.relative(base_offset, header.base_offset);
            assert!(position <= u32::MAX as u64);
            self.offset_index.push(OffsetEntry {
                relative_offset,
                position: position as u32,
            });
            self.push_time_entry(relative_offset);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_bytes() as u64;
        self.recent.push(
            header.base_offset,
            header.last_offset(),
            position,
            header.total_bytes() as u64,
        );
        self.size_bytes += header.total_bytes() as u64;
        self.next_offset = header.last_offset() + 1;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
    }

    /// Adds a time-index entry "records before `relative_offset` are <= max so far" if the
    /// maximum grew since the last entry.
    pub(crate) fn push_time_entry(&mut self, relative_offset: u32) {
        let last = self.time_index.last();
        if self.max_timestamp > NO_TIMESTAMP
            && last.is_none_or(|e| self.max_timestamp > e.timestamp)
        {
            debug_assert!(last.is_none_or(|e| e.relative_offset <= relative_offset));
            self.time_index.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
        }
    }
}

impl Segment {
    /// Creates empty files for a new segment (emptying leftovers with the same name).
    pub(crate) fn create(
        dir: &Path,
        base_offset: Offset,
        files: &FileCache,
    ) -> Result<Segment, StorageError> {
        let log_path = file_path(dir, base_offset, LOG_SUFFIX);
        files.create(&log_path)?.set_len(0)?;
        let state = SegmentState::empty(
            base_offset,
            OffsetIndex::create(file_path(dir, base_offset, OFFSET_INDEX_SUFFIX), files)?,
            TimeIndex::create(file_path(dir, base_offset, TIME_INDEX_SUFFIX), files)?,
        );
        Ok(Segment::from_state(dir, base_offset, state))
    }

    /// A segment over files that exist and are empty (a spare just renamed into place): no I/O.
    pub(crate) fn empty(dir: &Path, base_offset: Offset) -> Segment {
        let state = SegmentState::empty(
            base_offset,
            OffsetIndex::empty(file_path(dir, base_offset, OFFSET_INDEX_SUFFIX)),
            TimeIndex::empty(file_path(dir, base_offset, TIME_INDEX_SUFFIX)),
        );
        Segment::from_state(dir, base_offset, state)
    }

    /// Wraps the state recovery rebuilt.
    pub(crate) fn from_state(dir: &Path, base_offset: Offset, state: SegmentState) -> Segment {
        assert!(state.next_offset >= base_offset);
        Segment {
            base_offset,
            log_path: file_path(dir, base_offset, LOG_SUFFIX),
            state: Mutex::new(state),
            rolled_unsynced: AtomicBool::new(false),
        }
    }

    pub(crate) fn base_offset(&self) -> Offset {
        self.base_offset
    }

    /// The log file to read, taken under the segment's mutex so a concurrent swap (which holds
    /// it while renaming) can never hand us the new file with this segment's positions.
    fn log_file(&self, state: &SegmentState, files: &FileCache) -> std::io::Result<Arc<File>> {
        match &state.retired {
            Some(file) => Ok(Arc::clone(file)),
            None => files.get(&self.log_path),
        }
    }

    /// A handle to the log file and the bytes written, consistent with each other.
    pub(crate) fn log_file_and_size(
        &self,
        files: &FileCache,
    ) -> Result<(Arc<File>, u64), StorageError> {
        let state = self.state.lock();
        Ok((self.log_file(&state, files)?, state.size_bytes))
    }

    /// Compaction's swap: under the segment's mutex, pins the current log file for readers
    /// still holding this segment, evicts the three paths from the cache, then runs `rename`
    /// (which puts the cleaned files at those paths).
    pub(crate) fn retire(
        &self,
        files: &FileCache,
        rename: impl FnOnce() -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        assert!(state.retired.is_none(), "a segment is retired once");
        let pinned = files.get(&self.log_path)?;
        for path in [
            self.log_path.as_path(),
            state.offset_index.path(),
            state.time_index.path(),
        ] {
            files.evict(path);
        }
        // Before the rename: if it fails halfway, readers still get the old file.
        state.retired = Some(pinned);
        rename()
    }

    pub(crate) fn snapshot(&self) -> SegmentSnapshot {
        let state = self.state.lock();
        SegmentSnapshot {
            size_bytes: state.size_bytes,
            next_offset: state.next_offset,
            max_timestamp: state.max_timestamp,
        }
    }

    /// True when `batch` should go to a new segment rather than this one.
    /// `pending_bytes` are batches of the same append call already bound for this segment.
    pub(crate) fn should_roll(
        &self,
        header: &BatchHeader,
        pending_bytes: u64,
        now_ms: i64,
        config: &LogConfig,
    ) -> bool {
        let state = self.state.lock();
        let size_bytes = state.size_bytes + pending_bytes;
        if size_bytes == 0 {
            return false; // a batch always fits in an empty segment
        }
        let too_big = size_bytes + header.total_bytes() as u64 > config.segment_bytes_effective();
        let segment_ms = config.segment_ms_for(self.base_offset).min(i64::MAX as u64) as i64;
        let too_old = state
            .first_append_ms
            .is_some_and(|first| now_ms.saturating_sub(first) > segment_ms);
        let offsets_overflow = header.last_offset() - self.base_offset > u32::MAX as i64;
        too_big || too_old || offsets_overflow
    }

    /// Writes adjacent whole batches (already validated, offsets assigned) at the end of the
    /// segment with one positional write, then indexes them.
    pub(crate) fn append(
        &self,
        files: &FileCache,
        bytes: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
        index_interval_bytes: u32,
    ) -> Result<(), StorageError> {
        debug_assert_eq!(
            headers.iter().map(|h| h.total_bytes()).sum::<usize>(),
            bytes.len()
        );
        let position = self.state.lock().size_bytes;
        assert!(
            position + bytes.len() as u64 <= limits::SEGMENT_BYTES_MAX,
            "segment overflow"
        );
        files.get(&self.log_path)?.write_all_at(bytes, position)?;
        let mut state = self.state.lock();
        assert_eq!(state.size_bytes, position, "only the append path writes");
        state.first_append_ms.get_or_insert(now_ms);
        let mut batch_position = position;
        for header in headers {
            state.record_batch(
                self.base_offset,
                batch_position,
                header,
                index_interval_bytes,
            );
            batch_position += header.total_bytes() as u64;
        }
        debug_assert_eq!(state.size_bytes, position + bytes.len() as u64);
        Ok(())
    }

    /// Writes buffered index entries (with a final time entry so the time index ends at the
    /// segment's largest timestamp); fdatasyncs all three files when `sync`. The fdatasyncs run
    /// outside the segment's mutex, so readers of this segment never wait for the disk.
    pub(crate) fn flush_indexes(&self, files: &FileCache, sync: bool) -> Result<(), StorageError> {
        let index_paths = {
            let mut state = self.state.lock();
            if state.retired.is_some() {
                return Ok(()); // its paths belong to the segment that replaced it
            }
            let end = state.relative(self.base_offset, state.next_offset);
            state.push_time_entry(end);
            state.offset_index.write_pending(files)?;
            state.time_index.write_pending(files)?;
            [
                state.offset_index.path().to_path_buf(),
                state.time_index.path().to_path_buf(),
            ]
        };
        if sync {
            // A compaction swap meanwhile puts the cleaned (already synced) files at these
            // paths: syncing them again is harmless.
            for path in &index_paths {
                files.get(path)?.sync_data()?;
            }
            self.sync_log(files)?;
        }
        Ok(())
    }

    /// Marks a segment whose roll wrote its indexes to the page cache only (see `sync_rolled`).
    pub(crate) fn mark_rolled_unsynced(&self) {
        self.rolled_unsynced.store(true, Ordering::Release);
    }

    /// True while a roll's deferred fdatasyncs of this segment have not run.
    pub(crate) fn is_rolled_unsynced(&self) -> bool {
        self.rolled_unsynced.load(Ordering::Acquire)
    }

    /// The fdatasyncs a roll left to later (data and both indexes), if still due. A segment
    /// deleted meanwhile (retention, the log's deletion) has nothing left to sync.
    pub(crate) fn sync_rolled(&self, files: &FileCache) -> Result<(), StorageError> {
        if !self.is_rolled_unsynced() {
            return Ok(());
        }
        match self.flush_indexes(files, true) {
            Ok(()) => {}
            Err(StorageError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        self.rolled_unsynced.store(false, Ordering::Release);
        Ok(())
    }

    /// fdatasync of the log file only: group commit does not need the indexes, recovery
    /// rebuilds their tail.
    pub(crate) fn sync_log(&self, files: &FileCache) -> Result<(), StorageError> {
        let file = {
            let state = self.state.lock();
            if state.retired.is_some() {
                return Ok(());
            }
            files.get(&self.log_path)?
        };
        file.sync_data()?;
        Ok(())
    }

    /// Position of the batch containing `offset`, found from the offset index then by walking
    /// headers; `None` when `offset` is at or past the end of this segment.
    /// With compaction's gaps this is the first batch ending at or after `offset`.
    fn find_batch(
        &self,
        files: &FileCache,
        offset: Offset,
    ) -> Result<Option<FoundBatch>, StorageError> {
        let (file, size_bytes, start) = {
            let state = self.state.lock();
            if offset >= state.next_offset {
                return Ok(None);
            }
            let entry = if state.retired.is_some() {
                None
            } else {
                let relative = state.relative(self.base_offset, offset.max(self.base_offset));
                state
                    .offset_index
                    .search(files, |e| e.relative_offset <= relative)?
            };
            (
                self.log_file(&state, files)?,
                state.size_bytes,
                entry.map_or(0, |e| e.position as u64),
            )
        };
        let mut reader = HeaderReader::new(Arc::clone(&file), size_bytes);
        let mut position = start;
        while position < size_bytes {
            let header = reader.header_at(position)?;
            if header.last_offset() >= offset {
                return Ok(Some(FoundBatch {
                    position,
                    header,
                    size_bytes,
                    file,
                }));
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset`, stopping before `high_watermark` and
    /// `max_bytes` (but always at least one batch). `None` when `offset` is not in this segment.
    pub(crate) fn read(
        &self,
        files: &FileCache,
        offset: Offset,
        max_bytes: u32,
        high_watermark: Offset,
    ) -> Result<Option<Bytes>, StorageError> {
        let Some(FoundBatch {
            position: start,
            header: first,
            size_bytes,
            file,
        }) = self.find_batch(files, offset)?
        else {
            return Ok(None);
        };
        if first.base_offset >= high_watermark {
            return Ok(Some(Bytes::new()));
        }
        let available = size_bytes - start;
        let want = (max_bytes as u64)
            .max(first.total_bytes() as u64)
            .min(available);
        let mut buffer = BytesMut::zeroed(want as usize);
        file.read_exact_at(&mut buffer, start)?;
        let mut end = 0usize;
        while end + HEADER_BYTES <= buffer.len() {
            let header = BatchHeader::parse(&buffer[end..])?;
            if header.base_offset >= high_watermark || end + header.total_bytes() > buffer.len() {
                break;
            }
            if end > 0 && end + header.total_bytes() > max_bytes as usize {
                break;
            }
            end += header.total_bytes();
        }
        assert!(
            end >= first.total_bytes(),
            "the first batch is always returned whole"
        );
        buffer.truncate(end);
        Ok(Some(buffer.freeze()))
    }

    /// Where the whole batches [`Segment::read`] would return lie in the log file, found without
    /// reading them: the first batch by the offset index and a header walk, the end by the
    /// offset index again (the last indexed batch within `max_bytes` and below
    /// `high_watermark`) and a walk of at most one index interval. A fetch then streams the
    /// region from the file to the socket instead of holding it in memory, and a long poll can
    /// count the bytes available on every append for the price of two index lookups.
    /// `None` when `offset` is not in this segment.
    pub(crate) fn region(
        &self,
        files: &FileCache,
        offset: Offset,
        max_bytes: u32,
        high_watermark: Offset,
    ) -> Result<Option<FileRegion>, StorageError> {
        let Some(FoundBatch {
            position: start,
            header: first,
            size_bytes,
            file,
        }) = self.find_batch(files, offset)?
        else {
            return Ok(None);
        };
        if first.base_offset >= high_watermark {
            return Ok(Some(FileRegion {
                file,
                position: start,
                len: 0,
            }));
        }
        // Always the first batch whole; later ones only within `max_bytes` (as `read`).
        let limit = (start + (max_bytes as u64).max(first.total_bytes() as u64)).min(size_bytes);
        let mut end = start + first.total_bytes() as u64;
        let indexed = {
            let state = self.state.lock();
            if state.retired.is_some() {
                None
            } else {
                // Every batch before an indexed one ends at or before its position and has
                // smaller offsets: if the indexed batch starts within the limit and below the
                // high watermark, so does all that precedes it.
                state.offset_index.search(files, |e| {
                    (e.position as u64) <= limit
                        && self.base_offset + (e.relative_offset as i64) < high_watermark
                })?
            }
        };
        if let Some(entry) = indexed {
            end = end.max(entry.position as u64);
        }
        let mut reader = HeaderReader::new(Arc::clone(&file), size_bytes);
        while end + HEADER_BYTES as u64 <= limit {
            let header = reader.header_at(end)?;
            if header.base_offset >= high_watermark || end + header.total_bytes() as u64 > limit {
                break;
            }
            end += header.total_bytes() as u64;
        }
        Ok(Some(FileRegion {
            file,
            position: start,
            len: end - start,
        }))
    }

    /// `region`'s answer from memory alone, or `None` when that needs the disk (the batches are
    /// not among the recent ones, the file is not open, or compaction replaced the files).
    pub(crate) fn region_cached(
        &self,
        files: &FileCache,
        offset: Offset,
        max_bytes: u32,
        high_watermark: Offset,
    ) -> Option<FileRegion> {
        let state = self.state.lock();
        if state.retired.is_some() {
            return None;
        }
        let (position, len) = state.recent.region(offset, max_bytes, high_watermark)?;
        let file = files.get_open(&self.log_path)?;
        Some(FileRegion {
            file,
            position,
            len,
        })
    }

    /// Forgets where the recent batches lie (a rolled segment is read from disk like any other).
    pub(crate) fn forget_recent(&self) {
        self.state.lock().recent.clear();
    }

    /// First record at or after `from_offset` and below `high_watermark` with a timestamp >=
    /// `timestamp`: (offset, timestamp).
    pub(crate) fn offset_for_timestamp(
        &self,
        files: &FileCache,
        timestamp: i64,
        from_offset: Offset,
        high_watermark: Offset,
    ) -> Result<Option<(Offset, i64)>, StorageError> {
        let indexed_offset = {
            let state = self.state.lock();
            if state.max_timestamp < timestamp {
                return Ok(None);
            }
            let entry = if state.retired.is_some() {
                None
            } else {
                state
                    .time_index
                    .search(files, |e| e.timestamp < timestamp)?
            };
            self.base_offset + entry.map_or(0, |e| e.relative_offset as i64)
        };
        let start_offset = indexed_offset.max(from_offset);
        let Some(FoundBatch {
            mut position,
            size_bytes,
            file,
            ..
        }) = self.find_batch(files, start_offset)?
        else {
            return Ok(None);
        };
        let mut reader = HeaderReader::new(file.clone(), size_bytes);
        while position < size_bytes {
            let header = reader.header_at(position)?;
            if header.base_offset >= high_watermark {
                return Ok(None);
            }
            // An empty batch (compaction's) keeps its old `maxTimestamp` but has no record.
            if header.records_count > 0
                && header.max_timestamp >= timestamp
                && header.last_offset() >= start_offset
            {
                if header.is_log_append_time() {
                    // Every record carries the batch's append time.
                    return Ok(Some((
                        header.base_offset.max(start_offset),
                        header.max_timestamp,
                    )));
                }
                let mut batch = BytesMut::zeroed(header.total_bytes());
                file.read_exact_at(&mut batch, position)?;
                let records = decode_batch(batch.freeze())?;
                if let Some(record) = records
                    .records
                    .iter()
                    .find(|r| r.offset >= start_offset && r.timestamp >= timestamp)
                {
                    return Ok(Some((record.offset, record.timestamp)));
                }
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Up to `max_batches` headers, from the batch ending at or after `from_offset` to the end
    /// of the segment, appended to `out`. Reads headers only.
    pub(crate) fn batch_headers(
        &self,
        files: &FileCache,
        from_offset: Offset,
        max_batches: usize,
        out: &mut Vec<BatchHeader>,
    ) -> Result<(), StorageError> {
        let Some(found) = self.find_batch(files, from_offset)? else {
            return Ok(());
        };
        let mut reader = HeaderReader::new(found.file, found.size_bytes);
        let mut position = found.position;
        while position < found.size_bytes && out.len() < max_batches {
            let header = reader.header_at(position)?;
            out.push(header);
            position += header.total_bytes() as u64;
        }
        Ok(())
    }

    /// Largest timestamp among records at or after `from_offset` and below `high_watermark`,
    /// by walking headers (for a segment the log start or high watermark cuts, or whose
    /// `snapshot().max_timestamp` is an empty batch's). A batch straddling `from_offset` is
    /// decoded; empty batches are skipped.
    pub(crate) fn visible_max_timestamp(
        &self,
        files: &FileCache,
        from_offset: Offset,
        high_watermark: Offset,
    ) -> Result<Option<i64>, StorageError> {
        let Some(found) = self.find_batch(files, from_offset)? else {
            return Ok(None);
        };
        let mut reader = HeaderReader::new(Arc::clone(&found.file), found.size_bytes);
        let mut position = found.position;
        let mut best: Option<i64> = None;
        while position < found.size_bytes {
            let header = reader.header_at(position)?;
            if header.base_offset >= high_watermark {
                break;
            }
            let batch_max = if header.records_count == 0 {
                None // compaction's empty batch: its `maxTimestamp` is no record's
            } else if header.base_offset < from_offset && !header.is_log_append_time() {
                let mut batch = BytesMut::zeroed(header.total_bytes());
                found.file.read_exact_at(&mut batch, position)?;
                decode_batch(batch.freeze())?
                    .records
                    .iter()
                    .filter(|r| r.offset >= from_offset && r.offset < high_watermark)
                    .map(|r| r.timestamp)
                    .max()
            } else {
                Some(header.max_timestamp)
            };
            best = best.max(batch_max);
            position += header.total_bytes() as u64;
        }
        Ok(best)
    }

    /// Removes the segment's files (the caller dropped it from the log first).
    pub(crate) fn delete_files(&self, files: &FileCache) -> Result<(), StorageError> {
        let state = self.state.lock();
        for path in [
            self.log_path.as_path(),
            state.offset_index.path(),
            state.time_index.path(),
        ] {
            files.evict(path);
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

/// Where `find_batch` found a batch, with the handle and size it was found under.
struct FoundBatch {
    position: u64,
    header: BatchHeader,
    size_bytes: u64,
    file: Arc<File>,
}

/// Decodes (and decompresses) the records of one whole batch.
pub(crate) fn decode_batch(
    mut batch: Bytes,
) -> Result<kafka_protocol::records::RecordSet, StorageError> {
    RecordBatchDecoder::decode(&mut batch)
        .map_err(|error| StorageError::CorruptBatch(format!("decoding records: {error}")))
}

/// Reads batch headers through a chunk buffer so walking an index interval of small batches
/// costs one read, not one per batch.
pub(crate) struct HeaderReader {
    file: Arc<File>,
    size_bytes: u64,
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl HeaderReader {
    pub(crate) fn new(file: Arc<File>, size_bytes: u64) -> HeaderReader {
        HeaderReader {
            file,
            size_bytes,
            chunk: Vec::new(),
            chunk_start: 0,
        }
    }

    /// The header at `position`, checked (magic, lengths) and lying wholly below `size_bytes`.
    pub(crate) fn header_at(&mut self, position: u64) -> Result<BatchHeader, StorageError> {
        let in_chunk = position >= self.chunk_start
            && position + HEADER_BYTES as u64 <= self.chunk_start + self.chunk.len() as u64;
        if !in_chunk {
            let length =
                (limits::SCAN_CHUNK_BYTES as u64).min(self.size_bytes.saturating_sub(position));
            if length < HEADER_BYTES as u64 {
                return Err(StorageError::CorruptBatch(format!(
                    "partial batch header at position {position} of {}",
                    self.size_bytes
                )));
            }
            self.chunk.resize(length as usize, 0);
            self.file.read_exact_at(&mut self.chunk, position)?;
            self.chunk_start = position;
        }
        let at = (position - self.chunk_start) as usize;
        let header = BatchHeader::parse(&self.chunk[at..])?;
        if position + header.total_bytes() as u64 > self.size_bytes {
            return Err(StorageError::CorruptBatch(format!(
                "batch at position {position} ends past the segment end {}",
                self.size_bytes
            )));
        }
        Ok(header)
    }
}
