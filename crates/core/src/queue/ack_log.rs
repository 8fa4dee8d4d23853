//! [`AckLog`]: a queue's durable delivery progress, the [`AckChange`]s in an append-only file.
//!
//! Each record is 21 bytes: kind (1 = settled range, 2 = delivered watermark), two big-endian
//! i64s, and a CRC-32C of those 17 bytes. Opening folds the file into [`PersistedAcks`] and cuts
//! a torn tail (the first record whose CRC fails, and everything after it: a crash can only tear
//! the end). When the file outgrows [`ACK_LOG_COMPACT_BYTES`] it is rewritten from the folded
//! state (write temp, fsync, rename, fsync dir), so its size follows the state, not the traffic.
//!
//! The file is reached through the broker's [`FileCache`], as queue logs are: with 100k queues
//! an open descriptor per ack file would pass any sane `ulimit -n`, while the cache keeps at
//! most `open_files_max` open and reopens an evicted one on its next write (positional writes
//! at the tracked length, so a reopen needs no seek).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use porter_storage::FileCache;

use parking_lot::{Mutex, MutexGuard};

use super::state::{AckChange, PersistedAcks};
use crate::error::{CoreError, Result};

const RECORD_BYTES: usize = 21;
const KIND_SETTLED: u8 = 1;
const KIND_WATERMARK: u8 = 2;

/// Past this size the ack file is rewritten from its folded state.
pub const ACK_LOG_COMPACT_BYTES: u64 = 4 << 20;

pub struct AckLog {
    path: PathBuf,
    files: Arc<FileCache>,
    folded: PersistedAcks,
    len: u64,
    /// Bytes written since the last fsync.
    unsynced: bool,
}

