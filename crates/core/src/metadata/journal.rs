//! The metadata journal: an append-only file of CRC-checked commands, plus a snapshot.
//!
//! Record layout: `u32 length | u32 crc32c | u64 sequence | JSON command`, where length and CRC
//! cover `sequence + JSON`. A command is acknowledged only after `fdatasync`, so a kill -9 leaves
//! each command either wholly present or absent (a torn tail is cut on open). JSON keeps the file
//! greppable; metadata is tiny next to message data.
//!
//! `snapshot.json` holds the state up to a sequence number. It is written to a temporary file,
//! fsynced and renamed before the journal is truncated, and replay skips journal records the
//! snapshot already covers, so a crash between the two steps loses nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::command::MetadataCommand;
use super::state::MetadataState;
use crate::error::{CoreError, Result};

const JOURNAL_FILE: &str = "journal.log";
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

        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(CoreError::metadata)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(CoreError::metadata)?;

        let mut position = 0usize;
        let mut next_sequence = last_sequence + 1;
        let mut replayed = 0u64;
        while let Some((sequence, command, len)) = decode_record(&bytes[position..]) {
            if sequence >= next_sequence {
                if sequence != next_sequence {
                    return Err(CoreError::Metadata(format!(
                        "journal skips from sequence {} to {sequence}",
                        next_sequence - 1
                    )));
                }
                // A journaled command was checked before it was written; a failing check
                // here means the file was edited by hand, and we refuse to guess.
                state.check(&command).map_err(|e| {
                    CoreError::Metadata(format!("journal command {sequence} does not apply: {e}"))
                })?;
                state.apply(command);
                next_sequence += 1;
                replayed += 1;
            }
            position += len;
        }
        if position < bytes.len() {
            tracing::warn!(
                journal = %path.display(),
                valid_bytes = position,
                cut_bytes = bytes.len() - position,
                "metadata journal has a torn tail; truncating it"
            );
            file.set_len(position as u64).map_err(CoreError::metadata)?;
            file.sync_data().map_err(CoreError::metadata)?;
        }
        tracing::debug!(replayed, next_sequence, "metadata journal replayed");
        let journal = Journal {
            dir: dir.to_path_buf(),
            file,
            next_sequence,
            commands_since_snapshot: replayed,
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

    /// Writes `state` as the snapshot and empties the journal.
    pub fn snapshot(&mut self, state: &MetadataState) -> Result<()> {
        let snapshot = Snapshot {
            last_sequence: self.next_sequence - 1,
            state: state.clone(),
        };
        let tmp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let bytes = serde_json::to_vec(&snapshot).map_err(CoreError::metadata)?;
        let mut file = File::create(&tmp).map_err(CoreError::metadata)?;
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .and_then(|_| fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE)))
            .and_then(|_| File::open(&self.dir)?.sync_all())
            .map_err(CoreError::metadata)?;
        self.file
            .set_len(0)
            .and_then(|_| self.file.sync_data())
            .map_err(CoreError::metadata)?;
        self.commands_since_snapshot = 0;
        Ok(())
    }
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

    #[test]
    fn replay_rebuilds_state_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = MetadataState::default();
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            for name in ["a", "b", "c"] {
                let command = create(name);
                journal.append(&command, true).unwrap();
                expected.apply(command);
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
        let command = create("d");
        journal.append(&command, true).unwrap();
        expected.apply(command);
        let (_, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state, expected);
    }

    #[test]
    fn snapshot_then_replay_skips_covered_commands() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = MetadataState::default();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        for name in ["a", "b"] {
            let command = create(name);
            journal.append(&command, true).unwrap();
            expected.apply(command);
        }
        journal.snapshot(&expected).unwrap();
        let command = create("c");
        journal.append(&command, true).unwrap();
        expected.apply(command);
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
}
