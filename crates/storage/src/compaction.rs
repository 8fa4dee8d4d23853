//! Log compaction (Kafka's log cleaner) for `cleanup_policy` `Compact` / `CompactDelete`.
//!
//! One run (`Log::compact`):
//! 1. Cleanable segments: the non-active prefix of segments wholly below the high watermark
//!    whose largest timestamp is at least `min_compaction_lag_ms` old. The first segment that
//!    fails ends the prefix, so a record within the lag is never rewritten.
//! 2. Key map: one scan of the whole log below the high watermark (active segment included)
//!    maps a 128-bit hash of each key to its highest offset. It holds at most
//!    `key_map_bytes_max / KEY_MAP_ENTRY_BYTES` keys; when the keys do not fit, the run splits
//!    them by hash into buckets and does one pass (scan + clean) per bucket.
//! 3. Clean: each cleanable segment is decided batch by batch; a record goes when its key's
//!    map offset is higher (a later record supersedes it), or when it is the key's latest
//!    record, a tombstone (null value), and its timestamp is `delete_retention_ms` old. Kept:
//!    keyless records and control batches (transaction markers). The last batch of each
//!    idempotent producer is filtered like any other, but never dropped: emptied, it stays as
//!    a header-only batch (`recordsCount` 0, Kafka's `RETAIN_EMPTY`) so the producer's epoch
//!    and last sequence survive a restart; it goes once the producer writes a later batch. A
//!    segment with nothing to remove is not rewritten; a changed batch is re-encoded with the
//!    same codec, offsets, producer fields, base sequence and timestamp type.
//! 4. Swap, per segment `X`, crash-safe: write `X.{log,index,timeindex}.cleaned` and fsync
//!    them; rename the indexes then the log to `.swap` and fsync the directory (the commit
//!    point: recovery completes any `X.log.swap`, and deletes any `.cleaned`); then, holding
//!    the old segment's mutex, pin its open log file for readers still using it, evict its
//!    paths from the `FileCache`, rename the `.swap` files over the old ones (indexes first,
//!    log last), fsync the directory, and install the new segment in the log.
//!
//! Offsets never change, so a compacted log has gaps; readers find the next batch at or after
//! an offset. A segment emptied by compaction stays as empty files covering its offset range.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};

use crate::config::LogConfig;
use crate::file_cache::FileCache;
use crate::limits;
use crate::offset_index::OffsetIndex;
use crate::record_batch::{self, BatchHeader, HEADER_BYTES};
use crate::recovery::swap_path;
use crate::segment::{
    decode_batch, file_path, Segment, SegmentState, LOG_SUFFIX, OFFSET_INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
};
use crate::time_index::TimeIndex;
use crate::{Offset, StorageError};

/// Suffix of a cleaned segment's files while they are written; recovery deletes leftovers.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment's files once complete; recovery finishes the swap.
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// Bounds on one compaction run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanerLimits {
    /// Memory of the key → offset map. When the log holds more distinct keys than fit, the run
    /// splits the keys by hash and reads the log once per split.
    pub key_map_bytes_max: usize,
    /// Reads plus writes per second; the cleaner sleeps to stay under it. 0: unthrottled.
    pub io_bytes_per_sec: u64,
}

impl Default for CleanerLimits {
    fn default() -> Self {
        CleanerLimits {
            key_map_bytes_max: limits::KEY_MAP_BYTES_DEFAULT,
            io_bytes_per_sec: limits::CLEANER_IO_BYTES_PER_SEC_DEFAULT,
        }
    }
}

/// What one `Log::compact` run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Key-hash buckets processed (1 when every key fit in the map).
    pub passes: u32,
    /// Segments rewritten (a segment rewritten in two passes counts twice).
    pub segments_cleaned: u64,
    /// Records removed because a later record has the same key.
    pub records_superseded: u64,
    /// Tombstones removed after `delete_retention_ms`.
    pub tombstones_removed: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes the rewritten segments shrank by.
    pub bytes_freed: u64,
}

/// Where a test stops a run, leaving the files a crash there would leave.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanerCrashPoint {
    /// The three `.cleaned` files are written and fsync'ed.
    CleanedWritten,
    /// The two indexes are renamed to `.swap`, the log is still `.cleaned`.
    IndexesSwapped,
    /// All three are `.swap` and the directory is fsync'ed: the commit point.
    SwapDurable,
    /// The two indexes replaced the old ones; `X.log.swap` remains.
    IndexesReplaced,
    /// Every file replaced; the in-memory segment list not yet updated.
    LogReplaced,
}

