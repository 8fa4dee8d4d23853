//! Behaviour of `Log` through its public API: reads, durability, recovery, timestamps, retention.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;

use common::*;
use kafka_protocol::records::Compression;
use porter_storage::{FileCache, FlushMode, Log, LogConfig, StorageError};

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Never), false);
    let first = log
        .append_committed(batch(&values(1, 3, 10), 5), 0)
        .unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.record_count),
        (0, 2, 3)
    );
    // Two batches in one call.
    let mut two = batch(&values(2, 2, 10), 6).to_vec();
    two.extend_from_slice(&batch(&values(3, 1, 10), 7));
    let second = log.append_committed(two.into(), 0).unwrap();
    assert_eq!(
        (second.base_offset, second.last_offset, second.max_timestamp),
        (3, 5, 7)
    );
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.high_watermark(), 6);
    let records = read_all(&log, 0);
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert_eq!(records[3].1, values(2, 2, 10)[0]);
    // Reading mid-batch returns the whole batch containing the offset.
    assert_eq!(decode(&log.read(4, 1).unwrap().bytes)[0].0, 3);
    assert!(log.read(6, 100).unwrap().bytes.is_empty());
    assert!(matches!(
        log.read(7, 100),
        Err(StorageError::OffsetOutOfRange { requested: 7, .. })
    ));
    assert!(matches!(
        log.read(-1, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn a_bad_batch_rejects_the_whole_call() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Never), false);
    let mut buffer = batch(&values(1, 2, 10), 5).to_vec();
    let mut bad = batch(&values(2, 2, 10), 5).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    buffer.extend_from_slice(&bad);
    assert!(matches!(
        log.append_committed(buffer.into(), 0),
        Err(StorageError::CorruptBatch(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    let too_large = LogConfig {
        max_batch_bytes: 100,
        ..small_config(FlushMode::Never)
    };
    log.set_config(too_large);
    assert!(matches!(
        log.append_committed(batch(&values(3, 1, 200), 5), 0),
        Err(StorageError::BatchTooLarge { max: 100, .. })
    ));
}

#[test]
fn reads_stop_at_max_bytes_but_return_one_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Never), false);
    let big = batch(&values(1, 1, 500), 0);
    log.append_committed(big.clone(), 0).unwrap();
    log.append_committed(batch(&values(2, 1, 10), 0), 0)
        .unwrap();
    assert_eq!(log.read(0, 10).unwrap().bytes.len(), big.len());
    let both = log.read(0, 10_000).unwrap();
    assert_eq!(decode(&both.bytes).len(), 2);
}

#[test]
fn written_data_is_hidden_until_committed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Group), false);
    let mut watcher = log.subscribe();
    let info = log.append(batch(&values(1, 2, 10), 0), 0).unwrap();
    assert_eq!(log.high_watermark(), 0);
    assert!(matches!(
        log.read(1, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // A sync makes it durable but not visible: committing is the owner's decision.
    assert_eq!(log.durable_offset(), 0);
    let syncs = log.sync_count();
    assert_eq!(log.sync().unwrap(), info.last_offset + 1);
    assert_eq!(log.durable_offset(), 2);
    assert_eq!(log.high_watermark(), 0);
    assert!(!watcher.has_changed().unwrap());
    // Nothing new to sync: no syscall.
    assert_eq!(log.sync().unwrap(), 2);
    assert_eq!(log.sync_count(), syncs + 1);
    assert_eq!(log.commit_to(info.last_offset + 1), 2);
    assert_eq!(log.commit_to(1), 2, "the high watermark never goes back");
    assert_eq!(log.high_watermark(), 2);
    assert!(watcher.has_changed().unwrap());
    assert_eq!(*watcher.borrow_and_update(), 2);
    assert_eq!(read_all(&log, 0).len(), 2);
}

#[test]
fn group_commit_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), small_config(FlushMode::Group), false));
    let watcher = log.subscribe();
    let acknowledged = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
    let threads: Vec<_> = (0..8u64)
        .map(|thread| {
            let log = Arc::clone(&log);
            let acknowledged = Arc::clone(&acknowledged);
            std::thread::spawn(move || {
                let mut last_seen = 0;
                for i in 0..25 {
                    let value = values(thread * 1000 + i, 1, 20);
                    let info = log.append_committed(batch(&value, 0), 0).unwrap();
                    let high_watermark = log.high_watermark();
                    assert!(
                        high_watermark > info.last_offset,
                        "acknowledged offset not visible"
                    );
                    assert!(high_watermark >= last_seen, "high watermark went backwards");
                    last_seen = high_watermark;
                    acknowledged
                        .lock()
                        .insert(info.base_offset, value[0].clone());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(*watcher.borrow(), 200);
    let records: BTreeMap<_, _> = read_all(&log, 0).into_iter().collect();
    assert_eq!(records, *acknowledged.lock());
}

#[test]
fn torn_tail_is_cut_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config(FlushMode::Never)
    };
    let log = open(dir.path(), config.clone(), false);
    for i in 0..20 {
        log.append_committed(batch(&values(i, 2, 30), i as i64), 0)
            .unwrap();
    }
    let expected = read_all(&log, 0);
    drop(log); // crash: no close
    let segment = segment_files(dir.path(), "log").pop().unwrap();
    let whole_bytes = std::fs::metadata(&segment).unwrap().len();
    let half_batch = batch(&values(99, 3, 30), 0);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&half_batch[..half_batch.len() / 2]).unwrap();
    drop(file);
    let log = open(dir.path(), config.clone(), true);
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole_bytes);
    assert_eq!(read_all(&log, 0), expected);
    let info = log
        .append_committed(batch(&values(100, 1, 30), 0), 0)
        .unwrap();
    assert_eq!(info.base_offset, 40);
    drop(log);
    // Garbage after whole batches.
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0xab; 100]).unwrap();
    drop(file);
    let log = open(dir.path(), config, true);
    assert_eq!(log.log_end_offset(), 41);
    assert_eq!(
        log.append_committed(batch(&values(101, 1, 30), 0), 0)
            .unwrap()
            .base_offset,
        41
    );
    assert_eq!(read_all(&log, 0).len(), 42);
}

