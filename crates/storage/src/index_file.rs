//! The storage shared by the two sparse indexes: fixed-size entries appended to a file, the
//! newest ones buffered in memory until `write_pending` (flush, roll, close).
//!
//! Lookups binary-search with one positional read per probe, so an old segment's index is never
//! loaded into memory. Entries carry no checksum: after a crash recovery checks them and rebuilds
//! from the log when they do not make sense.

use std::fmt::Debug;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::file_cache::FileCache;

/// One fixed-size entry of an index file.
pub(crate) trait IndexEntry: Copy + Debug + PartialEq {
    const BYTES: usize;
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Self;
}

#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    path: PathBuf,
    /// Entries already written to the file.
    entries_on_disk: u64,
    /// Entries appended since the last `write_pending`, after those on disk.
    pending: Vec<E>,
    last: Option<E>,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Creates (or empties) the index file.
    pub(crate) fn create(path: PathBuf, files: &FileCache) -> io::Result<IndexFile<E>> {
        files.create(&path)?.set_len(0)?;
        Ok(IndexFile {
            path,
            entries_on_disk: 0,
            pending: Vec::new(),
            last: None,
        })
    }

    /// An index over a file that exists and is empty (a spare segment's, just renamed): no I/O.
    pub(crate) fn empty(path: PathBuf) -> IndexFile<E> {
        IndexFile {
            path,
            entries_on_disk: 0,
            pending: Vec::new(),
            last: None,
        }
    }

    /// Reads the whole file and returns it when its size is a multiple of the entry size and
    /// `in_order(previous, next)` holds for every pair; `Ok(None)` when it is missing or not sane.
    /// Only recovery calls this; lookups never load the file.
    pub(crate) fn open_checked(
        path: PathBuf,
        files: &FileCache,
        entry_ok: impl Fn(&E) -> bool,
        in_order: impl Fn(&E, &E) -> bool,
    ) -> io::Result<Option<IndexFile<E>>> {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        if bytes.len() % E::BYTES != 0 {
            return Ok(None);
        }
        let mut last: Option<E> = None;
        for chunk in bytes.chunks_exact(E::BYTES) {
            let entry = E::decode(chunk);
            if !entry_ok(&entry) || last.is_some_and(|previous| !in_order(&previous, &entry)) {
                return Ok(None);
            }
            last = Some(entry);
        }
        files.get(&path)?; // warm the cache; also proves the file is writable
        Ok(Some(IndexFile {
            path,
            entries_on_disk: (bytes.len() / E::BYTES) as u64,
            pending: Vec::new(),
            last,
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// After the file was renamed (compaction's swap); pending entries must be written first.
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        assert!(self.pending.is_empty(), "rename only a written index");
        self.path = path;
    }

    pub(crate) fn len(&self) -> u64 {
        self.entries_on_disk + self.pending.len() as u64
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.last
    }

    pub(crate) fn push(&mut self, entry: E) {
        self.pending.push(entry);
        self.last = Some(entry);
    }

    /// Drops entries from index `keep` on (recovery cuts the index where the log was cut).
    pub(crate) fn truncate(&mut self, keep: u64, files: &FileCache) -> io::Result<()> {
        if keep >= self.len() {
            return Ok(());
        }
        if keep >= self.entries_on_disk {
            self.pending
                .truncate((keep - self.entries_on_disk) as usize);
        } else {
            self.pending.clear();
            files.get(&self.path)?.set_len(keep * E::BYTES as u64)?;
            self.entries_on_disk = keep;
        }
        self.last = if keep == 0 {
            None
        } else {
            Some(self.entry(keep - 1, files)?)
        };
        Ok(())
    }

    pub(crate) fn entry(&self, index: u64, files: &FileCache) -> io::Result<E> {
        assert!(index < self.len(), "index entry {index} of {}", self.len());
        if index >= self.entries_on_disk {
            return Ok(self.pending[(index - self.entries_on_disk) as usize]);
        }
        let mut bytes = vec![0u8; E::BYTES];
        files
            .get(&self.path)?
            .read_exact_at(&mut bytes, index * E::BYTES as u64)?;
        Ok(E::decode(&bytes))
    }

    /// The last entry for which `at_or_before` holds, assuming it holds for a prefix of the
    /// entries (they are sorted). `None` when it holds for none.
    pub(crate) fn search(
        &self,
        files: &FileCache,
        at_or_before: impl Fn(&E) -> bool,
    ) -> io::Result<Option<E>> {
        match self.partition_point(files, at_or_before)? {
            0 => Ok(None),
            count => self.entry(count - 1, files).map(Some),
        }
    }

    /// Number of leading entries for which `at_or_before` holds (it must hold for a prefix).
    pub(crate) fn partition_point(
        &self,
        files: &FileCache,
        at_or_before: impl Fn(&E) -> bool,
    ) -> io::Result<u64> {
        // Invariant: entries [0, low) satisfy the predicate, entries [high, len) do not.
        let mut low = 0u64;
        let mut high = self.len();
        if let Some(first_pending) = self.pending.first() {
            if at_or_before(first_pending) {
                low = self.entries_on_disk; // the answer is in memory
            } else {
                high = self.entries_on_disk;
            }
        }
        while low < high {
            let middle = low + (high - low) / 2;
            if at_or_before(&self.entry(middle, files)?) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// Writes buffered entries at their place in the file (positional, no cursor).
    pub(crate) fn write_pending(&mut self, files: &FileCache) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(self.pending.len() * E::BYTES);
        for entry in &self.pending {
            bytes.extend_from_slice(&entry.encode());
        }
        files
            .get(&self.path)?
            .write_all_at(&bytes, self.entries_on_disk * E::BYTES as u64)?;
        self.entries_on_disk += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offset_index::OffsetEntry;

    fn entry(relative_offset: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position: relative_offset * 10,
        }
    }

    #[test]
    fn search_spans_disk_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileCache::new(4);
        let mut index = IndexFile::<OffsetEntry>::create(dir.path().join("i"), &files).unwrap();
        for relative_offset in [0, 5, 10, 20] {
            index.push(entry(relative_offset));
        }
        index.write_pending(&files).unwrap();
        for relative_offset in [30, 40] {
            index.push(entry(relative_offset));
        }
        let find = |target: u32| {
            index
                .search(&files, |e| e.relative_offset <= target)
                .unwrap()
                .map(|e| e.relative_offset)
        };
        assert_eq!(find(0), Some(0));
        assert_eq!(find(7), Some(5));
        assert_eq!(find(29), Some(20));
        assert_eq!(find(30), Some(30));
        assert_eq!(find(1000), Some(40));
        let empty = IndexFile::<OffsetEntry>::create(dir.path().join("e"), &files).unwrap();
        assert_eq!(empty.search(&files, |_| true).unwrap(), None);
    }

    #[test]
    fn open_checked_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileCache::new(4);
        let path = dir.path().join("i");
        let mut index = IndexFile::<OffsetEntry>::create(path.clone(), &files).unwrap();
        index.push(entry(1));
        index.push(entry(2));
        index.write_pending(&files).unwrap();
        let in_order = |a: &OffsetEntry, b: &OffsetEntry| a.relative_offset < b.relative_offset;
        let loaded = IndexFile::open_checked(path.clone(), &files, |_| true, in_order)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.last(), Some(entry(2)));
        // Not a multiple of the entry size.
        std::fs::write(&path, [0u8; 9]).unwrap();
        assert!(
            IndexFile::<OffsetEntry>::open_checked(path.clone(), &files, |_| true, in_order)
                .unwrap()
                .is_none()
        );
        // Out of order.
        let mut bytes = entry(5).encode();
        bytes.extend(entry(3).encode());
        std::fs::write(&path, bytes).unwrap();
        assert!(
            IndexFile::<OffsetEntry>::open_checked(path.clone(), &files, |_| true, in_order)
                .unwrap()
                .is_none()
        );
        // Missing.
        let missing = dir.path().join("missing");
        assert!(
            IndexFile::<OffsetEntry>::open_checked(missing, &files, |_| true, in_order)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn truncate_drops_tail() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileCache::new(4);
        let mut index = IndexFile::<OffsetEntry>::create(dir.path().join("i"), &files).unwrap();
        for relative_offset in 0..4 {
            index.push(entry(relative_offset));
        }
        index.write_pending(&files).unwrap();
        index.push(entry(9));
        index.truncate(2, &files).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.last(), Some(entry(1)));
        assert_eq!(std::fs::metadata(index.path()).unwrap().len(), 16);
    }
}
