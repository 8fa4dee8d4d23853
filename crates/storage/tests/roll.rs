//! Segment rolls leave their fdatasyncs to a background thread, and retention deletes whole
//! segments without a checkpoint: the crash windows this opens, and that recovery closes.

mod common;

use std::path::Path;

use common::*;
use porter_storage::{FlushMode, Log, LogConfig};

fn cut_file(path: &Path, keep: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(keep)
        .unwrap();
}

/// 60 batches of 2 records, batch `i` stamped `i * 1000`, in segments of about 1 KiB.
fn fill(log: &Log) -> Vec<(i64, Vec<u8>)> {
    for i in 0..60 {
        log.append_committed(batch(&values(i, 2, 40), i as i64 * 1000), 0)
            .unwrap();
    }
    read_all(log, 0)
}

/// A log in `dir` whose rolls leave their fdatasyncs undone (as if the process died before the
/// background thread ran them), filled; returns it and what it holds.
fn filled_with_syncs_held(dir: &Path, flush: FlushMode) -> (Log, Vec<(i64, Vec<u8>)>) {
    let log = open(dir, small_config(flush), false);
    log.hold_rolled_syncs();
    let expected = fill(&log);
    (log, expected)
}

#[test]
fn rolls_leave_their_syncs_to_the_background_and_close_runs_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = filled_with_syncs_held(dir.path(), FlushMode::Group);
    let segments = segment_files(dir.path(), "log").len();
    assert!(segments > 4, "expected several segments, got {segments}");
    // Every rolled segment still waits for its fdatasyncs: the rolls did not do them.
    assert_eq!(log.rolled_unsynced_segments(), segments - 1);
    log.close().unwrap();
    assert_eq!(log.rolled_unsynced_segments(), 0);

    // Without the hold, the background thread runs them.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Group), false);
    fill(&log);
    let mut polls = 0;
    while log.rolled_unsynced_segments() > 0 {
        polls += 1;
        assert!(polls < 30_000, "the background syncs never ran");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Under `Never` a roll syncs nothing, now or later.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = filled_with_syncs_held(dir.path(), FlushMode::Never);
    assert_eq!(log.rolled_unsynced_segments(), 0);
}

/// A power loss before a rolled segment's deferred fdatasyncs ran can leave its index files
/// short, each by its own amount: the time index lost (empty), or the offset index longer than
/// the time index. Recovery must still find every record and each segment's largest timestamp
/// (retention and timestamp lookups use it).
#[test]
fn a_crash_before_the_deferred_syncs_recovers_indexes_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Group);
    let (log, expected) = filled_with_syncs_held(dir.path(), FlushMode::Group);
    let timestamps: Vec<Option<(i64, i64)>> = [0, 7_500, 21_000, 40_000, 58_999]
        .iter()
        .map(|&t| log.offset_for_timestamp(t).unwrap())
        .collect();
    assert_eq!(
        log.rolled_unsynced_segments(),
        segment_files(dir.path(), "log").len() - 1
    );
    drop(log); // crash: no close
    let time_indexes = segment_files(dir.path(), "timeindex");
    let offset_indexes = segment_files(dir.path(), "index");
    assert!(time_indexes.len() > 4);
    // Segment 1: its time index never reached the disk; its offset index did.
    cut_file(&time_indexes[1], 0);
    // Segment 2: the time index lost its last entries, the offset index none.
    let time_bytes = std::fs::metadata(&time_indexes[2]).unwrap().len();
    assert!(time_bytes >= 24, "time index of {time_bytes} bytes");
    cut_file(&time_indexes[2], 12);
    // Segment 3: the offset index lost its second half.
    let offset_bytes = std::fs::metadata(&offset_indexes[3]).unwrap().len();
    cut_file(&offset_indexes[3], offset_bytes / 16 * 8);

    let log = open(dir.path(), config.clone(), true);
    assert_eq!(read_all(&log, 0), expected);
    for offset in [0, 17, 33, 64, 90, 119] {
        let records = decode(&log.read(offset, 1).unwrap().bytes);
        assert!(records.iter().any(|r| r.0 == offset), "offset {offset}");
    }
    let recovered: Vec<Option<(i64, i64)>> = [0, 7_500, 21_000, 40_000, 58_999]
        .iter()
        .map(|&t| log.offset_for_timestamp(t).unwrap())
        .collect();
    assert_eq!(recovered, timestamps);
    // Retention keeps every segment holding a record newer than the cutoff: with 45 s of
    // retention at 60 s, only segments wholly older than 15 s go, so offset 30 (15 s) stays.
    log.set_config(LogConfig {
        retention_ms: Some(45_000),
        ..config.clone()
    });
    log.apply_retention(60_000).unwrap();
    assert!(
        log.log_start_offset() <= 30,
        "start {}",
        log.log_start_offset()
    );
    assert!(log.log_start_offset() > 0);
    log.close().unwrap();
}

