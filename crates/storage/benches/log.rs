//! Throughput of a partition `Log`: append under each flush mode, and sequential reads from the
//! page cache. Run with `cargo bench -p porter-storage` (or `scripts/bench-storage.sh`); figures
//! and how to read them are in BENCHMARKS.md.
//!
//! Logs live in a temporary directory under `PORTER_BENCH_DIR`, by default Cargo's
//! `target/tmp`, which must be on the real disk (not tmpfs) for fdatasync figures to mean
//! anything.
//!
//! - `append/<flush>/<record>B-in-<batch>`: one iteration appends one uncompressed RecordBatch
//!   v2 of about `batch` bytes holding `record`-byte values. The same encoded batch is appended
//!   again and again (the log rewrites its base offset), each time from a fresh `Bytes` clone,
//!   as a gateway hands over a slice of a request frame: `Log::append` then makes its one copy.
//!   - `never`: write to the page cache only. Between samples (untimed) segments the log has
//!     rolled past are deleted, so dirty pages are dropped rather than written back and the
//!     figure is the append path itself, not the disk's sustained write rate.
//!   - `group`: append, then `sync` (then `commit_to`) its end: a single writer pays one fdatasync per batch.
//!   - `group-4-writers`: four threads each append and sync; an fdatasync started by one
//!     covers the others' batches written before it (group commit).
//!   - `interval` is not measured: without the broker's flush timer it is `never`.
//! - `read/<batch>`: reads a pre-filled log of ~512 MiB with `max_bytes` = 1 MiB per call,
//!   wrapping to the start at the end; the data is in the page cache.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use porter_storage::record_batch::BatchHeader;
use porter_storage::{FileCache, FlushMode, Log, LogConfig, Offset};
use tempfile::TempDir;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Batch sizes appended and read; a batch never exceeds its size.
const BATCH_BYTES: [usize; 2] = [16 * KIB, MIB];
/// Value sizes of the records inside a batch.
const RECORD_BYTES: [usize; 2] = [100, KIB];
/// Threads of the group-commit-sharing case.
const WRITERS: usize = 4;
/// Bytes written before the read benchmark starts.
const READ_LOG_BYTES: usize = 512 * MIB;
/// `max_bytes` of one read, as a Kafka fetch's partition max bytes.
const READ_MAX_BYTES: u32 = MIB as u32;
const SEGMENT_BYTES: u64 = 1 << 30;
const MEASUREMENT_TIME: Duration = Duration::from_secs(5);
const WARM_UP_TIME: Duration = Duration::from_secs(2);
const SAMPLE_SIZE: usize = 10;

fn bench_root() -> PathBuf {
    std::env::var_os("PORTER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn config(flush: FlushMode) -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        retention_ms: None,
        // Headroom over a 1 MiB batch; the batches built here stay at or below it anyway.
        max_batch_bytes: 2 * MIB as u32,
        flush,
        ..LogConfig::default()
    }
}

/// A fresh, empty log in its own temporary directory (removed on drop).
fn open_log(flush: FlushMode) -> (TempDir, Log) {
    let root = bench_root();
    std::fs::create_dir_all(&root).expect("creating the bench directory");
    let dir = tempfile::Builder::new()
        .prefix("porter-bench-")
        .tempdir_in(&root)
        .expect("creating a temporary log directory");
    let log =
        Log::open(dir.path(), config(flush), FileCache::new(1024), false).expect("opening the log");
    (dir, log)
}

fn encode(record_bytes: usize, count: usize) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let value = Bytes::from(vec![b'x'; record_bytes]);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: now_ms,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buffer = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buffer,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding a batch");
    buffer.freeze()
}

/// The largest uncompressed batch of `record_bytes` values that fits in `batch_bytes`.
fn batch(record_bytes: usize, batch_bytes: usize) -> Bytes {
    let mut count = (batch_bytes / record_bytes).max(1);
    loop {
        let encoded = encode(record_bytes, count);
        if encoded.len() <= batch_bytes || count == 1 {
            return encoded;
        }
        // Shrink by the overshoot ratio, at least one record.
        let fitting = count * batch_bytes / encoded.len();
        count = fitting.min(count - 1).max(1);
    }
}

fn label(bytes: usize) -> String {
    if bytes >= MIB {
        format!("{}MiB", bytes / MIB)
    } else if bytes >= KIB {
        format!("{}KiB", bytes / KIB)
    } else {
        format!("{bytes}B")
    }
}

fn append_one(log: &Log, batch: &Bytes) -> Offset {
    log.append(batch.clone(), 0).expect("append").last_offset + 1
}

