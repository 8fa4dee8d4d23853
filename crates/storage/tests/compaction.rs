//! Cleanup policies and timestamp types through the public API: LogAppendTime stamping,
//! retention vs. policy, compaction (last value per key, tombstones, lag, active segment,
//! codecs, crash-safe swap, concurrent reads, a model check), batch_headers, max_timestamp.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use kafka_protocol::records::Compression;
use porter_storage::record_batch;
use porter_storage::{
    CleanerCrashPoint, CleanerLimits, CleanupPolicy, FileCache, FlushMode, Log, LogConfig,
    TimestampType,
};
use proptest::prelude::*;

type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

const UNTHROTTLED: CleanerLimits = CleanerLimits {
    key_map_bytes_max: 64 << 20,
    io_bytes_per_sec: 0,
};

fn open(dir: &Path, config: LogConfig, after_crash: bool) -> Log {
    Log::open(dir, config, FileCache::new(64), after_crash).unwrap()
}

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: u64::MAX,
        ..small_config(FlushMode::Never)
    }
}

/// Files in `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Base offset of the active (last) segment, from the file names.
fn active_base(dir: &Path) -> i64 {
    let last = files_ending(dir, ".log").pop().unwrap();
    last.trim_end_matches(".log").parse().unwrap()
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// Appends `rounds` rounds over `keys` keys (value = "k{key}-r{round}", 40 bytes), one batch
/// per round with the given codecs in turn. Returns every appended record.
fn fill(log: &Log, keys: usize, rounds: usize, codecs: &[Compression], ts: i64) -> Vec<Full> {
    let mut all = Vec::new();
    for round in 0..rounds {
        let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..keys)
            .map(|k| {
                let mut value = format!("k{k}-r{round}-").into_bytes();
                value.resize(40, b'v');
                (key(k), value)
            })
            .collect();
        let records: Vec<Keyed> = owned
            .iter()
            .map(|(k, v)| (Some(&k[..]), Some(&v[..]), ts))
            .collect();
        let info = log
            .append_committed(keyed_batch(&records, codecs[round % codecs.len()], -1), ts)
            .unwrap();
        for (i, (k, v)) in owned.into_iter().enumerate() {
            all.push((info.base_offset + i as i64, Some(k), Some(v), ts));
        }
    }
    all
}

/// The model: records that survive a full clean of everything below `active_base`.
fn last_per_key(all: &[Full], active_base: i64) -> Vec<Full> {
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    for (offset, key, _, _) in all {
        if let Some(key) = key {
            latest.insert(key.clone(), *offset);
        }
    }
    all.iter()
        .filter(|(offset, key, _, _)| {
            *offset >= active_base || key.as_ref().is_none_or(|k| latest[k] == *offset)
        })
        .cloned()
        .collect()
}

#[test]
fn log_append_time_stamps_header_crc_and_time_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_config(FlushMode::Never)
    };
    let log = open(dir.path(), config.clone(), false);
    let info = log
        .append_committed(
            batch_with(&values(1, 2, 10), &[10, 20], Compression::Gzip),
            5_000,
        )
        .unwrap();
    assert_eq!((info.log_append_time, info.max_timestamp), (5_000, 5_000));
    let second = log
        .append_committed(batch(&values(2, 1, 10), 30), 6_000)
        .unwrap();
    assert_eq!(second.log_append_time, 6_000);
    let bytes = log.read(0, 1 << 20).unwrap().bytes;
    let headers = headers_of(&bytes);
    assert_eq!(headers.len(), 2);
    assert!(headers.iter().all(|h| h.is_log_append_time()));
    assert_eq!(headers[0].max_timestamp, 5_000);
    assert_eq!(headers[0].compression(), 1);
    record_batch::validate(&bytes[..headers[0].total_bytes()], u32::MAX).unwrap();
    // Time lookups use the append time, not the producer's 10/20/30.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 5_000)));
    assert_eq!(log.offset_for_timestamp(5_001).unwrap(), Some((2, 6_000)));
    assert_eq!(log.offset_for_timestamp(6_001).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), Some((2, 6_000)));
    // A crash reopen CRC-checks every batch: the rewritten CRCs hold.
    drop(log);
    let log = open(dir.path(), config, true);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.offset_for_timestamp(5_001).unwrap(), Some((2, 6_000)));
    // CreateTime leaves batches alone.
    log.set_config(small_config(FlushMode::Never));
    let third = log
        .append_committed(batch(&values(3, 1, 10), 40), 7_000)
        .unwrap();
    assert_eq!((third.log_append_time, third.max_timestamp), (-1, 40));
}

