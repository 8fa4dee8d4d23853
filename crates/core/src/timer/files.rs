//! File I/O of the timer store: the payload segments (append, read, replay, delete) and the
//! bucket files (scan, append, cut). No policy here: the store decides what to write and when a
//! file may go.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::format::{self, Entry, Pos, ENTRY_BYTES, MARK_BYTES, RECORD_HEADER};
use super::{PAYLOAD_BYTES_MAX, SEGMENT_FILES_OPEN_MAX};
use crate::error::{CoreError, Result};

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsync a directory, so files created, renamed or deleted in it stay so after a crash.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The payload log: numbered segment files, the last one appended to.
pub(super) struct Segments {
    dir: PathBuf,
    segment_bytes: u32,
    active_id: u32,
    active: File,
    active_len: u32,
    /// Written since the last sync.
    dirty: bool,
    /// A segment was created since the last sync: the directory needs an fsync too.
    dir_dirty: bool,
    /// Segments opened for reads (never the active one), at most `SEGMENT_FILES_OPEN_MAX`.
    readers: HashMap<u32, File>,
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.log"))
}

/// Segment ids present in `dir`, ascending.
pub(super) fn segment_ids(dir: &Path) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".log").and_then(|s| s.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

impl Segments {
    /// Opens the segments in `dir` and replays every valid record from `from` on through
    /// `replay(position, due_ms, payload_len)`, cutting each segment at its first torn record.
    pub(super) fn open(
        dir: &Path,
        segment_bytes: u32,
        from: Pos,
        mut replay: impl FnMut(Pos, i64, u32) -> Result<()>,
    ) -> Result<Segments> {
        let ids = segment_ids(dir)?;
        for &id in ids.iter().filter(|&&id| id >= from.segment) {
            let start = if id == from.segment { from.offset } else { 0 };
            replay_segment(&segment_path(dir, id), id, start, &mut replay)?;
        }
        let (active_id, dir_dirty) = match ids.last() {
            Some(&last) if last >= from.segment => (last, false),
            Some(&last) => (last + 1, true),
            None => (from.segment.max(1), true),
        };
        let path = segment_path(dir, active_id);
        let active = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let len = active.metadata().map_err(io(&path))?.len();
        Ok(Segments {
            dir: dir.to_path_buf(),
            segment_bytes,
            active_id,
            active,
            active_len: u32::try_from(len).unwrap_or(u32::MAX),
            dirty: true,
            dir_dirty,
            readers: HashMap::new(),
        })
    }

    /// Where the next record goes.
    pub(super) fn end(&self) -> Pos {
        Pos {
            segment: self.active_id,
            offset: self.active_len,
        }
    }

    pub(super) fn active_id(&self) -> u32 {
        self.active_id
    }

    /// Appends one record; returns its position and whether a new segment was started for it
    /// (the previous one is fdatasync'ed first, so a torn record can only be in the last one).
    pub(super) fn append(&mut self, due_ms: i64, payload: &[u8]) -> Result<(Pos, bool)> {
        let size = (RECORD_HEADER + payload.len()) as u64;
        let mut rolled = false;
        if self.active_len > 0 && u64::from(self.active_len) + size > u64::from(self.segment_bytes)
        {
            self.roll()?;
            rolled = true;
        }
        let pos = self.end();
        let header = format::encode_record_header(due_ms, payload);
        let path = segment_path(&self.dir, self.active_id);
        let mut buf = Vec::with_capacity(size as usize);
        buf.extend_from_slice(&header);
        buf.extend_from_slice(payload);
        self.active.write_all(&buf).map_err(io(&path))?;
        self.active_len += size as u32;
        self.dirty = true;
        Ok((pos, rolled))
    }

    fn roll(&mut self) -> Result<()> {
        self.sync()?;
        let id = self.active_id + 1;
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.active = file;
        self.active_id = id;
        self.active_len = 0;
        self.dir_dirty = true;
        Ok(())
    }

    /// fdatasync what was appended since the last sync (and the directory after a roll).
    pub(super) fn sync(&mut self) -> Result<()> {
        if self.dirty {
            let path = segment_path(&self.dir, self.active_id);
            self.active.sync_data().map_err(io(&path))?;
            self.dirty = false;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// The payload of the record at `pos`, or `None` when it is not there intact (a corrupt or
    /// missing segment: the caller reports it and drops the timer rather than stop firing).
    pub(super) fn read(&mut self, pos: Pos, len: u32) -> Result<Option<Bytes>> {
        let mut buf = vec![0u8; RECORD_HEADER + len as usize];
        let read = if pos.segment == self.active_id {
            self.active.read_exact_at(&mut buf, u64::from(pos.offset))
        } else {
            if !self.readers.contains_key(&pos.segment) {
                if self.readers.len() >= SEGMENT_FILES_OPEN_MAX {
                    self.readers.clear();
                }
                match File::open(segment_path(&self.dir, pos.segment)) {
                    Ok(file) => {
                        self.readers.insert(pos.segment, file);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io(&segment_path(&self.dir, pos.segment))(e)),
                }
            }
            self.readers[&pos.segment].read_exact_at(&mut buf, u64::from(pos.offset))
        };
        match read {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io(&segment_path(&self.dir, pos.segment))(e)),
        }
        let (stored_len, _) = format::decode_record_header(&buf[..RECORD_HEADER]);
        if stored_len != len || !format::record_valid(&buf[..RECORD_HEADER], &buf[RECORD_HEADER..])
        {
            return Ok(None);
        }
        Ok(Some(Bytes::from(buf).slice(RECORD_HEADER..)))
    }

    /// Removes a segment no timer refers to any more. Not the active one.
    pub(super) fn delete(&mut self, id: u32) -> Result<()> {
        debug_assert_ne!(id, self.active_id);
        self.readers.remove(&id);
        let path = segment_path(&self.dir, id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }
}

/// Walks one segment from `start`, handing each intact record to `replay`; cuts the file at the
/// first torn one.
fn replay_segment(
    path: &Path,
    id: u32,
    start: u32,
    replay: &mut impl FnMut(Pos, i64, u32) -> Result<()>,
) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let file_len = file.metadata().map_err(io(path))?.len();
    if u64::from(start) >= file_len {
        return Ok(());
    }
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    std::io::copy(
        &mut (&mut reader).take(u64::from(start)),
        &mut std::io::sink(),
    )
    .map_err(io(path))?;
    let mut offset = u64::from(start);
    let mut header = [0u8; RECORD_HEADER];
    let mut payload = Vec::new();
    loop {
        if offset == file_len {
            return Ok(());
        }
        let intact = read_full(&mut reader, &mut header).map_err(io(path))? && {
            let (len, _) = format::decode_record_header(&header);
            (len as usize) <= PAYLOAD_BYTES_MAX && {
                payload.resize(len as usize, 0);
                read_full(&mut reader, &mut payload).map_err(io(path))?
                    && format::record_valid(&header, &payload)
            }
        };
        if !intact || offset > u64::from(u32::MAX) {
            tracing::warn!(path = %path.display(), offset, file_len, "timer log: cutting a torn tail");
            file.set_len(offset).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
            return Ok(());
        }
        let (len, due_ms) = format::decode_record_header(&header);
        let pos = Pos {
            segment: id,
            offset: offset as u32,
        };
        replay(pos, due_ms, len)?;
        offset += (RECORD_HEADER + len as usize) as u64;
    }
}

/// Fills `buf`; false when the input ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn bucket_path(dir: &Path, bucket_ms: i64, ext: &str) -> PathBuf {
    dir.join(format!("{bucket_ms}.{ext}"))
}

/// Bucket starts with a file of extension `ext` in `dir`.
pub(super) fn bucket_starts(dir: &Path, ext: &str) -> Result<Vec<i64>> {
    let mut starts = Vec::new();
    let suffix = format!(".{ext}");
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(start) = name.strip_suffix(&suffix).and_then(|s| s.parse().ok()) {
            starts.push(start);
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Streams a bucket file's entries (index, entry) while `keep` accepts them; stops at the first
/// torn entry or the first one `keep` refuses. Returns how many were accepted and the file's
/// length in entries' bytes, so the caller can cut what follows.
pub(super) fn scan_entries(
    path: &Path,
    mut keep: impl FnMut(u32, &Entry) -> bool,
) -> Result<(u32, u64)> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(io(path)(e)),
    };
    let len = file.metadata().map_err(io(path))?.len();
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let mut buf = [0u8; ENTRY_BYTES];
    let mut index: u32 = 0;
    while read_full(&mut reader, &mut buf).map_err(io(path))? {
        match format::decode_entry(&buf) {
            Some(entry) if keep(index, &entry) => index += 1,
            _ => break,
        }
    }
    Ok((index, len))
}

/// Cuts a bucket file to its first `entries` entries.
pub(super) fn cut_entries(path: &Path, entries: u32) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    file.set_len(u64::from(entries) * ENTRY_BYTES as u64)
        .map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// The fired marks of a bucket, up to the first torn one.
pub(super) fn read_marks(path: &Path) -> Result<Vec<u32>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    Ok(bytes
        .chunks(MARK_BYTES)
        .map_while(format::decode_mark)
        .collect())
}