/// Everything a run needs besides the segments.
pub(crate) struct Cleaner<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) files: &'a FileCache,
    pub(crate) config: &'a LogConfig,
    pub(crate) now_ms: i64,
    pub(crate) limits: CleanerLimits,
    pub(crate) high_watermark: Offset,
    pub(crate) crash_point: Option<CleanerCrashPoint>,
}

/// Number of leading non-active segments a run may rewrite (step 1).
pub(crate) fn cleanable_count(
    segments: &[Arc<Segment>],
    high_watermark: Offset,
    now_ms: i64,
    config: &LogConfig,
) -> usize {
    let lag_cutoff = match config.min_compaction_lag_ms {
        0 => i64::MAX,
        lag => now_ms.saturating_sub(lag.min(i64::MAX as u64) as i64),
    };
    let inactive = &segments[..segments.len().saturating_sub(1)];
    inactive
        .iter()
        .take_while(|s| {
            let snapshot = s.snapshot();
            snapshot.next_offset <= high_watermark && snapshot.max_timestamp <= lag_cutoff
        })
        .count()
}

/// Keys of one pass: those whose hash is `residue` modulo `modulus`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    modulus: u64,
    residue: u64,
}

/// 128 bits from two differently seeded SipHashes: collisions (which would drop a record
/// wrongly) are as unlikely as with Kafka's MD5 map. Only compared within one run.
fn key_hash(key: &[u8]) -> u128 {
    let mut first = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut first);
    let mut second = std::collections::hash_map::DefaultHasher::new();
    0x9e37_79b9_7f4a_7c15u64.hash(&mut second);
    key.hash(&mut second);
    ((first.finish() as u128) << 64) | second.finish() as u128
}

impl Bucket {
    fn holds(&self, hash: u128) -> bool {
        (hash as u64) % self.modulus == self.residue
    }
}

/// Sleeps so bytes moved stay under the configured rate.
struct Throttle {
    start: Instant,
    bytes: u64,
    bytes_per_sec: u64,
}