#[test]
fn retention_applies_only_when_the_policy_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(10),
        ..compact_config()
    };
    let log = open(dir.path(), config.clone(), false);
    fill(&log, 4, 20, &[Compression::None], 100);
    assert!(files_ending(dir.path(), ".log").len() > 2);
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 0);
    assert_eq!(log.log_start_offset(), 0);
    log.set_config(LogConfig {
        cleanup_policy: CleanupPolicy::CompactDelete,
        ..config
    });
    assert!(log.apply_retention(1_000_000).unwrap() > 0);
    assert!(log.log_start_offset() > 0);
}

#[test]
fn compaction_keeps_the_last_value_per_key_and_preserves_offsets_and_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(), false);
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut all = fill(&log, 6, 25, &codecs, 100);
    // Keyless records stay; key-0 is superseded by a record in the active segment.
    let keyless = log
        .append_committed(
            keyed_batch(&[(None, Some(b"no key"), 100)], Compression::None, -1),
            100,
        )
        .unwrap();
    all.push((keyless.base_offset, None, Some(b"no key".to_vec()), 100));
    all.extend(fill(&log, 1, 1, &[Compression::None], 100));
    let codec_of: BTreeMap<i64, u8> = log
        .batch_headers(0, usize::MAX)
        .unwrap()
        .iter()
        .flat_map(|h| (h.base_offset..=h.last_offset()).map(|o| (o, h.compression())))
        .collect();
    let active = active_base(dir.path());
    let active_before = std::fs::read(dir.path().join(format!("{active:020}.log"))).unwrap();
    let size_before = log.size_bytes();

    let stats = log.compact(1_000, &UNTHROTTLED).unwrap();
    assert!(stats.segments_cleaned > 0 && stats.records_superseded > 0);
    assert_eq!(stats.passes, 1);
    let expected = last_per_key(&all, active);
    assert_eq!(read_full(&log), expected);
    assert!(log.size_bytes() < size_before);
    // key-0's older values are gone even though its latest record is in the active segment.
    assert_eq!(
        read_full(&log)
            .iter()
            .filter(|r| r.1.as_deref() == Some(&key(0)[..]))
            .count(),
        1
    );
    // Never touches the active segment; every batch kept its codec.
    let active_after = std::fs::read(dir.path().join(format!("{active:020}.log"))).unwrap();
    assert_eq!(active_before, active_after);
    for header in log.batch_headers(0, usize::MAX).unwrap() {
        assert_eq!(header.compression(), codec_of[&header.base_offset]);
    }
    // Reads at offsets that were removed return the next batch.
    let removed = (0..active)
        .find(|o| !expected.iter().any(|r| r.0 == *o))
        .unwrap();
    let next = expected.iter().find(|r| r.0 > removed).unwrap().0;
    let slice = log.read(removed, 1).unwrap();
    assert!(headers_of(&slice.bytes)[0].last_offset() >= next);
    // A second run finds nothing to do; a reopen (clean, then after a crash) sees the same.
    assert_eq!(
        log.compact(1_000, &UNTHROTTLED).unwrap().segments_cleaned,
        0
    );
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), compact_config(), false);
    assert_eq!(read_full(&log), expected);
    drop(log);
    for index in files_ending(dir.path(), "index") {
        std::fs::remove_file(dir.path().join(index)).unwrap(); // rebuilt across the gaps
    }
    let log = open(dir.path(), compact_config(), true);
    assert_eq!(read_full(&log), expected);
    assert_eq!(log.log_end_offset(), all.last().unwrap().0 + 1);
}

#[test]
fn a_small_key_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(), false);
    let all = fill(&log, 16, 12, &[Compression::Lz4], 100);
    let limits = CleanerLimits {
        key_map_bytes_max: 40 * 5, // five keys per pass
        io_bytes_per_sec: 0,
    };
    let stats = log.compact(1_000, &limits).unwrap();
    assert!(stats.passes >= 4, "{stats:?}");
    assert_eq!(read_full(&log), last_per_key(&all, active_base(dir.path())));
}

