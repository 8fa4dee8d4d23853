//! Brings a log directory back to a consistent state in named passes (STYLE.md §7). The log
//! files are the truth; indexes are checked and rebuilt from them when they do not make sense.
//!
//! 1. `remove_temp_files`: interrupted checkpoint writes and interrupted cleans (`*.cleaned`);
//!    then `complete_swaps`: a durable `X.log.swap` means a clean was committed, so its files
//!    replace segment `X`'s (see `compaction`).
//! 2. `list_segments`: `.log` files by base offset; orphan index files go.
//! 3. `load_segment`: per segment, check the indexes (size, order, last entry points at a batch
//!    with that offset) or rebuild them. The last segment is walked from its last index entry to
//!    find the log end; after a crash that walk also checks every CRC and cuts the torn tail.
//!    After a crash every other segment is walked too, from where its two indexes agree: a roll
//!    leaves the old segment's fdatasyncs to a background thread, so a power loss can leave a
//!    rolled segment's indexes (or the tail of its data, never acknowledged) short.
//! 4. `apply_log_start`: drop segments wholly below the checkpointed log start.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::checkpoint::{self, TEMP_SUFFIX};
use crate::compaction::{CLEANED_SUFFIX, SWAP_SUFFIX};
use crate::config::LogConfig;
use crate::file_cache::FileCache;
use crate::index_file::IndexFile;
use crate::limits;
use crate::offset_index::{self, OffsetIndex};
use crate::segment::{
    file_path, HeaderReader, Segment, SegmentState, LOG_SUFFIX, NO_TIMESTAMP, OFFSET_INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
};
use crate::time_index::{self, TimeIndex};
use crate::{Offset, StorageError};

pub(crate) struct Recovered {
    /// Sorted by base offset, never empty.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: Offset,
}

pub(crate) fn recover(
    dir: &Path,
    config: &LogConfig,
    files: &FileCache,
    after_crash: bool,
) -> Result<Recovered, StorageError> {
    fs::create_dir_all(dir)?;
    remove_temp_files(dir)?;
    complete_swaps(dir)?;
    let bases = list_segments(dir)?;
    let mut segments = Vec::with_capacity(bases.len());
    for (i, &base_offset) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        segments.push(load_segment(
            dir,
            base_offset,
            next_base,
            files,
            config,
            after_crash,
        )?);
    }
    let checkpointed = checkpoint::read_log_start_offset(dir)?;
    apply_log_start(dir, segments, checkpointed, files)
}

/// Pass 1.
fn remove_temp_files(dir: &Path) -> Result<(), StorageError> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.to_string_lossy();
        if name.ends_with(TEMP_SUFFIX) || name.ends_with(CLEANED_SUFFIX) {
            tracing::info!(path = %path.display(), "removing interrupted temp file");
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Pass 1, second half: finishes swaps a crash interrupted. The cleaner renames the index
/// `.swap` files before the log's, so an index `.swap` without its log `.swap` is an unfinished
/// rename and goes; with the log `.swap` present, each index takes its `.swap` version or, if
/// that is missing (already renamed, or the rename was lost), is deleted and later rebuilt from
/// the new log. The log is renamed last.
fn complete_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut swapped_logs = Vec::new();
    let mut swapped_indexes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(final_name) = name.strip_suffix(SWAP_SUFFIX) else {
            continue;
        };
        if final_name.ends_with(&format!(".{LOG_SUFFIX}")) {
            swapped_logs.push(dir.join(final_name));
        } else {
            swapped_indexes.push((path.clone(), dir.join(final_name)));
        }
    }
    if swapped_logs.is_empty() && swapped_indexes.is_empty() {
        return Ok(());
    }
    for log_path in &swapped_logs {
        for suffix in [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let index_path = log_path.with_extension(suffix);
            let index_swap = swap_path(&index_path);
            if index_swap.exists() {
                fs::rename(&index_swap, &index_path)?;
            } else {
                remove_if_present(&index_path)?;
            }
        }
        tracing::info!(path = %log_path.display(), "completing an interrupted segment swap");
        fs::rename(swap_path(log_path), log_path)?;
    }
    for (swap, final_path) in swapped_indexes {
        if swap.exists() && !swapped_logs.contains(&final_path.with_extension(LOG_SUFFIX)) {
            tracing::info!(path = %swap.display(), "removing an index of an unfinished swap");
            fs::remove_file(&swap)?;
        }
    }
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

