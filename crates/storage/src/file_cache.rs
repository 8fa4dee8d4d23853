//! An LRU of open file handles shared by all logs, so thousands of partitions with three files
//! per segment do not need thousands of descriptors.
//!
//! Handles are `Arc<File>`: evicting one only drops the cache's reference, so a read or write in
//! flight keeps its descriptor until it finishes (the open count can briefly exceed `max_open`
//! by the number of operations in flight). Closing a descriptor loses nothing: written data sits
//! in the page cache, and fdatasync through a later handle syncs the same inode.
//!
//! open(2) runs outside the cache's mutex (it can take milliseconds on a busy disk, and every
//! log's reads and writes pass through here): a miss opens, then inserts unless another caller
//! inserted the same path meanwhile (the loser's handle is dropped). An eviction while an open
//! was in flight (a compaction renaming a file over its path) leaves that handle uncached, so
//! the cache never keeps a handle to an inode its path no longer names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

pub struct FileCache {
    max_open: usize,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Open files and the tick of their last use.
    open: HashMap<PathBuf, (Arc<File>, u64)>,
    /// Last-use tick → path; the first entry is the least recently used.
    by_use: BTreeMap<u64, PathBuf>,
    /// The open paths in path order, so a directory's files are one range: closing one of
    /// 100k queue logs must not scan every open handle (4096 × 100k path compares at shutdown).
    by_path: BTreeSet<PathBuf>,
    tick: u64,
    /// Bumped by every eviction: an open that saw another value when it started may have
    /// opened a file that was evicted (renamed over, deleted) meanwhile.
    evictions: u64,
}

impl CacheState {
    /// The cached handle of `path`, marked most recently used.
    fn touch(&mut self, path: &Path) -> Option<Arc<File>> {
        self.tick += 1;
        let tick = self.tick;
        let (file, last_use) = self.open.get_mut(path)?;
        let file = Arc::clone(file);
        let previous = std::mem::replace(last_use, tick);
        let moved = self.by_use.remove(&previous);
        debug_assert!(moved.is_some());
        self.by_use.insert(tick, path.to_path_buf());
        Some(file)
    }
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("max_open", &self.max_open)
            .field("open", &self.open_count())
            .finish()
    }
}

impl FileCache {
    /// `max_open` is clamped to at least 1.
    pub fn new(max_open: usize) -> Arc<FileCache> {
        Arc::new(FileCache {
            max_open: max_open.max(1),
            state: Mutex::new(CacheState::default()),
        })
    }

    /// Returns an open read-write handle to an existing file.
    pub fn get(&self, path: &Path) -> io::Result<Arc<File>> {
        self.get_with(path, false)
    }

    /// The handle to `path` if it is open; never opens it, so it never blocks on the disk.
    pub fn get_open(&self, path: &Path) -> Option<Arc<File>> {
        self.state.lock().touch(path)
    }

    /// Creates the file if it does not exist and returns a handle to it.
    pub fn create(&self, path: &Path) -> io::Result<Arc<File>> {
        self.get_with(path, true)
    }