#[test]
fn tombstones_go_only_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1_000,
        ..compact_config()
    };
    let log = open(dir.path(), config, false);
    fill(&log, 3, 10, &[Compression::None], 100);
    let tombstone = log
        .append_committed(
            keyed_batch(&[(Some(&key(1)), None, 500)], Compression::None, -1),
            500,
        )
        .unwrap();
    fill(&log, 3, 10, &[Compression::None], 600); // key-1 gets a value again
                                                  // key-5's last record is a tombstone: it stands until delete_retention_ms.
    let standing = log
        .append_committed(
            keyed_batch(&[(Some(&key(5)), Some(b"v"), 700)], Compression::None, -1),
            700,
        )
        .unwrap();
    let deleted = log
        .append_committed(
            keyed_batch(&[(Some(&key(5)), None, 800)], Compression::None, -1),
            800,
        )
        .unwrap();
    fill(&log, 2, 30, &[Compression::None], 900); // push the tombstone out of the active segment
    assert!(active_base(dir.path()) > deleted.base_offset);
    let has = |log: &Log, offset: i64| read_full(log).iter().any(|r| r.0 == offset);

    log.compact(1_000, &UNTHROTTLED).unwrap(); // 200 ms after the tombstone: kept
    assert!(has(&log, deleted.base_offset));
    assert!(!has(&log, standing.base_offset));
    assert!(!has(&log, tombstone.base_offset)); // superseded by a later key-1 value

    let stats = log.compact(1_800, &UNTHROTTLED).unwrap(); // exactly delete_retention_ms
    assert_eq!(stats.tombstones_removed, 1);
    assert!(!has(&log, deleted.base_offset));
    assert!(read_full(&log)
        .iter()
        .all(|r| r.1.as_deref() != Some(&key(5)[..])));
}

#[test]
fn min_compaction_lag_protects_young_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 1_000,
        ..compact_config()
    };
    let log = open(dir.path(), config, false);
    let old = fill(&log, 4, 15, &[Compression::None], 100);
    let young_start = log.log_end_offset();
    let young = fill(&log, 4, 15, &[Compression::None], 5_000);
    let before = read_full(&log);
    // At 5 500 the young records (5 000) are within the lag; only older segments are cleaned,
    // and records in the young part are kept even when superseded.
    log.compact(5_500, &UNTHROTTLED).unwrap();
    let after = read_full(&log);
    assert!(after.len() < before.len());
    let young_before: Vec<&Full> = before.iter().filter(|r| r.3 == 5_000).collect();
    let young_after: Vec<&Full> = after.iter().filter(|r| r.3 == 5_000).collect();
    assert_eq!(young_before, young_after);
    assert_eq!(young_after.len(), young.len());
    // Old records were superseded by young ones: only the segment holding both old and young
    // records (not cleanable) keeps old ones; 1 KiB segments hold at most 4 batches of 4.
    assert!(after.iter().filter(|r| r.0 < young_start).count() <= 16);
    // Later, everything but the active segment is cleaned.
    let mut all = old;
    all.extend(young);
    log.compact(10_000, &UNTHROTTLED).unwrap();
    assert_eq!(read_full(&log), last_per_key(&all, active_base(dir.path())));
}

#[test]
fn compaction_keeps_log_append_time_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..compact_config()
    };
    let log = open(dir.path(), config, false);
    // Two batches of producer 7 with keys a, b; then key a again from a non-idempotent writer.
    let first = log
        .append_committed(
            keyed_batch(
                &[
                    (Some(b"a"), Some(b"1"), 1),
                    (Some(b"b"), Some(b"1"), 2),
                    (Some(b"c"), Some(b"1"), 3),
                ],
                Compression::Zstd,
                7,
            ),
            1_000,
        )
        .unwrap();
    let last_of_producer = log
        .append_committed(
            keyed_batch(&[(Some(b"b"), Some(b"2"), 4)], Compression::None, 7),
            1_100,
        )
        .unwrap();
    fill(&log, 1, 1, &[Compression::None], 1_200);
    log.append_committed(
        keyed_batch(&[(Some(b"a"), Some(b"2"), 5)], Compression::None, -1),
        1_300,
    )
    .unwrap();
    fill(&log, 3, 40, &[Compression::None], 1_400); // roll everything above out of the active
    log.compact(2_000, &UNTHROTTLED).unwrap();
    let headers = log.batch_headers(0, 2).unwrap();
    // The first batch lost a (superseded) and b, kept c: re-encoded with a gap, same codec,
    // producer fields, base sequence, timestamp type and append time.
    let rewritten = headers[0];
    assert_eq!(rewritten.base_offset, first.base_offset + 2);
    assert_eq!(rewritten.records_count, 1);
    assert_eq!(rewritten.compression(), 4);
    assert_eq!(
        (
            rewritten.producer_id,
            rewritten.producer_epoch,
            rewritten.base_sequence
        ),
        (7, 3, 100)
    );
    assert!(rewritten.is_log_append_time());
    assert_eq!(rewritten.max_timestamp, 1_000);
    // Nothing in the producer's last batch is removed: it is kept as it is.
    assert_eq!(headers[1].base_offset, last_of_producer.base_offset);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((2, 1_000)));
}