pub(crate) fn swap_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(SWAP_SUFFIX);
    name.into()
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Pass 2: base offsets of `.log` files, sorted. Index files without a log are removed.
fn list_segments(dir: &Path) -> Result<Vec<Offset>, StorageError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let (Some(stem), Some(extension)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let Ok(base_offset) = stem.to_string_lossy().parse::<Offset>() else {
            continue;
        };
        match extension.to_string_lossy().as_ref() {
            LOG_SUFFIX if base_offset >= 0 => logs.push(base_offset),
            OFFSET_INDEX_SUFFIX | TIME_INDEX_SUFFIX => indexes.push((base_offset, path)),
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base_offset, path) in indexes {
        if logs.binary_search(&base_offset).is_err() {
            tracing::warn!(path = %path.display(), "removing index file without a log file");
            fs::remove_file(&path)?;
        }
    }
    Ok(logs)
}

/// Pass 3 for one segment. `next_base` is the next segment's base offset (`None` for the last).
fn load_segment(
    dir: &Path,
    base_offset: Offset,
    next_base: Option<Offset>,
    files: &FileCache,
    config: &LogConfig,
    after_crash: bool,
) -> Result<Segment, StorageError> {
    let log_path = file_path(dir, base_offset, LOG_SUFFIX);
    let log_file = files.get(&log_path)?;
    let file_bytes = log_file.metadata()?.len();
    let is_last = next_base.is_none();
    let checked = check_indexes(dir, base_offset, file_bytes, files)?;
    let (offset_index, time_index, rebuilt) = match checked {
        Some((mut offset_index, time_index)) => {
            if after_crash {
                cut_to_time_index(&mut offset_index, &time_index, files)?;
            }
            (offset_index, time_index, false)
        }
        None => {
            tracing::warn!(segment = base_offset, dir = %dir.display(), "rebuilding segment indexes");
            let offset_index =
                OffsetIndex::create(file_path(dir, base_offset, OFFSET_INDEX_SUFFIX), files)?;
            let time_index =
                TimeIndex::create(file_path(dir, base_offset, TIME_INDEX_SUFFIX), files)?;
            (offset_index, time_index, true)
        }
    };
    let start = offset_index.last();
    let mut state = SegmentState {
        retired: None,
        size_bytes: start.map_or(0, |e| e.position as u64),
        next_offset: base_offset + start.map_or(0, |e| e.relative_offset as i64),
        max_timestamp: time_index.last().map_or(NO_TIMESTAMP, |e| e.timestamp),
        first_append_ms: None,
        bytes_since_index_entry: 0,
        offset_index,
        time_index,
        recent: Default::default(),
    };
    if !rebuilt && !is_last && !after_crash {
        // A clean shutdown synced every index: trust the file size; offsets run to the next base.
        state.size_bytes = file_bytes;
        state.next_offset = next_base.expect("not last");
        return Ok(Segment::from_state(dir, base_offset, state));
    }
    // Walk from the last index entry (or the start) to the end: the last segment always (to
    // find the log end; cheap, at most an index interval after a clean close), any rebuilt
    // one, and after a crash every one (about one index interval each).
    let verify_crc = after_crash || rebuilt;
    let valid_bytes = scan_batches(
        &log_file,
        base_offset,
        &mut state,
        file_bytes,
        verify_crc,
        !is_last,
        config,
    )?;
    if valid_bytes < file_bytes {
        tracing::warn!(
            segment = base_offset,
            offset = state.next_offset,
            position = valid_bytes,
            bytes_cut = file_bytes - valid_bytes,
            dir = %dir.display(),
            "truncating log at the first invalid batch"
        );
        log_file.set_len(valid_bytes)?;
        log_file.sync_all()?;
    }
    // Time entries past the cut describe records that are gone.
    let end_relative = (state.next_offset - base_offset) as u32;
    let keep = state
        .time_index
        .partition_point(files, |e| e.relative_offset <= end_relative)?;
    if keep < state.time_index.len() {
        state.time_index.truncate(keep, files)?;
        state.max_timestamp = state
            .time_index
            .last()
            .map_or(NO_TIMESTAMP, |e| e.timestamp);
        rescan_max_timestamp(&log_file, &mut state)?;
    }
    if let Some(next_base) = next_base {
        if state.next_offset < next_base {
            // Compaction removed the segment's last records: its range still runs to the next.
            state.next_offset = next_base;
        } else if state.next_offset != next_base {
            tracing::warn!(
                segment = base_offset,
                next_offset = state.next_offset,
                next_base,
                "offset gap between segments"
            );
        }
    }
    state.push_time_entry(end_relative);
    state.offset_index.write_pending(files)?;
    state.time_index.write_pending(files)?;
    Ok(Segment::from_state(dir, base_offset, state))
}

