//! [`TransactionStore`]: the durable set of pending half messages, blocking, owned by one
//! thread (the [`TransactionService`](super::TransactionService)'s).
//!
//! Everything is in one append-only file, `half.log`, of CRC-checked records ([`super::record`]):
//! a prepare carries the whole half message, a resolve ends it, a check records how often the
//! producer was asked and when to ask next. Memory holds only the index: per pending message its
//! id, the prepare record's place in the file and its check schedule; a payload is read back from
//! the file when it is needed (a commit, a check), so a million-message backlog of large
//! payloads costs the index, not the payloads.
//!
//! Recovery replays the file in order, so a resolve always follows the prepare it ends: a
//! message whose resolve was synced is never pending again. Replay stops at the first record
//! that fails its checks (a kill -9 can only tear the end) and cuts the file there.
//!
//! The file is compacted when it passes `compact_bytes` and is more than twice the live records:
//! the pending messages' records (and their check state) are copied to `half.log.tmp`, which is
//! fsynced and renamed over `half.log`, then the directory is fsynced. A crash before the rename
//! leaves the old file (the temp is deleted on open); after it, the new one: both hold the same
//! pending set.
//!
//! An I/O error (a failed write or fsync) halts the store: what reached the disk is unknown, so
//! every later call fails until the broker restarts and recovery reads what is there.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, Outcome, Record, HEADER_BYTES};
use super::{
    CheckDue, HalfMessage, Resolution, HALF_LOG_COMPACT_BYTES, HALF_PAYLOAD_BYTES_MAX,
    TRANSACTIONS_PENDING_BYTES_MAX, TRANSACTIONS_PENDING_MAX, TRANSACTION_NAME_BYTES_MAX,
};
use crate::error::{CoreError, Result};

const LOG_FILE: &str = "half.log";
const TMP_FILE: &str = "half.log.tmp";

/// The store's bounds (broker settings; the defaults are the named limits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Pending half messages at most; a prepare beyond is refused.
    pub pending_max: usize,
    /// Payload bytes of all pending half messages at most (disk, not memory).
    pub pending_bytes_max: u64,
    /// The file is compacted past this size (when mostly dead records).
    pub compact_bytes: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            pending_max: TRANSACTIONS_PENDING_MAX,
            pending_bytes_max: TRANSACTIONS_PENDING_BYTES_MAX,
            compact_bytes: HALF_LOG_COMPACT_BYTES,
        }
    }
}

/// A pending half message as memory knows it: where its prepare record is, and its checks.
#[derive(Clone, Copy, Debug)]
struct Pending {
    offset: u64,
    /// The prepare record's length, header included.
    len: u32,
    payload_len: u32,
    attempts: u32,
    next_check_ms: i64,
}

pub struct TransactionStore {
    dir: PathBuf,
    file: File,
    /// The file's valid length: where the next record goes.
    len: u64,
    pending: HashMap<Arc<str>, Pending>,
    /// (next check, id) of every pending message, earliest first.
    schedule: BTreeSet<(i64, Arc<str>)>,
    pending_payload_bytes: u64,
    /// Bytes a compaction would write (pending prepares and their check records).
    live_bytes: u64,
    limits: StoreLimits,
    /// Records written since the last fsync.
    unsynced: bool,
    failed: bool,
    syncs: u64,
    buf: Vec<u8>,
}

/// The bytes of a check record for an id of `id_len` bytes.
fn check_record_bytes(id_len: usize) -> u64 {
    (HEADER_BYTES + 1 + 2 + id_len + 4 + 8) as u64
}

impl TransactionStore {
    /// Opens (or creates) the store in `dir` with the default limits. Blocking: replays the file.
    pub fn open(dir: &Path) -> Result<TransactionStore> {
        Self::open_with(dir, StoreLimits::default())
    }