/// Kafka's `RETAIN_EMPTY`: the records of a producer's last batch are removed like any
/// others; when none survives, a header-only batch keeps the producer's offsets, epoch and
/// sequence, and goes once the producer writes again.
#[test]
fn a_producers_emptied_last_batch_stays_as_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 100,
        ..compact_config()
    };
    let log = open(dir.path(), config.clone(), false);
    let mut all: Vec<Full> = Vec::new();
    let push = |all: &mut Vec<Full>, base: i64, records: &[Keyed]| {
        for (i, (key, value, ts)) in records.iter().enumerate() {
            let owned = |b: &Option<&[u8]>| b.map(|b| b.to_vec());
            all.push((base + i as i64, owned(key), owned(value), *ts));
        }
    };
    // Producer 9: a batch of `c`, then its last batch: `a` (superseded below) and a tombstone
    // for `b`. Its timestamps are the log's largest, so no record carries the empty batch's.
    let first: Vec<Keyed> = vec![(Some(b"c"), Some(b"1"), 10)];
    let info = log
        .append_committed(keyed_batch(&first, Compression::None, 9), 10)
        .unwrap();
    push(&mut all, info.base_offset, &first);
    let last: Vec<Keyed> = vec![(Some(b"a"), Some(b"old"), 4_000), (Some(b"b"), None, 5_000)];
    let last_info = log
        .append_committed(keyed_batch(&last, Compression::Gzip, 9), 20)
        .unwrap();
    push(&mut all, last_info.base_offset, &last);
    let later: Vec<Keyed> = vec![(Some(b"a"), Some(b"new"), 30), (Some(b"c"), Some(b"2"), 30)];
    let info = log
        .append_committed(keyed_batch(&later, Compression::None, -1), 30)
        .unwrap();
    push(&mut all, info.base_offset, &later);
    all.extend(fill(&log, 3, 40, &[Compression::None], 100)); // roll the above out
    let active = active_base(dir.path());
    // The model: last record per key, tombstones below the active segment gone.
    let expected: Vec<Full> = last_per_key(&all, active)
        .into_iter()
        .filter(|r| r.0 >= active || r.2.is_some())
        .collect();

    let stats = log.compact(1_000_000, &UNTHROTTLED).unwrap();
    assert!(stats.records_superseded >= 2 && stats.tombstones_removed == 1);
    let check = |log: &Log, what: &str| {
        assert_eq!(read_full(log), expected, "{what}");
        let headers = log.batch_headers(0, usize::MAX).unwrap();
        let producers: Vec<_> = headers.iter().filter(|h| h.producer_id == 9).collect();
        assert_eq!(producers.len(), 1, "{what}: only the last batch stays");
        let empty = producers[0];
        assert_eq!(
            (
                empty.base_offset,
                empty.last_offset_delta,
                empty.records_count,
                empty.producer_epoch,
                empty.base_sequence,
            ),
            (last_info.base_offset, 1, 0, 3, 100),
            "{what}"
        );
        assert_eq!(empty.max_timestamp, 5_000, "{what}");
        assert_eq!(empty.total_bytes(), record_batch::HEADER_BYTES, "{what}");
        // A read starting in it returns it (Kafka clients skip it) and what follows.
        let slice = log.read(last_info.base_offset + 1, 4096).unwrap();
        assert_eq!(headers_of(&slice.bytes)[0], *empty, "{what}");
        let mut bytes = slice.bytes.clone();
        assert!(kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).is_ok());
        assert_eq!(
            read_all(log, 0),
            expected
                .iter()
                .map(|r| (r.0, r.2.clone().unwrap_or_default()))
                .collect::<Vec<_>>(),
            "{what}"
        );
        // Time lookups see records only: the empty batch's 5 000 is nobody's timestamp.
        assert_eq!(log.offset_for_timestamp(1_000).unwrap(), None, "{what}");
        assert_eq!(
            log.offset_for_timestamp(0).unwrap(),
            Some((expected[0].0, expected[0].3)),
            "{what}"
        );
        let newest = expected.iter().map(|r| r.3).max().unwrap();
        let at = expected.iter().find(|r| r.3 == newest).unwrap().0;
        assert_eq!(log.max_timestamp().unwrap(), Some((at, newest)), "{what}");
    };
    check(&log, "compacted");
    assert_eq!(
        log.compact(1_000_000, &UNTHROTTLED)
            .unwrap()
            .segments_cleaned,
        0,
        "an empty last batch is kept as it is"
    );
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), config.clone(), false);
    check(&log, "after a clean reopen");
    drop(log); // kill -9
    for index in files_ending(dir.path(), "index") {
        std::fs::remove_file(dir.path().join(index)).unwrap(); // rebuilt from the log
    }
    let log = open(dir.path(), config.clone(), true);
    check(&log, "after a crash");

    // Once producer 9 writes again, its empty batch is no longer its last and goes.
    let again: Vec<Keyed> = vec![(Some(b"d"), Some(b"1"), 200)];
    log.append_committed(keyed_batch(&again, Compression::None, 9), 200)
        .unwrap();
    fill(&log, 3, 40, &[Compression::None], 300);
    log.compact(1_000_000, &UNTHROTTLED).unwrap();
    let headers = log.batch_headers(0, usize::MAX).unwrap();
    assert!(headers.iter().all(|h| h.records_count > 0));
    assert_eq!(headers.iter().filter(|h| h.producer_id == 9).count(), 1);
}