#[test]
fn corrupt_batch_in_the_middle_cuts_the_rest_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config(FlushMode::Never)
    };
    let log = open(dir.path(), config.clone(), false);
    let first = batch(&values(1, 1, 30), 0);
    log.append_committed(first.clone(), 0).unwrap();
    log.append_committed(batch(&values(2, 1, 30), 0), 0)
        .unwrap();
    log.append_committed(batch(&values(3, 1, 30), 0), 0)
        .unwrap();
    drop(log);
    let segment = segment_files(dir.path(), "log").pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[first.len() + 70] ^= 0xff; // inside the second batch's records
    std::fs::write(&segment, bytes).unwrap();
    let log = open(dir.path(), config, true);
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        first.len() as u64
    );
}

#[test]
fn deleted_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Never);
    let log = open(dir.path(), config.clone(), false);
    for i in 0..60 {
        log.append_committed(batch(&values(i, 2, 40), i as i64), 0)
            .unwrap();
    }
    let expected = read_all(&log, 0);
    log.close().unwrap();
    let indexes = segment_files(dir.path(), "index");
    assert!(indexes.len() > 3, "expected several segments");
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], [7u8; 13]).unwrap(); // not a multiple of 8
    let mut reversed = Vec::new();
    for (offset, position) in [(50u32, 900u32), (10, 100)] {
        reversed.extend_from_slice(&offset.to_be_bytes());
        reversed.extend_from_slice(&position.to_be_bytes());
    }
    std::fs::write(&indexes[2], reversed).unwrap(); // out of order
    let last_timeindex = segment_files(dir.path(), "timeindex").pop().unwrap();
    std::fs::remove_file(last_timeindex).unwrap();
    let log = open(dir.path(), config, false);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(read_all(&log, 0), expected);
    for offset in [0, 17, 33, 64, 119] {
        let records = decode(&log.read(offset, 1).unwrap().bytes);
        assert!(
            records.iter().any(|r| r.0 == offset),
            "offset {offset} not in its batch"
        );
    }
    assert!(
        std::fs::metadata(&indexes[0]).is_ok(),
        "index file recreated"
    );
}