    /// Opens (or creates) the store in `dir`: replays `half.log`, cuts a torn tail, deletes a
    /// compaction's leftover temp file. Pending messages beyond `limits` (lowered since they
    /// were written) are kept: limits refuse new prepares, they never drop accepted ones.
    pub fn open_with(dir: &Path, limits: StoreLimits) -> Result<TransactionStore> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CoreError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOG_FILE);
        match fs::remove_file(dir.join(TMP_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&dir.join(TMP_FILE))(e))
            }
            _ => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let mut store = TransactionStore {
            dir: dir.to_path_buf(),
            file,
            len: 0,
            pending: HashMap::new(),
            schedule: BTreeSet::new(),
            pending_payload_bytes: 0,
            live_bytes: 0,
            limits,
            unsynced: false,
            failed: false,
            syncs: 0,
            buf: Vec::new(),
        };
        let file_len = store.file.metadata().map_err(io(&path))?.len();
        // A second handle to read with, so each record is applied as it is read: a file of
        // large payloads is never in memory at once.
        let read_handle = store.file.try_clone().map_err(io(&path))?;
        let mut reader = BufReader::with_capacity(1 << 16, read_handle);
        let mut offset = 0u64;
        loop {
            let mut header = [0u8; HEADER_BYTES];
            if read_full(&mut reader, &mut header).map_err(io(&path))? < HEADER_BYTES {
                break;
            }
            let Some(body_len) = record::body_len(&header) else {
                break;
            };
            // A torn header may claim more than the file holds: never allocate past its end.
            let remaining = file_len.saturating_sub(offset + HEADER_BYTES as u64);
            if body_len as u64 > remaining {
                break;
            }
            let mut body = vec![0u8; body_len];
            if read_full(&mut reader, &mut body).map_err(io(&path))? < body_len {
                break;
            }
            let Some(rec) = record::decode(&header, &body) else {
                break;
            };
            let rec_len = (HEADER_BYTES + body_len) as u32;
            store.replay(offset, rec_len, rec);
            offset += u64::from(rec_len);
        }
        store.len = offset;
        if offset < file_len {
            tracing::warn!(
                file = %path.display(),
                valid_bytes = offset,
                cut_bytes = file_len - offset,
                "transaction log has a torn tail; truncating it"
            );
            store.file.set_len(offset).map_err(io(&path))?;
            store.file.sync_data().map_err(io(&path))?;
        }
        tracing::debug!(
            pending = store.pending.len(),
            bytes = offset,
            "transaction log replayed"
        );
        Ok(store)
    }

    fn replay(&mut self, offset: u64, len: u32, rec: Record) {
        match rec {
            Record::Prepare(half) => {
                self.remove(&half.id);
                self.insert(&half, offset, len);
            }
            Record::Resolve { id, .. } => {
                self.remove(&id);
            }
            Record::Check {
                id,
                attempts,
                next_check_ms,
            } => self.reschedule(&id, attempts, next_check_ms),
        }
    }

    fn insert(&mut self, half: &HalfMessage, offset: u64, len: u32) {
        let id: Arc<str> = half.id.as_str().into();
        let next_check_ms = half.prepared_ms.saturating_add(half.check_after_ms);
        let pending = Pending {
            offset,
            len,
            payload_len: half.payload.len() as u32,
            attempts: 0,
            next_check_ms,
        };
        self.pending_payload_bytes += u64::from(pending.payload_len);
        self.live_bytes += u64::from(len);
        self.schedule.insert((next_check_ms, id.clone()));
        self.pending.insert(id, pending);
    }

    fn remove(&mut self, id: &str) -> Option<Pending> {
        let (key, pending) = self.pending.remove_entry(id)?;
        self.schedule.remove(&(pending.next_check_ms, key));
        self.pending_payload_bytes -= u64::from(pending.payload_len);
        self.live_bytes -= u64::from(pending.len);
        if pending.attempts > 0 {
            self.live_bytes -= check_record_bytes(id.len());
        }
        Some(pending)
    }

    fn reschedule(&mut self, id: &str, attempts: u32, next_check_ms: i64) {
        let Some((key, pending)) = self.pending.get_key_value(id) else {
            return;
        };
        let key = key.clone();
        let old = pending.next_check_ms;
        let first_check = pending.attempts == 0;
        self.schedule.remove(&(old, key.clone()));
        self.schedule.insert((next_check_ms, key));
        if first_check && attempts > 0 {
            self.live_bytes += check_record_bytes(id.len());
        }
        if let Some(pending) = self.pending.get_mut(id) {
            pending.attempts = attempts;
            pending.next_check_ms = next_check_ms;
        }
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(CoreError::Disk(std::io::Error::other(
                "the transaction log failed a write or fsync; restart to recover it",
            )));
        }
        Ok(())
    }

    fn io_error(&mut self, source: std::io::Error) -> CoreError {
        self.failed = true;
        CoreError::Io {
            path: self.dir.join(LOG_FILE),
            source,
        }
    }

    /// Appends the record in `self.buf`; returns its offset.
    fn append_buf(&mut self) -> Result<u64> {
        let offset = self.len;
        if let Err(e) = self.file.write_all_at(&self.buf, offset) {
            return Err(self.io_error(e));
        }
        self.len += self.buf.len() as u64;
        self.unsynced = true;
        Ok(offset)
    }

    fn append(&mut self, rec: &Record) -> Result<u64> {
        self.buf.clear();
        record::encode(rec, &mut self.buf);
        self.append_buf()
    }

    /// Records a half message, pending until resolved; durable after the next [`Self::sync`].
    /// A prepare of an id already pending is a client's retry: accepted, nothing written.
    ///
    /// Refused: an empty or over-long id, group or topic (`Precondition`), a payload over
    /// [`HALF_PAYLOAD_BYTES_MAX`] (`TooLarge`), more than `pending_max` pending messages or
    /// `pending_bytes_max` of their payloads (`LimitExceeded`, kind `Precondition`).
    pub fn prepare(&mut self, half: HalfMessage) -> Result<()> {
        self.check_usable()?;
        for (what, name) in [
            ("message id", &half.id),
            ("producer group", &half.producer_group),
            ("topic", &half.topic),
        ] {
            if name.is_empty() || name.len() > TRANSACTION_NAME_BYTES_MAX {
                return Err(CoreError::Precondition(format!(
                    "a transactional message's {what} must be 1 to {TRANSACTION_NAME_BYTES_MAX} bytes"
                )));
            }
        }
        if half.payload.len() > HALF_PAYLOAD_BYTES_MAX {
            return Err(CoreError::TooLarge {
                size: half.payload.len(),
                max: HALF_PAYLOAD_BYTES_MAX as u64,
            });
        }
        if self.pending.contains_key(half.id.as_str()) {
            return Ok(());
        }
        if self.pending.len() >= self.limits.pending_max {
            return Err(CoreError::LimitExceeded(format!(
                "{} transactional messages are pending, the maximum",
                self.pending.len()
            )));
        }
        if self.pending_payload_bytes + half.payload.len() as u64 > self.limits.pending_bytes_max {
            return Err(CoreError::LimitExceeded(format!(
                "pending transactional messages hold {} bytes; the maximum is {}",
                self.pending_payload_bytes, self.limits.pending_bytes_max
            )));
        }
        let rec = Record::Prepare(half);
        let offset = self.append(&rec)?;
        let len = self.buf.len() as u32;
        let Record::Prepare(half) = rec else {
            unreachable!("built as a prepare")
        };
        self.insert(&half, offset, len);
        Ok(())
    }

    /// Ends a pending half message; durable after the next [`Self::sync`]. On a commit, returns
    /// the half message (read back from the file) for the caller to publish; on a rollback, or
    /// for an id that is not pending (unknown, already resolved, dropped), returns `None`.
    pub fn resolve(&mut self, id: &str, resolution: Resolution) -> Result<Option<HalfMessage>> {
        self.check_usable()?;
        let Some(&pending) = self.pending.get(id) else {
            return Ok(None);
        };
        let half = match resolution {
            Resolution::Commit => Some(self.read_half(id, pending)?),
            Resolution::Rollback => None,
        };
        let outcome = match resolution {
            Resolution::Commit => Outcome::Commit,
            Resolution::Rollback => Outcome::Rollback,
        };
        self.end(id, outcome)?;
        Ok(half)
    }

    /// Drops a half message its producer never answered for. Returns whether it was pending.
    pub(super) fn drop_unanswered(&mut self, id: &str) -> Result<bool> {
        self.check_usable()?;
        if !self.pending.contains_key(id) {
            return Ok(false);
        }
        self.end(id, Outcome::Dropped)?;
        Ok(true)
    }

    fn end(&mut self, id: &str, outcome: Outcome) -> Result<()> {
        self.append(&Record::Resolve {
            id: id.to_owned(),
            outcome,
        })?;
        self.remove(id);
        Ok(())
    }

    /// A pending half message, read back from the file, or `None`.
    pub fn half(&mut self, id: &str) -> Result<Option<HalfMessage>> {
        self.check_usable()?;
        match self.pending.get(id) {
            Some(&pending) => self.read_half(id, pending).map(Some),
            None => Ok(None),
        }
    }

    fn read_half(&mut self, id: &str, pending: Pending) -> Result<HalfMessage> {
        let mut bytes = vec![0u8; pending.len as usize];
        if let Err(e) = self.file.read_exact_at(&mut bytes, pending.offset) {
            return Err(self.io_error(e));
        }
        let header: [u8; HEADER_BYTES] = bytes[..HEADER_BYTES].try_into().expect("header size");
        match record::decode(&header, &bytes[HEADER_BYTES..]) {
            Some(Record::Prepare(half)) if half.id == id => Ok(half),
            _ => Err(CoreError::Corrupt(format!(
                "{}: the prepare record of {id:?} at byte {} fails its checks",
                self.dir.join(LOG_FILE).display(),
                pending.offset
            ))),
        }
    }

    /// Makes every record written so far durable (fdatasync), then compacts the file if it is
    /// due. One call covers any number of prepares and resolves: the service groups them.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.unsynced {
            if let Err(e) = self.file.sync_data() {
                return Err(self.io_error(e));
            }
            self.unsynced = false;
            self.syncs += 1;
        }
        if self.len > self.limits.compact_bytes && self.len > 2 * self.live_bytes {
            self.compact()?;
        }
        Ok(())
    }

    /// The pending messages whose check is due at `now_ms`, earliest first, at most `max`, each
    /// with its payload and the number this check would have (1 for the first). Reading them
    /// changes nothing: [`Self::record_check`] records that a check was made.
    pub fn due_checks(&mut self, now_ms: i64, max: usize) -> Result<Vec<CheckDue>> {
        self.check_usable()?;
        let due: Vec<(Arc<str>, Pending)> = self
            .schedule
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(max)
            .map(|(_, id)| (id.clone(), self.pending[id]))
            .collect();
        let mut checks = Vec::with_capacity(due.len());
        for (id, pending) in due {
            let half = self.read_half(&id, pending)?;
            checks.push(CheckDue {
                id: half.id,
                producer_group: half.producer_group,
                topic: half.topic,
                payload: half.payload,
                attempt: pending.attempts + 1,
            });
        }
        Ok(checks)
    }

    /// Records that `id`'s producer was asked once more, and when to ask next. Not synced by
    /// itself: losing it in a crash only means asking again.
    pub fn record_check(&mut self, id: &str, next_check_ms: i64) -> Result<()> {
        self.check_usable()?;
        let Some(pending) = self.pending.get(id) else {
            return Ok(());
        };
        let attempts = pending.attempts + 1;
        self.append(&Record::Check {
            id: id.to_owned(),
            attempts,
            next_check_ms,
        })?;
        self.reschedule(id, attempts, next_check_ms);
        Ok(())
    }

    /// When the earliest check is due, if any message is pending.
    pub fn next_check_ms(&self) -> Option<i64> {
        self.schedule.first().map(|(at, _)| *at)
    }

    /// How many half messages are pending.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// How many fsyncs the store has made (group commit makes this far fewer than writes).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// The file's length (tests model crashes by cutting it).
    #[cfg(test)]
    pub(super) fn file_len(&self) -> u64 {
        self.len
    }

    /// The pending set as (id, attempts, next check), sorted (tests compare it with a model).
    #[cfg(test)]
    pub(super) fn pending_state(&self) -> Vec<(String, u32, i64)> {
        // The schedule indexes exactly the pending set.
        assert_eq!(self.schedule.len(), self.pending.len());
        for (at, id) in &self.schedule {
            assert_eq!(self.pending[id].next_check_ms, *at);
        }
        let mut state: Vec<_> = self
            .pending
            .iter()
            .map(|(id, p)| (id.to_string(), p.attempts, p.next_check_ms))
            .collect();
        state.sort();
        state
    }

    /// Rewrites the file with only the pending messages' records, crash-safely.
    fn compact(&mut self) -> Result<()> {
        let path = self.dir.join(LOG_FILE);
        let tmp = self.dir.join(TMP_FILE);
        let mut order: Vec<(u64, Arc<str>)> = self
            .pending
            .iter()
            .map(|(id, p)| (p.offset, id.clone()))
            .collect();
        order.sort_unstable();
        let mut moved = Vec::with_capacity(order.len());
        let written = (|| -> std::io::Result<u64> {
            let mut out = BufWriter::with_capacity(1 << 16, File::create(&tmp)?);
            let mut at = 0u64;
            let mut bytes = Vec::new();
            for (_, id) in &order {
                let p = self.pending[id];
                bytes.resize(p.len as usize, 0);
                self.file.read_exact_at(&mut bytes, p.offset)?;
                out.write_all(&bytes)?;
                moved.push((id.clone(), at));
                at += u64::from(p.len);
                if p.attempts > 0 {
                    bytes.clear();
                    record::encode(
                        &Record::Check {
                            id: id.to_string(),
                            attempts: p.attempts,
                            next_check_ms: p.next_check_ms,
                        },
                        &mut bytes,
                    );
                    out.write_all(&bytes)?;
                    at += bytes.len() as u64;
                }
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(at)
        })();
        let new_len = match written {
            Ok(len) => len,
            Err(e) => {
                // The old file is intact: log it, keep going on it, retry at the next sync.
                let _ = fs::remove_file(&tmp);
                tracing::warn!(file = %tmp.display(), error = %e, "transaction log compaction failed");
                return Ok(());
            }
        };
        let renamed = fs::rename(&tmp, &path)
            .and_then(|_| File::open(&self.dir).and_then(|d| d.sync_all()))
            .and_then(|_| OpenOptions::new().read(true).write(true).open(&path));
        let file = match renamed {
            Ok(file) => file,
            Err(e) => return Err(self.io_error(e)),
        };
        tracing::debug!(
            before = self.len,
            after = new_len,
            pending = self.pending.len(),
            "transaction log compacted"
        );
        self.file = file;
        self.len = new_len;
        for (id, at) in moved {
            if let Some(p) = self.pending.get_mut(&id) {
                p.offset = at;
            }
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the reader ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