#[test]
fn batch_headers_and_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(FlushMode::Never), false);
    assert_eq!(log.max_timestamp().unwrap(), None);
    assert!(log.batch_headers(0, 10).unwrap().is_empty());
    let mut infos = Vec::new();
    for (i, ts) in [50, 90, 20, 90, 70].into_iter().enumerate() {
        let producer_id = if i % 2 == 0 { 11 } else { -1 };
        let records: Vec<Keyed> = vec![(None, Some(b"v"), ts - 1), (None, Some(b"w"), ts)];
        infos.push(
            log.append_committed(keyed_batch(&records, Compression::Gzip, producer_id), 0)
                .unwrap(),
        );
    }
    fill(&log, 2, 40, &[Compression::None], 10); // several segments
    let headers = log.batch_headers(3, 3).unwrap();
    assert_eq!(headers.len(), 3);
    assert_eq!(headers[0].base_offset, 2); // the batch holding offset 3
    assert_eq!(headers[0].last_offset(), 3);
    assert_eq!(
        (
            headers[0].producer_id,
            headers[0].base_sequence,
            headers[0].records_count
        ),
        (-1, -1, 2)
    );
    assert_eq!((headers[1].producer_id, headers[1].producer_epoch), (11, 3));
    assert_eq!(headers[1].max_timestamp, 20);
    let everything = log.batch_headers(0, usize::MAX).unwrap();
    assert_eq!(
        everything.last().unwrap().last_offset(),
        log.log_end_offset() - 1
    );
    assert!(everything
        .windows(2)
        .all(|w| w[0].last_offset() + 1 == w[1].base_offset));
    // Largest timestamp 90 first reached at offset 3 (second record of the second batch).
    assert_eq!(log.max_timestamp().unwrap(), Some((3, 90)));
    // Moving the log start past it makes the later 90 (offset 7) the answer.
    log.delete_records_before(4).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), Some((7, 90)));
    log.delete_records_before(8).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), Some((9, 70)));
    assert_eq!(log.batch_headers(0, 1).unwrap()[0].base_offset, 8);
}