/// The fired marks of a bucket, cutting the file after the last intact one: later marks are
/// appended, and must not land behind a torn one, where no read would find them.
pub(super) fn read_marks_and_cut(path: &Path) -> Result<Vec<u32>> {
    let marks = read_marks(path)?;
    let valid = (marks.len() * MARK_BYTES) as u64;
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() != valid => {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io(path))?;
            file.set_len(valid).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
        }
        _ => {}
    }
    Ok(marks)
}

/// Replaces a fired-marks file with exactly `marks` (after recovery dropped some), durably.
pub(super) fn rewrite_marks(dir: &Path, path: &Path, marks: &[u32]) -> Result<()> {
    let tmp = path.with_extension("fired.tmp");
    let mut bytes = Vec::with_capacity(marks.len() * MARK_BYTES);
    for &m in marks {
        bytes.extend_from_slice(&format::encode_mark(m));
    }
    write_durably(dir, &tmp, path, &bytes)
}

/// Writes `bytes` to `tmp`, fdatasyncs it and renames it over `path`, then syncs `dir`.
pub(super) fn write_durably(dir: &Path, tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(tmp).map_err(io(tmp))?;
    file.write_all(bytes).map_err(io(tmp))?;
    file.sync_data().map_err(io(tmp))?;
    std::fs::rename(tmp, path).map_err(io(path))?;
    sync_dir(dir)
}

/// Opens (creating) a file for appends.
pub(super) fn open_append(path: &Path) -> Result<(File, bool)> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    Ok((file, !existed))
}

pub(super) fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}
