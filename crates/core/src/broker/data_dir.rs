//! Taking the data directory: creating its layout, making its path absolute and locking it, with
//! failures said as one sentence a newcomer can act on ("cannot use data directory /abs/dir:
//! /etc/passwd is not a directory"), not as the OS error of whichever call failed first.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};

/// Subdirectories every data directory has (see the layout in [`crate::broker`]).
const SUBDIRS: [&str; 5] = ["logs", "trash", "metadata", "internal", "queues"];
const LOCK_FILE: &str = ".lock";

/// A data directory the broker may use: absolute, with its layout created and its lock held.
pub(super) struct DataDir {
    pub path: PathBuf,
    /// Nothing was there before this start (absent, or an empty directory): there is nothing to
    /// recover, whatever the clean-shutdown marker says.
    pub is_new: bool,
    /// Kept open so the flock is held for the broker's lifetime.
    pub lock: File,
}

/// Creates (if needed), canonicalises and locks `path`.
pub(super) fn take(path: &Path) -> Result<DataDir> {
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let is_new = match fs::read_dir(&shown) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(unusable(&shown, &e)),
    };
    for sub in SUBDIRS {
        fs::create_dir_all(shown.join(sub)).map_err(|e| unusable(&shown, &e))?;
    }
    let path = fs::canonicalize(&shown).map_err(|e| unusable(&shown, &e))?;
    keep_private(&path, is_new).map_err(|e| unusable(&path, &e))?;
    let lock = File::create(path.join(LOCK_FILE)).map_err(|e| unusable(&path, &e))?;
    lock.try_lock().map_err(|_| CoreError::DataDir {
        path: path.clone(),
        reason: "it is in use by another porter process".to_string(),
    })?;
    Ok(DataDir { path, is_new, lock })
}

/// The metadata journal holds SCRAM credentials, token digests and access secrets: its
/// directory is the broker's user's alone (0700), and so is a data directory this start made.
/// An existing data directory's own mode is the operator's to choose.
fn keep_private(path: &Path, is_new: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let private = fs::Permissions::from_mode(0o700);
    fs::set_permissions(path.join("metadata"), private.clone())?;
    if is_new {
        fs::set_permissions(path, private)?;
    }
    Ok(())
}

/// The error for a data directory `dir` that `error` kept the broker from using.
fn unusable(dir: &Path, error: &io::Error) -> CoreError {
    CoreError::DataDir {
        path: dir.to_path_buf(),
        reason: reason(dir, error),
    }
}

/// Why `dir` can't be used, in words: the path component that is a file rather than a directory
/// when that is the trouble, else the OS's description without its error number.
fn reason(dir: &Path, error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::NotADirectory || error.kind() == io::ErrorKind::AlreadyExists
    {
        let file = dir
            .ancestors()
            .find(|p| p.metadata().is_ok_and(|m| !m.is_dir()));
        if let Some(file) = file {
            return if file == dir {
                "it is a file, not a directory".to_string()
            } else {
                format!("{} is a file, not a directory", file.display())
            };
        }
    }
    let text = error.to_string();
    let text = match error.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_directory_and_the_metadata_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let taken = take(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&taken.path), 0o700);
        assert_eq!(mode(&taken.path.join("metadata")), 0o700);
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain");
        fs::write(&file, b"x").unwrap();

        let Err(e) = take(&file.join("data")) else {
            panic!("a data directory under a file was accepted");
        };
        let expected = format!(
            "cannot use data directory {}: {} is a file, not a directory",
            file.join("data").display(),
            file.display()
        );
        assert_eq!(e.to_string(), expected);

        let Err(e) = take(&file) else {
            panic!("a file was accepted as a data directory");
        };
        assert_eq!(
            e.to_string(),
            format!(
                "cannot use data directory {}: it is a file, not a directory",
                file.display()
            )
        );
    }

    #[test]
    fn new_only_when_nothing_was_there() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let first = take(&dir).unwrap();
        assert!(first.is_new);
        assert!(first.path.is_absolute());
        drop(first);
        assert!(!take(&dir).unwrap().is_new);
        assert!(take(tmp.path().join("empty").as_path()).unwrap().is_new);
    }

    #[test]
    fn a_second_taker_is_told_it_is_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = take(tmp.path()).unwrap();
        let Err(e) = take(tmp.path()) else {
            panic!("two brokers took one data directory");
        };
        assert!(
            e.to_string()
                .ends_with("it is in use by another porter process"),
            "{e}"
        );
    }
}
