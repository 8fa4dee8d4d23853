//! The metadata journal: an append-only file of CRC-checked commands, plus a snapshot.
//!
//! Record layout: `u32 length | u32 crc32c | u64 sequence | JSON command`, where length and CRC
//! cover `sequence + JSON`. A command is acknowledged only after `fdatasync`, so a kill -9 leaves
//! each command either wholly present or absent (a torn tail is cut on open). JSON keeps the file
//! greppable; metadata is tiny next to message data.
//!
//! `snapshot.json` holds the state up to a sequence number. Writing it (serialising 100k
//! bindings, fsyncs) takes 100-300 ms, so it happens on a thread of its own, off the metadata
//! lock every declare and bind waits for. Taking a snapshot:
//! 1. under the lock: fdatasync the journal, rename it to `journal.old.log`, start a new
//!    `journal.log` (directory fsynced), and clone the state (O(1): persistent maps);
//! 2. on the snapshot thread: write `snapshot.json.tmp`, fsync, rename it over `snapshot.json`,
//!    fsync the directory, then delete `journal.old.log`.
//!
//! Replay reads the snapshot, then `journal.old.log` if it is still there, then `journal.log`,
//! skipping what the snapshot covers, so a crash at any step loses nothing. While a snapshot is
//! being written no other starts; a leftover `journal.old.log` (a crash, a failed write) is
//! covered by the next snapshot without another rename.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::command::MetadataCommand;
use super::state::MetadataState;
use crate::error::{CoreError, Result};

const JOURNAL_FILE: &str = "journal.log";
/// The commands before the snapshot being written; deleted once it is durable.
const OLD_JOURNAL_FILE: &str = "journal.old.log";
const SNAPSHOT_FILE: &str = "snapshot.json";
const RECORD_HEADER_BYTES: usize = 8;
/// A metadata command is a few hundred bytes; anything claiming more is a torn or corrupt record.
pub const COMMAND_BYTES_MAX: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    last_sequence: u64,
    state: MetadataState,
}

pub struct Journal {
    dir: PathBuf,
    file: File,
    next_sequence: u64,
    commands_since_snapshot: u64,
    /// The snapshot being written, if one was started and not yet joined.
    writer: Option<SnapshotWriter>,
    /// Tests: start no thread, leave the snapshot pending until `finish_snapshot`, so a test can
    /// crash in between.
    #[cfg(test)]
    defer_writes: bool,
}

enum SnapshotWriter {
    Thread(JoinHandle<Result<()>>),
    #[cfg(test)]
    Deferred(Box<Snapshot>, PathBuf),
}

impl SnapshotWriter {
    fn is_finished(&self) -> bool {
        match self {
            SnapshotWriter::Thread(thread) => thread.is_finished(),
            #[cfg(test)]
            SnapshotWriter::Deferred(..) => true,
        }
    }