/// A power loss can also cut a rolled segment's data short when nothing past it was acked (the
/// commit step syncs the rolled segment before any later offset counts as durable): recovery
/// cuts the torn batch and keeps the later segments.
#[test]
fn a_torn_tail_of_a_rolled_segment_is_cut_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Group);
    let (log, expected) = filled_with_syncs_held(dir.path(), FlushMode::Group);
    drop(log);
    let logs = segment_files(dir.path(), "log");
    let bytes = std::fs::metadata(&logs[2]).unwrap().len();
    cut_file(&logs[2], bytes - 10);
    let log = open(dir.path(), config, true);
    let second_base: i64 = logs[2]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let third_base: i64 = logs[3]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let survived = read_all(&log, 0);
    // Everything but the torn batch's records (the last batch of segment 2: 2 records).
    let lost: Vec<i64> = expected
        .iter()
        .map(|r| r.0)
        .filter(|o| !survived.iter().any(|s| s.0 == *o))
        .collect();
    assert_eq!(lost, vec![third_base - 2, third_base - 1]);
    assert!(second_base < third_base - 2);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(
        log.append_committed(batch(&values(99, 1, 10), 0), 0)
            .unwrap()
            .base_offset,
        120
    );
}

/// Retention writes no log-start checkpoint: the first segment left is the start, before and
/// after a crash; a start inside a segment still comes from `delete_records_before`'s.
#[test]
fn retention_start_comes_from_the_files_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Group);
    let log = open(dir.path(), config.clone(), false);
    fill(&log);
    log.set_config(LogConfig {
        retention_ms: Some(30_000),
        ..config.clone()
    });
    assert!(log.apply_retention(60_000).unwrap() > 0);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(!dir.path().join("log-start-offset").exists());
    let first: i64 = segment_files(dir.path(), "log")[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first, start);
    drop(log); // crash
    let log = open(dir.path(), config.clone(), true);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(read_all(&log, start).first().unwrap().0, start);
    // A start inside a segment is checkpointed, and retention moving past it changes nothing
    // that recovery could get wrong.
    let inside = start + 1;
    log.delete_records_before(inside).unwrap();
    drop(log);
    let log = open(dir.path(), config.clone(), true);
    assert_eq!(log.log_start_offset(), inside);
    log.set_config(LogConfig {
        retention_ms: Some(10_000),
        ..config
    });
    log.apply_retention(60_000).unwrap();
    let start = log.log_start_offset();
    assert!(start > inside);
    drop(log);
    let log = open(dir.path(), small_config(FlushMode::Group), true);
    assert_eq!(log.log_start_offset(), start);
}

fn spare_inode(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join("spare.log.tmp"))
        .ok()
        .map(|m| m.ino())
}

/// The spare's inode, once the background thread made it after a roll.
fn wait_for_spare(dir: &Path) -> u64 {
    let mut polls = 0;
    loop {
        if let Some(inode) = spare_inode(dir) {
            return inode;
        }
        polls += 1;
        assert!(polls < 30_000, "no spare was made after a roll");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// After a roll the background thread makes the next segment's files under temporary names;
/// the next roll renames them into place. A crash leaves them behind: the next open removes
/// them, and the log works on.
#[test]
fn a_roll_takes_the_spare_and_leftover_spares_go_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Group);
    let log = open(dir.path(), config.clone(), false);
    let mut i = 0;
    let mut append = |log: &Log| {
        log.append_committed(batch(&values(i, 2, 40), i as i64), 0)
            .unwrap();
        i += 1;
    };
    while segment_files(dir.path(), "log").len() < 2 {
        append(&log);
    }
    let spare = wait_for_spare(dir.path());
    let before = segment_files(dir.path(), "log");
    while segment_files(dir.path(), "log").len() == before.len() {
        append(&log);
    }
    let new_log = segment_files(dir.path(), "log").pop().unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&new_log).unwrap().ino(), spare);
    }
    let expected = read_all(&log, 0);
    for _ in 0..5 {
        append(&log);
    }
    let expected_all = read_all(&log, 0);
    assert!(expected_all.starts_with(&expected));
    // Once a spare is ready no job of this log makes another: none can race the reopen.
    wait_for_spare(dir.path());
    drop(log); // crash: the spare stays on disk
    std::fs::write(dir.path().join("spare.log.tmp"), b"").unwrap();
    std::fs::write(dir.path().join("spare.index.tmp"), b"").unwrap();
    let log = open(dir.path(), config, true);
    assert!(spare_inode(dir.path()).is_none());
    assert!(!dir.path().join("spare.index.tmp").exists());
    assert_eq!(read_all(&log, 0), expected_all);
    let end = log.log_end_offset();
    for _ in 0..20 {
        append(&log);
    }
    assert_eq!(read_all(&log, 0).len() as i64, end + 40);
    log.delete().unwrap();
    assert!(!dir.path().exists());
}