/// The group-commit step the core's writer thread takes: sync unless a sync already covered
/// `end` (another writer's), then commit what is durable.
fn sync_to(log: &Log, end: Offset) {
    if log.durable_offset() < end {
        let durable = log.sync().expect("sync");
        log.commit_to(durable);
    }
}

/// Drops segments the log rolled past, so their dirty pages are discarded, not written back.
/// Commits what was written first (the core's rule under `never`; under `group` the data is
/// synced already, this is untimed housekeeping).
fn drop_rolled_segments(log: &Log) {
    log.commit_to(log.log_end_offset());
    log.delete_records_before(log.high_watermark())
        .expect("deleting rolled segments");
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(WARM_UP_TIME)
        .measurement_time(MEASUREMENT_TIME);
    for batch_bytes in BATCH_BYTES {
        for record_bytes in RECORD_BYTES {
            let batch = batch(record_bytes, batch_bytes);
            let name = format!("{}-in-{}", label(record_bytes), label(batch_bytes));
            group.throughput(Throughput::Bytes(batch.len() as u64));

            let (_dir, log) = open_log(FlushMode::Never);
            group.bench_function(BenchmarkId::new("never", &name), |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        append_one(&log, &batch);
                    }
                    let elapsed = started.elapsed();
                    drop_rolled_segments(&log);
                    elapsed
                })
            });
            drop(log);

            let (_dir, log) = open_log(FlushMode::Group);
            group.bench_function(BenchmarkId::new("group", &name), |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let end = append_one(&log, &batch);
                        sync_to(&log, end);
                    }
                    let elapsed = started.elapsed();
                    drop_rolled_segments(&log);
                    elapsed
                })
            });
            drop(log);

            let (_dir, log) = open_log(FlushMode::Group);
            let log = Arc::new(log);
            group.bench_function(
                BenchmarkId::new(format!("group-{WRITERS}-writers"), &name),
                |b| {
                    b.iter_custom(|iters| {
                        let started = Instant::now();
                        std::thread::scope(|scope| {
                            for writer in 0..WRITERS as u64 {
                                let log = &log;
                                let batch = &batch;
                                // Spread `iters` appends over the writers.
                                let appends = iters / WRITERS as u64
                                    + u64::from(writer < iters % WRITERS as u64);
                                scope.spawn(move || {
                                    for _ in 0..appends {
                                        let end = append_one(log, batch);
                                        sync_to(log, end);
                                    }
                                });
                            }
                        });
                        let elapsed = started.elapsed();
                        drop_rolled_segments(&log);
                        elapsed
                    })
                },
            );
        }
    }
    group.finish();
}

/// Offset after the last batch in `bytes` (whole batches, as `Log::read` returns them).
fn end_of(bytes: &[u8]) -> Offset {
    let mut position = 0;
    let mut end = None;
    while position < bytes.len() {
        let header = BatchHeader::parse(&bytes[position..]).expect("a batch header");
        end = Some(header.last_offset() + 1);
        position += header.total_bytes();
    }
    end.expect("a non-empty read")
}

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(WARM_UP_TIME)
        .measurement_time(MEASUREMENT_TIME);
    for batch_bytes in BATCH_BYTES {
        let batch = batch(KIB, batch_bytes);
        // Every read returns the same number of whole batches: fill a multiple of that.
        let batches_per_read = (READ_MAX_BYTES as usize / batch.len()).max(1);
        let bytes_per_read = batches_per_read * batch.len();
        let reads = READ_LOG_BYTES / bytes_per_read;
        // Filled on first use, so a criterion filter that skips this bench skips the fill.
        let mut filled: Option<(TempDir, Log)> = None;
        let mut offset = 0;
        group.throughput(Throughput::Bytes(bytes_per_read as u64));
        group.bench_function(
            BenchmarkId::new("1MiB-per-read", format!("{}-batches", label(batch_bytes))),
            |b| {
                let (_, log) = filled.get_or_insert_with(|| {
                    let (dir, log) = open_log(FlushMode::Never);
                    for _ in 0..reads * batches_per_read {
                        append_one(&log, &batch);
                    }
                    log.commit_to(log.log_end_offset());
                    (dir, log)
                });
                let log_end = log.high_watermark();
                b.iter(|| {
                    let slice = log.read(offset, READ_MAX_BYTES).expect("read");
                    debug_assert_eq!(slice.bytes.len(), bytes_per_read);
                    offset = end_of(&slice.bytes);
                    if offset == log_end {
                        offset = 0;
                    }
                    slice.bytes
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