    fn join(self) -> Result<()> {
        match self {
            SnapshotWriter::Thread(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(CoreError::Metadata("snapshot thread panicked".into()))),
            #[cfg(test)]
            SnapshotWriter::Deferred(snapshot, dir) => write_snapshot(&dir, &snapshot),
        }
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and replays it into a state.
    pub fn open(dir: &Path) -> Result<(Journal, MetadataState)> {
        fs::create_dir_all(dir).map_err(CoreError::metadata)?;
        let _ = fs::remove_file(dir.join(format!("{SNAPSHOT_FILE}.tmp")));
        let (mut state, last_sequence) = match fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
                    CoreError::Metadata(format!("snapshot.json is unreadable: {e}"))
                })?;
                (snapshot.state, snapshot.last_sequence)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (MetadataState::default(), 0),
            Err(e) => return Err(CoreError::metadata(e)),
        };

        let mut next_sequence = last_sequence + 1;
        let mut replayed = 0u64;
        let old = dir.join(OLD_JOURNAL_FILE);
        if old.exists() {
            let mut file = File::open(&old).map_err(CoreError::metadata)?;
            replayed += replay(&mut file, &old, &mut state, &mut next_sequence, false)?;
        }
        let path = dir.join(JOURNAL_FILE);
        let mut file = open_journal(&path)?;
        replayed += replay(&mut file, &path, &mut state, &mut next_sequence, true)?;
        tracing::debug!(replayed, next_sequence, "metadata journal replayed");
        let journal = Journal {
            dir: dir.to_path_buf(),
            file,
            next_sequence,
            commands_since_snapshot: replayed,
            writer: None,
            #[cfg(test)]
            defer_writes: false,
        };
        Ok((journal, state))
    }

    /// Appends one command; with `sync`, makes it (and every command before it) durable before
    /// returning. Without, a later synced command or nothing covers it: a crash may lose it, or
    /// tear it (recovery cuts a torn tail), never reorder it.
    pub fn append(&mut self, command: &MetadataCommand, sync: bool) -> Result<()> {
        let json = serde_json::to_vec(command).map_err(CoreError::metadata)?;
        let mut payload = Vec::with_capacity(8 + json.len());
        payload.extend_from_slice(&self.next_sequence.to_be_bytes());
        payload.extend_from_slice(&json);
        if payload.len() > COMMAND_BYTES_MAX {
            return Err(CoreError::LimitExceeded(format!(
                "metadata command of {} bytes exceeds {COMMAND_BYTES_MAX}",
                payload.len()
            )));
        }
        let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        record.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        record.extend_from_slice(&payload);
        self.file
            .write_all(&record)
            .and_then(|_| if sync { self.file.sync_data() } else { Ok(()) })
            .map_err(CoreError::metadata)?;
        self.next_sequence += 1;
        self.commands_since_snapshot += 1;
        Ok(())
    }

    pub fn commands_since_snapshot(&self) -> u64 {
        self.commands_since_snapshot
    }

    /// Writes `state` as the snapshot and empties the journal, waiting until both are done.
    pub fn snapshot(&mut self, state: &MetadataState) -> Result<()> {
        self.start_snapshot(state)?;
        self.finish_snapshot()
    }

    /// Starts writing `state` (which must be the state after every appended command) as the
    /// snapshot on a thread of its own, unless one is still being written. Costs the caller an
    /// fdatasync, a rename and a directory fsync, never the serialisation of the state.
    pub fn start_snapshot(&mut self, state: &MetadataState) -> Result<()> {
        if self.writer.as_ref().is_some_and(|w| !w.is_finished()) {
            return Ok(());
        }
        if let Err(e) = self.finish_snapshot() {
            tracing::warn!(error = %e, "metadata snapshot failed; retrying");
        }
        let old = self.dir.join(OLD_JOURNAL_FILE);
        if !old.exists() {
            // The unsynced tail (transient commands) must be whole before a file follows it:
            // replay refuses a gap between the two.
            self.file.sync_data().map_err(CoreError::metadata)?;
            let path = self.dir.join(JOURNAL_FILE);
            fs::rename(&path, &old).map_err(CoreError::metadata)?;
            self.file = open_journal(&path)?;
            sync_dir(&self.dir)?;
        }
        let snapshot = Snapshot {
            last_sequence: self.next_sequence - 1,
            state: state.clone(),
        };
        let dir = self.dir.clone();
        #[cfg(test)]
        if self.defer_writes {
            self.writer = Some(SnapshotWriter::Deferred(Box::new(snapshot), dir));
            self.commands_since_snapshot = 0;
            return Ok(());
        }
        let writer = std::thread::Builder::new()
            .name("porter-metadata-snapshot".into())
            .spawn(move || write_snapshot(&dir, &snapshot))
            .map_err(CoreError::metadata)?;
        self.writer = Some(SnapshotWriter::Thread(writer));
        self.commands_since_snapshot = 0;
        Ok(())
    }

    /// Waits for the snapshot being written, if any, and returns how it ended.
    pub fn finish_snapshot(&mut self) -> Result<()> {
        self.writer.take().map_or(Ok(()), SnapshotWriter::join)
    }
}

/// A snapshot being written finishes before the journal is dropped (a graceful stop), so the
/// next start replays less. A crash instead leaves files that replay handles.
impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(e) = self.finish_snapshot() {
            tracing::warn!(error = %e, "metadata snapshot failed");
        }
    }
}

fn open_journal(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(CoreError::metadata)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(CoreError::metadata)
}

