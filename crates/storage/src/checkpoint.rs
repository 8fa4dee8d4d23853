//! The `log-start-offset` checkpoint: the one piece of log metadata not derivable from segment
//! files (after `delete_records_before` the start may lie inside a segment). Written to a temp
//! file, fsync'ed, renamed, and the directory fsync'ed, so a crash leaves the old or the new value.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::{Offset, StorageError};

pub(crate) const LOG_START_FILE: &str = "log-start-offset";
/// Suffix of files being written; recovery removes leftovers.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

pub(crate) fn read_log_start_offset(dir: &Path) -> Result<Option<Offset>, StorageError> {
    let path = dir.join(LOG_START_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    match text.trim().parse::<Offset>() {
        Ok(offset) if offset >= 0 => Ok(Some(offset)),
        _ => Err(StorageError::CorruptFile {
            path,
            reason: format!("not an offset: {text:?}"),
        }),
    }
}

pub(crate) fn write_log_start_offset(dir: &Path, offset: Offset) -> Result<(), StorageError> {
    assert!(offset >= 0);
    let temp = dir.join(format!("{LOG_START_FILE}{TEMP_SUFFIX}"));
    let mut file = File::create(&temp)?;
    file.write_all(format!("{offset}\n").as_bytes())?;
    file.sync_all()?;
    fs::rename(&temp, dir.join(LOG_START_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), None);
        write_log_start_offset(dir.path(), 42).unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), Some(42));
        fs::write(dir.path().join(LOG_START_FILE), "x").unwrap();
        assert!(matches!(
            read_log_start_offset(dir.path()),
            Err(StorageError::CorruptFile { .. })
        ));
    }
}