#[test]
fn a_crash_at_each_swap_step_leaves_the_old_or_the_new_segment() {
    let points = [
        (CleanerCrashPoint::CleanedWritten, false),
        (CleanerCrashPoint::IndexesSwapped, false),
        (CleanerCrashPoint::SwapDurable, true),
        (CleanerCrashPoint::IndexesReplaced, true),
        (CleanerCrashPoint::LogReplaced, true),
    ];
    for (point, committed) in points {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), compact_config(), false);
        let all = fill(&log, 5, 30, &[Compression::Snappy], 100);
        let before = read_full(&log);
        let expected = last_per_key(&all, active_base(dir.path()));
        assert!(log.compact_until(1_000, &UNTHROTTLED, Some(point)).is_err());
        // Reads through the crashed log's handles still see consistent data.
        let during = read_full(&log);
        assert!(during.iter().all(|r| before.contains(r)), "{point:?}");
        drop(log); // kill -9: no close, no clean-shutdown marker

        let log = open(dir.path(), compact_config(), true);
        assert!(files_ending(dir.path(), ".cleaned").is_empty(), "{point:?}");
        assert!(files_ending(dir.path(), ".swap").is_empty(), "{point:?}");
        let reopened = read_full(&log);
        if committed {
            // The first segment was cleaned, the others not yet: a subset of the old content,
            // offsets ascending, never a duplicate, never a record of the model missing.
            assert!(reopened.len() < before.len(), "{point:?}");
            assert!(reopened.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(reopened.iter().all(|r| before.contains(r)), "{point:?}");
            assert!(expected.iter().all(|r| reopened.contains(r)), "{point:?}");
        } else {
            assert_eq!(reopened, before, "{point:?}");
        }
        assert_eq!(log.log_end_offset(), all.last().unwrap().0 + 1);
        log.compact(1_000, &UNTHROTTLED).unwrap();
        assert_eq!(read_full(&log), expected, "{point:?}");
    }
}

#[test]
fn reads_and_appends_during_compaction_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), compact_config(), false));
    let all = fill(&log, 8, 60, &[Compression::None, Compression::Gzip], 100);
    let original: HashMap<i64, Full> = all.iter().map(|r| (r.0, r.clone())).collect();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, done, original) = (Arc::clone(&log), Arc::clone(&done), original.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(Ordering::Relaxed) || rounds < 3 {
                for record in read_full(&log) {
                    if let Some(expected) = original.get(&record.0) {
                        assert_eq!(&record, expected);
                    }
                }
                rounds += 1;
            }
        })
    };
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || fill(&log, 2, 20, &[Compression::None], 200))
    };
    let limits = CleanerLimits {
        key_map_bytes_max: 64 << 20,
        io_bytes_per_sec: 256 << 10, // slow enough to overlap the readers
    };
    log.compact(1_000, &limits).unwrap();
    let mut everything = all;
    everything.extend(writer.join().unwrap());
    everything.sort_by_key(|r| r.0);
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    log.compact(1_000, &UNTHROTTLED).unwrap();
    assert_eq!(
        read_full(&log),
        last_per_key(&everything, active_base(dir.path()))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random keyed appends (tombstones and keyless records included), compactions with a
    /// random key-map size, and reopens, against the model "last record per key below the
    /// active segment; everything in it".
    #[test]
    fn compaction_matches_the_last_value_per_key_model(
        ops in prop::collection::vec(
            prop_oneof![
                8 => prop::collection::vec((0usize..12, 0u8..8), 1..6).prop_map(Some),
                1 => Just(None),
            ],
            1..40,
        ),
        key_map_keys in 1usize..20,
        segment_bytes in 300u64..1500,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, ..compact_config() };
        let mut log = open(dir.path(), config.clone(), false);
        let limits = CleanerLimits { key_map_bytes_max: 40 * key_map_keys, io_bytes_per_sec: 0 };
        let mut all: Vec<Full> = Vec::new();
        let mut compacted_below = 0;
        for (step, op) in ops.iter().enumerate() {
            match op {
                Some(records) => {
                    let owned: Vec<KeyValue> = records
                        .iter()
                        .map(|&(k, v)| {
                            let key = (k < 10).then(|| key(k));
                            let value = (v > 0).then(|| format!("{step}-{v}").into_bytes());
                            (key, value)
                        })
                        .collect();
                    let keyed: Vec<Keyed> = owned
                        .iter()
                        .map(|(k, v)| (k.as_deref(), v.as_deref(), 1))
                        .collect();
                    let info = log.append_committed(keyed_batch(&keyed, Compression::None, -1), 1).unwrap();
                    for (i, (k, v)) in owned.into_iter().enumerate() {
                        all.push((info.base_offset + i as i64, k, v, 1));
                    }
                }
                None => {
                    log.compact(2, &limits).unwrap();
                    compacted_below = active_base(dir.path());
                    if step % 3 == 0 {
                        drop(log);
                        log = open(dir.path(), config.clone(), step % 2 == 0);
                    }
                }
            }
        }
        log.compact(2, &limits).unwrap();
        let active = active_base(dir.path());
        prop_assert!(active >= compacted_below);
        prop_assert_eq!(read_full(&log), last_per_key(&all, active));
    }
}