impl Throttle {
    fn account(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.bytes_per_sec == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Whole batches of a segment below a size snapshot, read in chunks.
struct BatchWalker {
    file: Arc<File>,
    size_bytes: u64,
    position: u64,
    chunk: Bytes,
    chunk_start: u64,
}

impl BatchWalker {
    fn new(segment: &Segment, files: &FileCache) -> Result<BatchWalker, StorageError> {
        let (file, size_bytes) = segment.log_file_and_size(files)?;
        Ok(BatchWalker {
            file,
            size_bytes,
            position: 0,
            chunk: Bytes::new(),
            chunk_start: 0,
        })
    }

    /// The next batch (header and its whole bytes), or `None` at the end.
    fn next(
        &mut self,
        throttle: &mut Throttle,
    ) -> Result<Option<(BatchHeader, Bytes)>, StorageError> {
        if self.position >= self.size_bytes {
            return Ok(None);
        }
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if self.position + HEADER_BYTES as u64 > chunk_end {
            self.fill(HEADER_BYTES as u64, throttle)?;
        }
        let at = (self.position - self.chunk_start) as usize;
        let header = BatchHeader::parse(&self.chunk[at..])?;
        let total = header.total_bytes() as u64;
        if self.position + total > self.size_bytes {
            return Err(StorageError::CorruptBatch(format!(
                "batch at position {} ends past the segment end {}",
                self.position, self.size_bytes
            )));
        }
        if self.position + total > self.chunk_start + self.chunk.len() as u64 {
            self.fill(total, throttle)?;
        }
        let at = (self.position - self.chunk_start) as usize;
        let bytes = self.chunk.slice(at..at + total as usize);
        self.position += total;
        Ok(Some((header, bytes)))
    }

    fn fill(&mut self, at_least: u64, throttle: &mut Throttle) -> Result<(), StorageError> {
        let length = (limits::CLEANER_READ_CHUNK_BYTES as u64)
            .max(at_least)
            .min(self.size_bytes - self.position);
        if length < at_least {
            return Err(StorageError::CorruptBatch(format!(
                "partial batch at position {} of {}",
                self.position, self.size_bytes
            )));
        }
        let mut chunk = BytesMut::zeroed(length as usize);
        self.file.read_exact_at(&mut chunk, self.position)?;
        throttle.account(length);
        self.chunk = chunk.freeze();
        self.chunk_start = self.position;
        Ok(())
    }
}

/// Runs steps 2–4 over `segments` (the whole log, active last), of which the first
/// `cleanable` may be rewritten. `install(old, new)` puts a swapped segment in the log and
/// returns the handle to use from then on.
pub(crate) fn compact(
    cleaner: &Cleaner<'_>,
    mut segments: Vec<Arc<Segment>>,
    cleanable: usize,
    install: &mut dyn FnMut(&Arc<Segment>, Segment) -> Arc<Segment>,
) -> Result<CompactionStats, StorageError> {
    assert!(
        cleanable < segments.len(),
        "the active segment is never cleaned"
    );
    let mut stats = CompactionStats::default();
    let mut throttle = Throttle {
        start: Instant::now(),
        bytes: 0,
        bytes_per_sec: cleaner.limits.io_bytes_per_sec,
    };
    let entries_max = (cleaner.limits.key_map_bytes_max / limits::KEY_MAP_ENTRY_BYTES).max(1);
    let mut work = vec![Bucket {
        modulus: 1,
        residue: 0,
    }];
    while let Some(bucket) = work.pop() {
        let mut producers = HashMap::new();
        let Some(key_map) = build_key_map(
            cleaner,
            &segments,
            bucket,
            entries_max,
            &mut producers,
            &mut throttle,
        )?
        else {
            if bucket.modulus * 2 > limits::CLEANER_PASSES_MAX {
                tracing::warn!(dir = %cleaner.dir.display(), "too many keys for the cleaner's key map; stopping this run");
                break;
            }
            let modulus = bucket.modulus * 2;
            work.push(Bucket {
                modulus,
                residue: bucket.residue + bucket.modulus,
            });
            work.push(Bucket {
                modulus,
                residue: bucket.residue,
            });
            continue;
        };
        stats.passes += 1;
        let decider = Decider {
            cleaner,
            bucket,
            key_map: &key_map,
            producers: &producers,
        };
        for segment in segments.iter_mut().take(cleanable) {
            let mut dry = CompactionStats::default();
            if !clean_segment(&decider, segment, None, &mut dry, &mut throttle)? {
                continue;
            }
            stats.records_superseded += dry.records_superseded;
            stats.tombstones_removed += dry.tombstones_removed;
            let before = segment.snapshot().size_bytes;
            let mut output = Output::create(cleaner, segment)?;
            clean_segment(
                &decider,
                segment,
                Some(&mut output),
                &mut CompactionStats::default(),
                &mut throttle,
            )?;
            stats.bytes_written += output.state.size_bytes;
            stats.bytes_freed += before.saturating_sub(output.state.size_bytes);
            let cleaned = output.swap(cleaner, segment, &mut throttle)?;
            *segment = install(segment, cleaned);
            stats.segments_cleaned += 1;
        }
    }
    stats.bytes_read = throttle.bytes.saturating_sub(stats.bytes_written);
    Ok(stats)
}

/// Step 2 for one bucket: key hash → highest offset below the high watermark; `None` when
/// more than `entries_max` keys. Also notes each idempotent producer's last batch.
fn build_key_map(
    cleaner: &Cleaner<'_>,
    segments: &[Arc<Segment>],
    bucket: Bucket,
    entries_max: usize,
    producers: &mut HashMap<i64, Offset>,
    throttle: &mut Throttle,
) -> Result<Option<HashMap<u128, Offset>>, StorageError> {
    let mut key_map: HashMap<u128, Offset> = HashMap::new();
    for segment in segments {
        let mut walker = BatchWalker::new(segment, cleaner.files)?;
        while let Some((header, bytes)) = walker.next(throttle)? {
            if header.base_offset >= cleaner.high_watermark {
                return Ok(Some(key_map));
            }
            if header.producer_id >= 0 {
                producers.insert(header.producer_id, header.base_offset);
            }
            if header.is_control() {
                continue;
            }
            for record in decode_batch(bytes)?.records {
                let Some(key) = &record.key else { continue };
                let hash = key_hash(key);
                if bucket.holds(hash) && record.offset < cleaner.high_watermark {
                    key_map.insert(hash, record.offset);
                    if key_map.len() > entries_max {
                        return Ok(None);
                    }
                }
            }
        }
    }
    Ok(Some(key_map))
}

/// Step 3's rules for one pass.
struct Decider<'a> {
    cleaner: &'a Cleaner<'a>,
    bucket: Bucket,
    key_map: &'a HashMap<u128, Offset>,
    producers: &'a HashMap<i64, Offset>,
}

enum BatchFate {
    Keep,
    Drop,
    /// Every record goes, but the batch is a producer's last: keep its header only.
    Empty,
    Rewrite(Vec<Record>, kafka_protocol::records::Compression),
}

impl Decider<'_> {
    fn decide(
        &self,
        header: &BatchHeader,
        bytes: &Bytes,
        stats: &mut CompactionStats,
    ) -> Result<BatchFate, StorageError> {
        if header.is_control() {
            return Ok(BatchFate::Keep);
        }
        let producers_last = header.producer_id >= 0
            && self.producers.get(&header.producer_id) == Some(&header.base_offset);
        let set = decode_batch(bytes.clone())?;
        let count = set.records.len();
        let tombstone_cutoff = self
            .cleaner
            .now_ms
            .saturating_sub(self.cleaner.config.delete_retention_ms.min(i64::MAX as u64) as i64);
        let kept: Vec<Record> = set
            .records
            .into_iter()
            .filter(|record| {
                let Some(key) = &record.key else {
                    return true;
                };
                let hash = key_hash(key);
                if !self.bucket.holds(hash) {
                    return true;
                }
                if self
                    .key_map
                    .get(&hash)
                    .is_some_and(|&latest| latest > record.offset)
                {
                    stats.records_superseded += 1;
                    return false;
                }
                let timestamp = if header.is_log_append_time() {
                    header.max_timestamp
                } else {
                    record.timestamp
                };
                if record.value.is_none() && timestamp <= tombstone_cutoff {
                    stats.tombstones_removed += 1;
                    return false;
                }
                true
            })
            .collect();
        Ok(match kept.len() {
            n if n == count && (n > 0 || producers_last) => BatchFate::Keep,
            0 if producers_last => BatchFate::Empty,
            0 => BatchFate::Drop,
            _ => BatchFate::Rewrite(kept, set.compression),
        })
    }
}