/// After a crash the two index files may have reached the disk to different lengths (a rolled
/// segment's are fdatasync'ed after the roll). The walk starts at the offset index's last entry
/// and takes the time index's last timestamp as the maximum so far, so it must not start past
/// what the time index covers: cut the offset index back to its last entry at or before the
/// time index's last entry (all of it when the time index is empty, as after losing it).
fn cut_to_time_index(
    offset_index: &mut OffsetIndex,
    time_index: &TimeIndex,
    files: &FileCache,
) -> Result<(), StorageError> {
    let covered = time_index.last().map(|e| e.relative_offset);
    let keep = match covered {
        Some(covered) => offset_index.partition_point(files, |e| e.relative_offset <= covered)?,
        None => 0,
    };
    offset_index.truncate(keep, files)?;
    Ok(())
}

/// Loads both index files when they are sane; `None` means rebuild.
fn check_indexes(
    dir: &Path,
    base_offset: Offset,
    file_bytes: u64,
    files: &FileCache,
) -> Result<Option<(OffsetIndex, TimeIndex)>, StorageError> {
    let offset_index = IndexFile::open_checked(
        file_path(dir, base_offset, OFFSET_INDEX_SUFFIX),
        files,
        |e: &offset_index::OffsetEntry| (e.position as u64) < file_bytes,
        offset_index::in_order,
    )?;
    let time_index = IndexFile::open_checked(
        file_path(dir, base_offset, TIME_INDEX_SUFFIX),
        files,
        |_| true,
        time_index::in_order,
    )?;
    let (Some(offset_index), Some(time_index)) = (offset_index, time_index) else {
        return Ok(None);
    };
    if let Some(last) = offset_index.last() {
        let mut reader = HeaderReader::new(
            files.get(&file_path(dir, base_offset, LOG_SUFFIX))?,
            file_bytes,
        );
        match reader.header_at(last.position as u64) {
            Ok(header) if header.base_offset == base_offset + last.relative_offset as i64 => {}
            Ok(_) | Err(StorageError::CorruptBatch(_)) => return Ok(None),
            Err(error) => return Err(error),
        }
    }
    Ok(Some((offset_index, time_index)))
}