#[test]
fn clean_reopen_keeps_offsets_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Interval);
    let log = open(dir.path(), config.clone(), false);
    for i in 0..30 {
        log.append_committed(batch(&values(i, 3, 25), i as i64), 0)
            .unwrap();
    }
    log.flush().unwrap();
    let expected = read_all(&log, 0);
    log.close().unwrap();
    assert!(matches!(
        log.append_committed(batch(&values(1, 1, 1), 0), 0),
        Err(StorageError::Closed)
    ));
    let log = open(dir.path(), config, false);
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(read_all(&log, 0), expected);
    assert_eq!(
        log.append_committed(batch(&values(9, 1, 1), 0), 0)
            .unwrap()
            .base_offset,
        90
    );
}

#[test]
fn offset_for_timestamp_finds_the_exact_record() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config(FlushMode::Never), false);
        // Timestamps within a batch out of order: the first record >= ts in offset order wins.
        for i in 0..20i64 {
            let timestamps = [i * 100 + 50, i * 100 + 10, i * 100 + 90, i * 100 + 30];
            log.append_committed(
                batch_with(&values(i as u64, 4, 20), &timestamps, compression),
                0,
            )
            .unwrap();
        }
        assert_eq!(
            log.offset_for_timestamp(0).unwrap(),
            Some((0, 50)),
            "{compression:?}"
        );
        assert_eq!(
            log.offset_for_timestamp(60).unwrap(),
            Some((2, 90)),
            "{compression:?}"
        );
        assert_eq!(
            log.offset_for_timestamp(1_010).unwrap(),
            Some((40, 1_050)),
            "{compression:?}"
        );
        assert_eq!(
            log.offset_for_timestamp(1_095).unwrap(),
            Some((44, 1_150)),
            "{compression:?}"
        );
        assert_eq!(
            log.offset_for_timestamp(1_991).unwrap(),
            None,
            "{compression:?}"
        );
        assert_eq!(
            log.offset_for_timestamp(1_975).unwrap(),
            Some((78, 1_990)),
            "{compression:?}"
        );
        log.close().unwrap();
        let log = open(dir.path(), small_config(FlushMode::Never), false);
        assert_eq!(
            log.offset_for_timestamp(1_095).unwrap(),
            Some((44, 1_150)),
            "{compression:?}"
        );
    }
}

#[test]
fn retention_by_time_and_size_and_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Never);
    let log = open(dir.path(), config.clone(), false);
    for i in 0..40 {
        log.append_committed(batch(&values(i, 2, 40), i as i64 * 1000), 0)
            .unwrap();
    }
    let segments = segment_files(dir.path(), "log").len();
    assert!(segments > 4);
    // Nothing expired yet.
    log.set_config(LogConfig {
        retention_ms: Some(100_000),
        ..config.clone()
    });
    assert_eq!(log.apply_retention(50_000).unwrap(), 0);
    // At 30 s with 10 s retention, segments whose newest record is before 20 s go (offsets < 40).
    log.set_config(LogConfig {
        retention_ms: Some(10_000),
        ..config.clone()
    });
    let freed = log.apply_retention(30_000).unwrap();
    assert!(freed > 0);
    let start = log.log_start_offset();
    assert!(start > 0 && start <= 40, "start {start}");
    assert!(segment_files(dir.path(), "log").len() < segments);
    assert!(matches!(
        log.read(0, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, start).first().unwrap().0, start);
    // Size-based.
    log.set_config(LogConfig {
        retention_bytes: Some(1500),
        ..config.clone()
    });
    log.apply_retention(0).unwrap();
    assert!(log.size_bytes() <= 1500 || segment_files(dir.path(), "log").len() == 1);
    // delete_records_before inside a segment, persisted across reopen.
    let target = log.log_end_offset() - 3;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert!(matches!(
        log.delete_records_before(1_000),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    log.close().unwrap();
    let log = open(dir.path(), config, false);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(read_all(&log, target).len(), 3);
    log.delete().unwrap();
    assert!(!dir.path().exists());
}

/// A queue reclaims its acked prefix while publishers append (and roll segments): delete-records
/// runs without the append lock, so both must interleave without losing or reordering records.
#[test]
fn delete_records_while_appending() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), small_config(FlushMode::Never), false));
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut last = -1;
            for i in 0..400 {
                let info = log
                    .append_committed(batch(&values(i, 2, 40), 0), 0)
                    .unwrap();
                assert!(info.base_offset > last, "offsets must grow");
                last = info.last_offset;
            }
        })
    };
    let mut start = 0;
    while !writer.is_finished() || start < log.high_watermark() - 10 {
        let target = (log.high_watermark() - 10).max(start);
        start = log.delete_records_before(target).unwrap();
        assert!(start >= target);
        let records = read_all(&log, start);
        let offsets: Vec<_> = records.iter().map(|(offset, _)| *offset).collect();
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "gap below the end"
        );
        assert!(offsets.first().is_none_or(|first| *first == start));
    }
    writer.join().unwrap();
    assert_eq!(log.log_end_offset(), 800);
    assert!(
        segment_files(dir.path(), "log").len() <= 3,
        "reclaimed segments must go"
    );
    log.close().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Never), false);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(read_all(&log, start).len() as i64, 800 - start);
}