/// The snapshot thread's work: the snapshot made durable under its final name, then the journal
/// it covers deleted.
fn write_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<()> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let bytes = serde_json::to_vec(snapshot).map_err(CoreError::metadata)?;
    let mut file = File::create(&tmp).map_err(CoreError::metadata)?;
    file.write_all(&bytes)
        .and_then(|_| file.sync_all())
        .and_then(|_| fs::rename(&tmp, dir.join(SNAPSHOT_FILE)))
        .map_err(CoreError::metadata)?;
    sync_dir(dir)?;
    match fs::remove_file(dir.join(OLD_JOURNAL_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CoreError::metadata(e)),
        _ => Ok(()),
    }
}

/// Replays the records of `file` that follow `next_sequence - 1` into `state`; returns how many
/// it applied. A torn tail is cut when `cut_torn_tail` (the active journal); elsewhere it is
/// left, and a journal that follows it fails the sequence check.
fn replay(
    file: &mut File,
    path: &Path,
    state: &mut MetadataState,
    next_sequence: &mut u64,
    cut_torn_tail: bool,
) -> Result<u64> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(CoreError::metadata)?;
    let mut position = 0usize;
    let mut replayed = 0u64;
    while let Some((sequence, command, len)) = decode_record(&bytes[position..]) {
        if sequence >= *next_sequence {
            if sequence != *next_sequence {
                return Err(CoreError::Metadata(format!(
                    "journal skips from sequence {} to {sequence}",
                    *next_sequence - 1
                )));
            }
            // A journaled command was checked before it was written; a failing check
            // here means the file was edited by hand, and we refuse to guess.
            state.check(&command).map_err(|e| {
                CoreError::Metadata(format!("journal command {sequence} does not apply: {e}"))
            })?;
            state.apply(command);
            *next_sequence += 1;
            replayed += 1;
        }
        position += len;
    }
    if position < bytes.len() && cut_torn_tail {
        tracing::warn!(
            journal = %path.display(),
            valid_bytes = position,
            cut_bytes = bytes.len() - position,
            "metadata journal has a torn tail; truncating it"
        );
        file.set_len(position as u64).map_err(CoreError::metadata)?;
        file.sync_data().map_err(CoreError::metadata)?;
    }
    Ok(replayed)
}

