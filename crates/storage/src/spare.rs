//! A spare segment: three empty files under temporary names, made by the `background` thread
//! after a roll, so the next roll renames them into place instead of creating three files on
//! the append path. On this VM under load, creating three files took p50 1.4 ms, p99 7.5 ms;
//! renaming three, p50 0.1 ms, p99 1.1 ms. Only logs that roll get a spare (a queue that never
//! fills a segment does not pay three extra files). Recovery removes leftovers (`*.tmp`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::checkpoint::TEMP_SUFFIX;
use crate::segment::{file_path, LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use crate::Offset;

/// The log file is renamed last: a crash halfway leaves index files without a log, which
/// recovery removes, never a log without its indexes' emptiness being known.
const SUFFIXES: [&str; 3] = [OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX];

pub(crate) struct Spare {
    dir: PathBuf,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    /// The three files exist, empty.
    ready: bool,
    /// The log is closing or going: make no more (its directory may be removed).
    closed: bool,
}

impl Spare {
    pub(crate) fn new(dir: &Path) -> Spare {
        Spare {
            dir: dir.to_path_buf(),
            slot: Mutex::new(Slot::default()),
        }
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("spare.{suffix}{TEMP_SUFFIX}"))
    }

    /// Renames the spare's files to the segment at `base_offset`. False when none is ready (or
    /// one is being made right now: the roll does not wait for it) or a rename failed; the
    /// caller then creates the files, emptying any already renamed.
    pub(crate) fn take(&self, base_offset: Offset) -> bool {
        let Some(mut slot) = self.slot.try_lock() else {
            return false;
        };
        if !slot.ready || slot.closed {
            return false;
        }
        slot.ready = false;
        for suffix in SUFFIXES {
            let to = file_path(&self.dir, base_offset, suffix);
            if let Err(error) = fs::rename(self.path(suffix), &to) {
                tracing::warn!(path = %to.display(), %error, "renaming the spare segment failed: creating the files");
                return false;
            }
        }
        true
    }

    /// Makes the spare's files unless they exist (the background thread, after a roll).
    pub(crate) fn make(&self) {
        let mut slot = self.slot.lock();
        if slot.ready || slot.closed {
            return;
        }
        for suffix in SUFFIXES {
            if let Err(error) = File::create(self.path(suffix)) {
                tracing::debug!(dir = %self.dir.display(), %error, "cannot make a spare segment");
                return;
            }
        }
        slot.ready = true;
    }

    /// Makes no more spares; waits for one being made. Before the log closes or is deleted.
    pub(crate) fn close(&self) {
        self.slot.lock().closed = true;
    }
}