#[test]
fn segment_ms_rolls_old_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: 1000,
        ..small_config(FlushMode::Never)
    };
    let log = open(dir.path(), config, false);
    log.append_committed(batch(&values(1, 1, 10), 0), 0)
        .unwrap();
    log.append_committed(batch(&values(2, 1, 10), 0), 500)
        .unwrap();
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    log.append_committed(batch(&values(3, 1, 10), 0), 1_501)
        .unwrap();
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
    assert_eq!(read_all(&log, 0).len(), 3);
}

#[test]
fn file_cache_of_four_serves_twenty_logs() {
    let root = tempfile::tempdir().unwrap();
    let files = FileCache::new(4);
    let logs: Vec<Log> = (0..20)
        .map(|i| {
            Log::open(
                &root.path().join(format!("p{i}")),
                small_config(FlushMode::Group),
                files.clone(),
                false,
            )
            .unwrap()
        })
        .collect();
    for round in 0..10u64 {
        for (i, log) in logs.iter().enumerate() {
            let info = log
                .append_committed(batch(&values(round * 100 + i as u64, 2, 60), 0), 0)
                .unwrap();
            assert!(files.open_count() <= 4);
            let records = decode(&log.read(info.base_offset, 1000).unwrap().bytes);
            assert_eq!(records[0].1, values(round * 100 + i as u64, 2, 60)[0]);
        }
    }
    for (i, log) in logs.iter().enumerate() {
        let records = read_all(log, 0);
        assert_eq!(records.len(), 20);
        assert_eq!(records[19].1, values(900 + i as u64, 2, 60)[1]);
        log.close().unwrap();
    }
    assert!(files.open_count() <= 4);
}

#[test]
fn prepared_batches_append_without_a_second_crc_pass() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Never), false);
    let two = [batch(&values(1, 2, 10), 0), batch(&values(2, 1, 10), 0)].concat();
    let info = log.append_prepared(two.into(), 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    log.commit_to(info.last_offset + 1);
    assert_eq!(read_all(&log, 0).len(), 3);
    // Lengths are still checked: a cut buffer writes nothing.
    let whole = batch(&values(3, 1, 10), 0);
    assert!(matches!(
        log.append_prepared(whole.slice(..whole.len() - 1), 0),
        Err(StorageError::CorruptBatch(_))
    ));
    assert_eq!(log.log_end_offset(), 3);
}

/// The bytes of a region, as the Kafka writer streams them.
fn region_bytes(log: &Log, offset: i64, max_bytes: u32) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    match log.read_region(offset, max_bytes).unwrap().region {
        None => Vec::new(),
        Some(r) => {
            let mut bytes = vec![0u8; r.len as usize];
            r.file.read_exact_at(&mut bytes, r.position).unwrap();
            bytes
        }
    }
}

/// A log of 60 batches of 1–3 records of several sizes over 1 KiB segments, the first
/// `committed` of them committed (the rest written past the high watermark).
fn sixty_batches(dir: &std::path::Path, committed: u64) -> Log {
    let log = open(dir, small_config(FlushMode::Group), false);
    for i in 0..60u64 {
        let records = values(i, 1 + (i % 3) as usize, 10 + (i as usize * 7) % 90);
        let info = log.append(batch(&records, 0), 0).unwrap();
        if i < committed {
            log.commit_to(info.last_offset + 1);
        }
    }
    log
}