/// Decides every batch of `segment`; with `output`, writes what survives. Returns whether
/// anything is removed.
fn clean_segment(
    decider: &Decider<'_>,
    segment: &Segment,
    mut output: Option<&mut Output>,
    stats: &mut CompactionStats,
    throttle: &mut Throttle,
) -> Result<bool, StorageError> {
    let mut changed = false;
    let mut walker = BatchWalker::new(segment, decider.cleaner.files)?;
    while let Some((header, bytes)) = walker.next(throttle)? {
        let fate = decider.decide(&header, &bytes, stats)?;
        changed |= !matches!(fate, BatchFate::Keep);
        let Some(output) = output.as_deref_mut() else {
            continue;
        };
        match fate {
            BatchFate::Keep => output.push(&header, &bytes, decider.cleaner, throttle)?,
            BatchFate::Drop => {}
            BatchFate::Empty => {
                let (empty, empty_header) = record_batch::encode_empty(&header);
                assert_eq!(empty_header.last_offset(), header.last_offset());
                output.push(&empty_header, &empty, decider.cleaner, throttle)?;
            }
            BatchFate::Rewrite(records, compression) => {
                let mut buffer = BytesMut::new();
                RecordBatchEncoder::encode(
                    &mut buffer,
                    &records,
                    &RecordEncodeOptions {
                        version: 2,
                        compression,
                    },
                )
                .map_err(|e| StorageError::CorruptBatch(format!("re-encoding records: {e}")))?;
                let rewritten = record_batch::restore_header_fields(&mut buffer, &header);
                assert_eq!(rewritten.base_offset, records[0].offset);
                assert_eq!(rewritten.records_count as usize, records.len());
                output.push(&rewritten, &buffer, decider.cleaner, throttle)?;
            }
        }
    }
    Ok(changed)
}

/// A cleaned segment being written under `.cleaned` names.
struct Output {
    base_offset: Offset,
    /// The old segment's end: the cleaned one covers the same offsets.
    next_offset: Offset,
    log_path: PathBuf,
    log_file: Arc<File>,
    state: SegmentState,
    buffer: Vec<u8>,
    /// Bytes of `state.size_bytes` already written to the file.
    written: u64,
}