    fn get_with(&self, path: &Path, create: bool) -> io::Result<Arc<File>> {
        let evictions = {
            let mut state = self.state.lock();
            if let Some(file) = state.touch(path) {
                return Ok(file);
            }
            state.evictions
        };
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .open(path)?,
        );
        let mut state = self.state.lock();
        if let Some(winner) = state.touch(path) {
            return Ok(winner); // another caller opened it meanwhile
        }
        if state.evictions != evictions {
            return Ok(file); // usable for this call, as a handle taken before the eviction
        }
        state.tick += 1;
        let tick = state.tick;
        while state.open.len() >= self.max_open {
            let (_, victim) = state.by_use.pop_first().expect("by_use mirrors open");
            state.open.remove(&victim);
            state.by_path.remove(&victim);
        }
        state
            .open
            .insert(path.to_path_buf(), (Arc::clone(&file), tick));
        state.by_use.insert(tick, path.to_path_buf());
        state.by_path.insert(path.to_path_buf());
        debug_assert_eq!(state.open.len(), state.by_use.len());
        debug_assert_eq!(state.open.len(), state.by_path.len());
        Ok(file)
    }

    /// Drops the cached handle of `path` (before deleting or renaming the file).
    pub fn evict(&self, path: &Path) {
        let mut state = self.state.lock();
        state.evictions += 1;
        if let Some((_, tick)) = state.open.remove(path) {
            state.by_use.remove(&tick);
            state.by_path.remove(path);
        }
    }

    /// Drops every cached handle of files inside `dir` (when a log closes).
    pub fn evict_dir(&self, dir: &Path) {
        let mut state = self.state.lock();
        state.evictions += 1;
        // Path order compares by component: everything inside `dir` sorts right after it.
        let victims: Vec<PathBuf> = state
            .by_path
            .range::<Path, _>((Bound::Excluded(dir), Bound::Unbounded))
            .take_while(|path| path.starts_with(dir))
            .cloned()
            .collect();
        for path in victims {
            state.by_path.remove(&path);
            if let Some((_, tick)) = state.open.remove(&path) {
                state.by_use.remove(&tick);
            }
        }
    }

    /// Number of handles currently held by the cache.
    pub fn open_count(&self) -> usize {
        self.state.lock().open.len()
    }

    pub fn max_open(&self) -> usize {
        self.max_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn keeps_at_most_max_open_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(2);
        let paths: Vec<PathBuf> = (0..5).map(|i| dir.path().join(format!("f{i}"))).collect();
        for (i, path) in paths.iter().enumerate() {
            cache
                .create(path)
                .unwrap()
                .write_all_at(&[i as u8], 0)
                .unwrap();
            assert!(cache.open_count() <= 2);
        }
        for (i, path) in paths.iter().enumerate() {
            let mut byte = [0u8];
            cache
                .get(path)
                .unwrap()
                .read_exact_at(&mut byte, 0)
                .unwrap();
            assert_eq!(byte[0], i as u8);
        }
        assert_eq!(cache.open_count(), 2);
        cache.evict_dir(dir.path());
        assert_eq!(cache.open_count(), 0);
        assert!(cache.get(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn concurrent_opens_of_one_path_share_one_cached_handle() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(8);
        let path = dir.path().join("shared");
        let handles: Vec<Arc<File>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| cache.create(&path).unwrap()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(cache.open_count(), 1);
        let cached = cache.get(&path).unwrap();
        // Losers of the insert race got their own handle to the same file; later calls all
        // get the cached one.
        assert!(handles.iter().any(|h| Arc::ptr_eq(h, &cached)));
        handles[0].write_all_at(b"x", 0).unwrap();
        let mut byte = [0u8];
        cached.read_exact_at(&mut byte, 0).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn least_recently_used_is_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(2);
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let c = dir.path().join("c");
        let handle_a = cache.create(&a).unwrap();
        cache.create(&b).unwrap();
        assert!(Arc::ptr_eq(&handle_a, &cache.get(&a).unwrap())); // a is now most recent
        cache.create(&c).unwrap(); // evicts b
        assert!(Arc::ptr_eq(&handle_a, &cache.get(&a).unwrap()));
        let state = cache.state.lock();
        assert!(!state.open.contains_key(&b));
    }

    #[test]
    fn evict_dir_drops_only_that_directory() {
        let root = tempfile::tempdir().unwrap();
        let cache = FileCache::new(16);
        for dir in ["q1", "q10", "q1a", "q2"] {
            std::fs::create_dir_all(root.path().join(dir).join("log")).unwrap();
            cache.create(&root.path().join(dir).join("acks")).unwrap();
            cache
                .create(&root.path().join(dir).join("log").join("0.log"))
                .unwrap();
        }
        cache.evict_dir(&root.path().join("q1"));
        let state = cache.state.lock();
        let left: BTreeSet<String> = state
            .open
            .keys()
            .map(|p| p.strip_prefix(root.path()).unwrap().display().to_string())
            .collect();
        let expected: BTreeSet<String> = [
            "q10/acks",
            "q10/log/0.log",
            "q1a/acks",
            "q1a/log/0.log",
            "q2/acks",
            "q2/log/0.log",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(left, expected);
        assert_eq!(state.by_path.len(), state.open.len());
    }
}