/// Decodes one record from the front of `bytes`: (sequence, command, record length), or None at
/// the end of the valid prefix.
fn decode_record(bytes: &[u8]) -> Option<(u64, MetadataCommand, usize)> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return None;
    }
    let len = u32::from_be_bytes(bytes[0..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
    if !(8..=COMMAND_BYTES_MAX).contains(&len) || bytes.len() < RECORD_HEADER_BYTES + len {
        return None;
    }
    let payload = &bytes[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len];
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let sequence = u64::from_be_bytes(payload[0..8].try_into().ok()?);
    let command = serde_json::from_slice(&payload[8..]).ok()?;
    Some((sequence, command, RECORD_HEADER_BYTES + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{Topic, TopicConfig};

    fn create(name: &str) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            topic: Topic {
                name: name.into(),
                id: uuid::Uuid::new_v4(),
                partitions: 3,
                config: TopicConfig::default(),
            },
        }
    }

    /// Appends `create(name)` (synced) and applies it to `expected`.
    fn append(journal: &mut Journal, expected: &mut MetadataState, name: &str) {
        let command = create(name);
        journal.append(&command, true).unwrap();
        expected.apply(command);
    }

    #[test]
    fn replay_rebuilds_state_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = MetadataState::default();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            for name in ["a", "b", "c"] {
                append(&mut journal, &mut expected, name);
            }
        }
        // A half-written fourth record: must be cut, the three before kept.
        let path = dir.path().join(JOURNAL_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0, 0, 0, 200, 1, 2, 3, 4, 5]).unwrap();
        drop(file);
        let len_before = fs::metadata(&path).unwrap().len();
        let (mut journal, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
        assert_eq!(fs::metadata(&path).unwrap().len(), len_before - 9);
        // Appending after a cut continues the sequence.
        append(&mut journal, &mut expected, "d");
        let (_, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
    }

    #[test]
    fn snapshot_then_replay_skips_covered_commands() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = MetadataState::default();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        for name in ["a", "b"] {
            append(&mut journal, &mut expected, name);
        }
        journal.snapshot(&expected).unwrap();
        append(&mut journal, &mut expected, "c");
        drop(journal);
        let (journal, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
        assert_eq!(journal.commands_since_snapshot(), 1);
    }

    #[test]
    fn corrupt_crc_is_treated_as_end_of_journal() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.append(&create("a"), true).unwrap();
            journal.append(&create("b"), true).unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state.topics.keys().collect::<Vec<_>>(), vec!["a"]);
    }

    /// A crash after the journal was renamed for a snapshot, before the snapshot was written:
    /// both journals replay, and the next snapshot covers the old one without renaming again.
    #[test]
    fn crash_before_snapshot_written_replays_both_journals() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = MetadataState::default();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            for name in ["a", "b"] {
                append(&mut journal, &mut expected, name);
            }
        }
        fs::rename(
            dir.path().join(JOURNAL_FILE),
            dir.path().join(OLD_JOURNAL_FILE),
        )
        .unwrap();
        let (mut journal, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
        append(&mut journal, &mut expected, "c");
        drop(journal);
        let (mut journal, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
        assert_eq!(journal.commands_since_snapshot(), 3);

        journal.snapshot(&state).unwrap();
        assert!(!dir.path().join(OLD_JOURNAL_FILE).exists());
        drop(journal);
        let (journal, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
        assert_eq!(journal.commands_since_snapshot(), 0);
    }

    /// A crash after the snapshot was written, before the old journal was deleted: the old
    /// journal's records are all covered and skipped.
    #[test]
    fn crash_before_old_journal_deleted_skips_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = MetadataState::default();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        for name in ["a", "b"] {
            append(&mut journal, &mut expected, name);
        }
        let kept = fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        journal.snapshot(&expected).unwrap();
        fs::write(dir.path().join(OLD_JOURNAL_FILE), kept).unwrap();
        append(&mut journal, &mut expected, "c");
        drop(journal);
        let (journal, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
        assert_eq!(journal.commands_since_snapshot(), 1);
    }

    #[derive(Clone, Debug)]
    enum Step {
        Append(bool),
        StartSnapshot,
        FinishSnapshot,
        Reopen,
        /// A kill -9 before the pending snapshot was written.
        Crash,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => any::<bool>().prop_map(Step::Append),
            1 => Just(Step::StartSnapshot),
            1 => Just(Step::FinishSnapshot),
            1 => Just(Step::Reopen),
            1 => Just(Step::Crash),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Model: whatever the interleaving of appends (synced or not), background snapshots
        /// and restarts, replay yields exactly the commands appended, and the old journal
        /// never outlives the snapshot that covers it.
        #[test]
        fn snapshots_in_the_background_lose_nothing(
            steps in proptest::collection::vec(step(), 1..40)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.defer_writes = true;
            let mut expected = MetadataState::default();
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Append(sync) => {
                        let command = create(&format!("t{i}"));
                        journal.append(&command, sync).unwrap();
                        expected.apply(command);
                    }
                    Step::StartSnapshot => journal.start_snapshot(&expected).unwrap(),
                    Step::FinishSnapshot => {
                        let pending = journal.writer.is_some();
                        journal.finish_snapshot().unwrap();
                        let old = dir.path().join(OLD_JOURNAL_FILE);
                        proptest::prop_assert!(!pending || !old.exists());
                    }
                    Step::Reopen => {
                        drop(journal);
                        let (reopened, state) = Journal::open(dir.path()).unwrap();
                        proptest::prop_assert_eq!(&state, &expected);
                        journal = reopened;
                        journal.defer_writes = true;
                    }
                    Step::Crash => {
                        journal.writer = None;
                        drop(journal);
                        let (reopened, state) = Journal::open(dir.path()).unwrap();
                        proptest::prop_assert_eq!(&state, &expected);
                        journal = reopened;
                        journal.defer_writes = true;
                    }
                }
            }
            drop(journal);
            let (_, state) = Journal::open(dir.path()).unwrap();
            proptest::prop_assert_eq!(state, expected);
        }
    }
}