/// A region is exactly what `read` returns, for every offset and budget, with batches of
/// several sizes across segments and index entries, and with written but uncommitted batches
/// past the high watermark.
#[test]
fn regions_hold_exactly_the_batches_a_read_returns() {
    let dir = tempfile::tempdir().unwrap();
    let log = sixty_batches(dir.path(), 50);
    let hwm = log.high_watermark();
    assert!(hwm < log.log_end_offset());
    for offset in 0..=hwm {
        for max_bytes in [1, 60, 100, 200, 333, 700, 1024, 100_000] {
            let read = log.read(offset, max_bytes).unwrap();
            assert_eq!(
                region_bytes(&log, offset, max_bytes),
                read.bytes.to_vec(),
                "offset {offset}, max_bytes {max_bytes}"
            );
            let region = log.read_region(offset, max_bytes).unwrap();
            assert_eq!(region.high_watermark, read.high_watermark);
            assert_eq!(region.log_start_offset, read.log_start_offset);
        }
    }
    assert!(log.read_region(hwm, 1000).unwrap().region.is_none());
}

/// The in-memory answer for a consumer at the tail, when there is one, is `read_region`'s: for
/// every offset and budget, across rolls (a rolled segment forgets its recent batches), with
/// batches past the high watermark, and after a restart (nothing recent yet). It answers the
/// tail itself, so the fast path is taken, not just skipped.
#[test]
fn cached_regions_are_the_regions_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let check = |log: &Log| {
        let hwm = log.high_watermark();
        let mut answered = 0;
        for offset in 0..=hwm {
            for max_bytes in [1, 100, 250, 700, 5000] {
                let Some(cached) = log.read_region_cached(offset, max_bytes) else {
                    continue;
                };
                answered += 1;
                let cached = cached.unwrap();
                let disk = log.read_region(offset, max_bytes).unwrap();
                let place = |r: &Option<porter_storage::FileRegion>| {
                    r.as_ref().map(|r| (r.position, r.len))
                };
                assert_eq!(
                    place(&cached.region),
                    place(&disk.region),
                    "offset {offset}, max {max_bytes}"
                );
                assert_eq!(cached.high_watermark, disk.high_watermark);
                assert_eq!(cached.log_end_offset, disk.log_end_offset);
            }
        }
        answered
    };
    let log = sixty_batches(dir.path(), 58);
    let hwm = log.high_watermark();
    assert!(
        check(&log) > 5,
        "the tail is answered from memory, not only the high watermark"
    );
    let before_tail = log.read_region(hwm - 1, 1000).unwrap().region.unwrap();
    let tail = log
        .read_region_cached(hwm - 1, 1000)
        .unwrap()
        .unwrap()
        .region
        .unwrap();
    assert_eq!(
        (tail.position, tail.len),
        (before_tail.position, before_tail.len)
    );
    assert!(matches!(log.read_region_cached(hwm, 1000), Some(Ok(r)) if r.region.is_none()));
    assert!(matches!(
        log.read_region_cached(hwm + 1, 1000),
        Some(Err(StorageError::OffsetOutOfRange { .. }))
    ));
    drop(log);
    let log = open(dir.path(), small_config(FlushMode::Group), false);
    log.commit_to(log.log_end_offset());
    check(&log);
}

/// A region taken before retention deletes its segment still reads the same bytes: its file
/// handle keeps the unlinked file's data.
#[test]
fn a_region_outlives_the_deletion_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FlushMode::Never);
    let log = open(dir.path(), config.clone(), false);
    for i in 0..40 {
        log.append_committed(batch(&values(i, 2, 40), i as i64 * 1000), 0)
            .unwrap();
    }
    let expected = log.read(0, 500).unwrap().bytes;
    let region = log.read_region(0, 500).unwrap().region.unwrap();
    log.set_config(LogConfig {
        retention_ms: Some(1_000),
        ..config
    });
    assert!(log.apply_retention(1_000_000).unwrap() > 0);
    assert!(log.log_start_offset() > 0);
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; region.len as usize];
    region
        .file
        .read_exact_at(&mut bytes, region.position)
        .unwrap();
    assert_eq!(bytes, expected.to_vec());
}