fn cleaned_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(CLEANED_SUFFIX);
    name.into()
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl Output {
    fn create(cleaner: &Cleaner<'_>, old: &Segment) -> Result<Output, StorageError> {
        let base_offset = old.base_offset();
        let path = |suffix| cleaned_path(&file_path(cleaner.dir, base_offset, suffix));
        let log_path = path(LOG_SUFFIX);
        let log_file = cleaner.files.create(&log_path)?;
        log_file.set_len(0)?;
        let state = SegmentState::empty(
            base_offset,
            OffsetIndex::create(path(OFFSET_INDEX_SUFFIX), cleaner.files)?,
            TimeIndex::create(path(TIME_INDEX_SUFFIX), cleaner.files)?,
        );
        Ok(Output {
            base_offset,
            next_offset: old.snapshot().next_offset,
            log_path,
            log_file,
            state,
            buffer: Vec::new(),
            written: 0,
        })
    }

    fn push(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        cleaner: &Cleaner<'_>,
        throttle: &mut Throttle,
    ) -> Result<(), StorageError> {
        debug_assert_eq!(header.total_bytes(), bytes.len());
        let position = self.state.size_bytes;
        self.state.record_batch(
            self.base_offset,
            position,
            header,
            cleaner.config.index_interval_bytes,
        );
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= limits::CLEANER_WRITE_CHUNK_BYTES {
            self.write_buffer(throttle)?;
        }
        Ok(())
    }

    fn write_buffer(&mut self, throttle: &mut Throttle) -> Result<(), StorageError> {
        self.log_file.write_all_at(&self.buffer, self.written)?;
        self.written += self.buffer.len() as u64;
        throttle.account(self.buffer.len() as u64);
        self.buffer.clear();
        Ok(())
    }

    /// Step 4: makes the cleaned files durable, commits them as `.swap`, and replaces the old
    /// segment's files. Returns the new segment, to be installed by the caller.
    fn swap(
        mut self,
        cleaner: &Cleaner<'_>,
        old: &Segment,
        throttle: &mut Throttle,
    ) -> Result<Segment, StorageError> {
        let files = cleaner.files;
        let crash = |point| {
            if cleaner.crash_point == Some(point) {
                Err(StorageError::Io(std::io::Error::other(format!(
                    "simulated crash at {point:?}"
                ))))
            } else {
                Ok(())
            }
        };
        self.write_buffer(throttle)?;
        assert_eq!(self.written, self.state.size_bytes);
        assert!(
            self.state.next_offset <= self.next_offset,
            "cleaning only removes"
        );
        self.state.next_offset = self.next_offset;
        let end = self.state.relative(self.base_offset, self.next_offset);
        self.state.push_time_entry(end);
        let mut state = self.state;
        state.offset_index.write_pending(files)?;
        state.time_index.write_pending(files)?;
        let cleaned = [
            state.offset_index.path().to_path_buf(),
            state.time_index.path().to_path_buf(),
            self.log_path.clone(),
        ];
        for path in &cleaned {
            files.get(path)?.sync_all()?;
            files.evict(path);
        }
        crash(CleanerCrashPoint::CleanedWritten)?;

        let finals: Vec<PathBuf> = [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX]
            .iter()
            .map(|suffix| file_path(cleaner.dir, self.base_offset, suffix))
            .collect();
        for (cleaned_path, final_path) in cleaned.iter().zip(&finals).take(2) {
            fs::rename(cleaned_path, swap_path(final_path))?;
        }
        crash(CleanerCrashPoint::IndexesSwapped)?;
        sync_dir(cleaner.dir)?;
        fs::rename(&cleaned[2], swap_path(&finals[2]))?;
        sync_dir(cleaner.dir)?;
        crash(CleanerCrashPoint::SwapDurable)?;

        old.retire(files, || {
            for final_path in &finals[..2] {
                fs::rename(swap_path(final_path), final_path)?;
            }
            crash(CleanerCrashPoint::IndexesReplaced)?;
            fs::rename(swap_path(&finals[2]), &finals[2])?;
            Ok(())
        })?;
        sync_dir(cleaner.dir)?;
        crash(CleanerCrashPoint::LogReplaced)?;
        state.offset_index.set_path(finals[0].clone());
        state.time_index.set_path(finals[1].clone());
        tracing::debug!(dir = %cleaner.dir.display(), segment = self.base_offset, bytes = state.size_bytes, "swapped in cleaned segment");
        Ok(Segment::from_state(cleaner.dir, self.base_offset, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_keys_disjointly() {
        let hashes: Vec<u128> = (0..1000u32).map(|i| key_hash(&i.to_be_bytes())).collect();
        let halves = [
            Bucket {
                modulus: 2,
                residue: 0,
            },
            Bucket {
                modulus: 2,
                residue: 1,
            },
        ];
        for hash in &hashes {
            assert_eq!(halves.iter().filter(|b| b.holds(*hash)).count(), 1);
        }
        let zero = hashes.iter().filter(|h| halves[0].holds(**h)).count();
        assert!((400..600).contains(&zero), "hash spreads keys: {zero}");
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
    }
}