/// Walks whole batches from `state.size_bytes`, recording each into `state` (and its indexes),
/// and returns the end of the last valid one. A batch is valid when its header parses, it lies
/// within the file, its base offset continues the log (or, with `gaps_allowed`, for a compacted
/// segment, lies past it), and (if `verify_crc`) its CRC matches. The active segment is never
/// compacted, so it must be contiguous.
fn scan_batches(
    log_file: &std::fs::File,
    base_offset: Offset,
    state: &mut SegmentState,
    file_bytes: u64,
    verify_crc: bool,
    gaps_allowed: bool,
    config: &LogConfig,
) -> Result<u64, StorageError> {
    let readable_bytes = file_bytes.min(limits::SEGMENT_BYTES_MAX);
    let file = std::sync::Arc::new(log_file.try_clone()?);
    let mut reader = HeaderReader::new(file, readable_bytes);
    let mut position = state.size_bytes;
    while position < readable_bytes {
        let header = match reader.header_at(position) {
            Ok(header) => header,
            Err(StorageError::CorruptBatch(_)) => break,
            Err(error) => return Err(error),
        };
        let continues = header.base_offset == state.next_offset
            || (gaps_allowed && header.base_offset > state.next_offset);
        if !continues || header.last_offset() - base_offset > u32::MAX as i64 {
            break;
        }
        if verify_crc && !crc_matches(log_file, position, header.total_bytes() as u64, header.crc)?
        {
            break;
        }
        state.record_batch(base_offset, position, &header, config.index_interval_bytes);
        position += header.total_bytes() as u64;
    }
    debug_assert_eq!(position, state.size_bytes);
    Ok(position)
}

/// Same as `record_batch::compute_crc`, but streams the batch through CRC-32C in fixed chunks: a corrupt length never makes us allocate.
fn crc_matches(
    file: &std::fs::File,
    position: u64,
    total_bytes: u64,
    expected: u32,
) -> Result<bool, StorageError> {
    let mut crc = 0u32;
    let covered_start = position + 21;
    let end = position + total_bytes;
    let mut chunk = vec![0u8; limits::RECOVERY_CHUNK_BYTES];
    let mut at = covered_start;
    while at < end {
        let length = ((end - at) as usize).min(chunk.len());
        file.read_exact_at(&mut chunk[..length], at)?;
        crc = crc32c::crc32c_append(crc, &chunk[..length]);
        at += length as u64;
    }
    Ok(crc == expected)
}

/// After cutting time entries, the largest timestamp is recomputed from batch headers.
fn rescan_max_timestamp(
    log_file: &std::fs::File,
    state: &mut SegmentState,
) -> Result<(), StorageError> {
    let file = std::sync::Arc::new(log_file.try_clone()?);
    let mut reader = HeaderReader::new(file, state.size_bytes);
    let mut position = 0;
    let mut max_timestamp = NO_TIMESTAMP;
    while position < state.size_bytes {
        let header = reader.header_at(position)?;
        max_timestamp = max_timestamp.max(header.max_timestamp);
        position += header.total_bytes() as u64;
    }
    state.max_timestamp = max_timestamp;
    Ok(())
}

/// Pass 4: drop segments wholly below the checkpointed log start; start fresh at the log start
/// when it lies past everything that survived.
fn apply_log_start(
    dir: &Path,
    mut segments: Vec<Segment>,
    checkpointed: Option<Offset>,
    files: &FileCache,
) -> Result<Recovered, StorageError> {
    let first_base = segments.first().map_or(0, |s| s.base_offset());
    let log_start_offset = checkpointed.unwrap_or(first_base).max(first_base);
    while segments.len() > 1 && segments[1].base_offset() <= log_start_offset {
        let segment = segments.remove(0);
        tracing::info!(
            segment = segment.base_offset(),
            "deleting segment below the log start"
        );
        segment.delete_files(files)?;
    }
    let log_end_offset = segments.last().map(|s| s.snapshot().next_offset);
    if log_end_offset.is_none_or(|end| end < log_start_offset) {
        for segment in segments.drain(..) {
            segment.delete_files(files)?;
        }
        segments.push(Segment::create(dir, log_start_offset, files)?);
    }
    assert!(!segments.is_empty());
    assert!(segments[0].base_offset() <= log_start_offset);
    Ok(Recovered {
        segments,
        log_start_offset,
    })
}