impl AckLog {
    /// Opens (or creates) the ack file at `path` and folds it. Blocking.
    pub fn open(path: &Path, files: Arc<FileCache>) -> Result<Self> {
        let io = |e| CoreError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let _ = fs::remove_file(path.with_extension("tmp"));
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                files.create(path).map_err(io)?;
                Vec::new()
            }
            Err(e) => return Err(io(e)),
        };
        let mut folded = PersistedAcks::default();
        let mut valid = 0;
        for record in bytes.chunks(RECORD_BYTES) {
            match decode(record) {
                Some(change) => {
                    folded.apply(&change);
                    valid += RECORD_BYTES;
                }
                None => break,
            }
        }
        if valid < bytes.len() {
            tracing::warn!(path = %path.display(), cut_bytes = bytes.len() - valid, "ack log: cut a torn tail");
            let file = files.get(path).map_err(io)?;
            file.set_len(valid as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        Ok(AckLog {
            path: path.to_path_buf(),
            files,
            folded,
            len: valid as u64,
            unsynced: false,
        })
    }

    pub fn persisted(&self) -> &PersistedAcks {
        &self.folded
    }

    /// Appends `changes` (to the page cache: a kill -9 keeps them; [`Self::sync`] makes them
    /// survive power loss too). Blocking, but a few bytes per change.
    pub fn append(&mut self, changes: &[AckChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::with_capacity(changes.len() * RECORD_BYTES);
        for change in changes {
            encode(change, &mut buffer);
            self.folded.apply(change);
        }
        self.files
            .get(&self.path)
            .and_then(|file| file.write_all_at(&buffer, self.len))
            .map_err(|e| self.io(e))?;
        self.len += buffer.len() as u64;
        self.unsynced = true;
        if self.len > ACK_LOG_COMPACT_BYTES {
            self.compact()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.files
                .get(&self.path)
                .and_then(|file| file.sync_data())
                .map_err(|e| self.io(e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Drops ranges below `offset` (the log no longer holds them) from the folded state; the
    /// next compaction forgets them on disk too.
    pub fn forget_below(&mut self, offset: porter_storage::Offset) {
        self.folded.settled.remove_below(offset);
    }

    /// Drops the cached handle (the queue closes or is deleted).
    pub fn release(&self) {
        self.files.evict(&self.path);
    }

    fn compact(&mut self) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut buffer = Vec::new();
        for range in self.folded.settled.iter() {
            encode(&AckChange::Settled(range), &mut buffer);
        }
        encode(
            &AckChange::DeliveredWatermark(self.folded.delivered_watermark),
            &mut buffer,
        );
        let io = |e| CoreError::Io {
            path: tmp.clone(),
            source: e,
        };
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(&buffer).map_err(io)?;
        file.sync_data().map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        // The cached handle is the replaced inode's; the next write opens the new file.
        self.files.evict(&self.path);
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.len = buffer.len() as u64;
        self.unsynced = false;
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> CoreError {
        CoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// An [`AckLog`] shared by a queue's delivery task, its consumers' acks and its maintenance.
/// Appends hold the lock for a few bytes of page-cache write; an fsync runs outside it, so a slow
/// disk stalls only the caller that needs durability, never the deliveries and acks around it.
pub struct SharedAckLog {
    log: Mutex<AckLog>,
    /// One fsync at a time: a caller that waited here finds its bytes synced by the one before.
    sync: Mutex<()>,
}

impl SharedAckLog {
    pub fn new(log: AckLog) -> Self {
        SharedAckLog {
            log: Mutex::new(log),
            sync: Mutex::new(()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, AckLog> {
        self.log.lock()
    }

    /// Makes everything appended so far durable. Blocking (an fdatasync).
    pub fn sync(&self) -> Result<()> {
        let _one_at_a_time = self.sync.lock();
        let file = {
            let mut log = self.log.lock();
            if !log.unsynced {
                return Ok(());
            }
            let file = log.files.get(&log.path).map_err(|e| log.io(e))?;
            // Appends from here on mark it unsynced again and wait for the next sync.
            log.unsynced = false;
            file
        };
        file.sync_data().map_err(|e| {
            let mut log = self.log.lock();
            log.unsynced = true;
            log.io(e)
        })
    }
}

fn encode(change: &AckChange, out: &mut Vec<u8>) {
    let start = out.len();
    match change {
        AckChange::Settled(range) => {
            out.push(KIND_SETTLED);
            out.extend_from_slice(&range.start.to_be_bytes());
            out.extend_from_slice(&range.end.to_be_bytes());
        }
        AckChange::DeliveredWatermark(w) => {
            out.push(KIND_WATERMARK);
            out.extend_from_slice(&w.to_be_bytes());
            out.extend_from_slice(&0i64.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn decode(record: &[u8]) -> Option<AckChange> {
    if record.len() != RECORD_BYTES {
        return None;
    }
    let crc = u32::from_be_bytes(record[17..21].try_into().ok()?);
    if crc32c::crc32c(&record[..17]) != crc {
        return None;
    }
    let a = i64::from_be_bytes(record[1..9].try_into().ok()?);
    let b = i64::from_be_bytes(record[9..17].try_into().ok()?);
    match record[0] {
        KIND_SETTLED if 0 <= a && a < b => Some(AckChange::Settled(a..b)),
        KIND_WATERMARK if a >= 0 => Some(AckChange::DeliveredWatermark(a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_across_reopen_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acks");
        {
            let mut log = AckLog::open(&path, FileCache::new(4)).unwrap();
            log.append(&[
                AckChange::DeliveredWatermark(1024),
                AckChange::Settled(0..3),
                AckChange::Settled(5..7),
            ])
            .unwrap();
        }
        // A torn final record.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&[KIND_SETTLED, 0, 0, 0]).unwrap();
        drop(file);
        let log = AckLog::open(&path, FileCache::new(4)).unwrap();
        assert_eq!(log.persisted().delivered_watermark, 1024);
        assert_eq!(
            log.persisted().settled.iter().collect::<Vec<_>>(),
            vec![0..3, 5..7]
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 * RECORD_BYTES as u64);
    }

    #[test]
    fn compaction_keeps_the_folded_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acks");
        let mut log = AckLog::open(&path, FileCache::new(4)).unwrap();
        // Consecutive single-offset settlements: the folded state stays one range while the
        // file grows past the compaction threshold and is rewritten.
        let records = ACK_LOG_COMPACT_BYTES as i64 / RECORD_BYTES as i64 + 10;
        for chunk in (0..records).collect::<Vec<_>>().chunks(1000) {
            let changes: Vec<AckChange> = chunk
                .iter()
                .map(|&k| AckChange::Settled(k..k + 1))
                .collect();
            log.append(&changes).unwrap();
        }
        assert!(
            fs::metadata(&path).unwrap().len() < ACK_LOG_COMPACT_BYTES / 2,
            "rewritten"
        );
        drop(log);
        let log = AckLog::open(&path, FileCache::new(4)).unwrap();
        assert_eq!(
            log.persisted().settled.iter().collect::<Vec<_>>(),
            vec![0..records]
        );
    }

    /// Appends and syncs from several threads (deliveries, acks, maintenance) interleave, the
    /// file is rewritten by compaction meanwhile, and everything appended is there on reopen.
    #[test]
    fn shared_sync_runs_beside_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acks");
        let shared = std::sync::Arc::new(SharedAckLog::new(
            AckLog::open(&path, FileCache::new(4)).unwrap(),
        ));
        let per_thread = ACK_LOG_COMPACT_BYTES as i64 / RECORD_BYTES as i64 / 2 + 100;
        let threads: Vec<_> = (0..3i64)
            .map(|t| {
                let shared = std::sync::Arc::clone(&shared);
                std::thread::spawn(move || {
                    for k in 0..per_thread {
                        let offset = t * per_thread + k;
                        shared
                            .lock()
                            .append(&[AckChange::Settled(offset..offset + 1)])
                            .unwrap();
                        if k % 5000 == 0 {
                            shared.sync().unwrap();
                        }
                    }
                    shared.sync().unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(
            !shared.lock().unsynced,
            "the last sync covered every append"
        );
        drop(shared);
        let log = AckLog::open(&path, FileCache::new(4)).unwrap();
        assert_eq!(
            log.persisted().settled.iter().collect::<Vec<_>>(),
            vec![0..3 * per_thread]
        );
    }
}
