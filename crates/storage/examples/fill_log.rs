//! Fills a partition log directory with `BYTES` of uncompressed 1 KiB records in ~1 MiB batches,
//! through `Log::append` with `flush = never` and 1 GiB segments, then closes the log (indexes
//! written, everything fdatasync'ed). Used by `scripts/bench-startup.sh` to build a large log
//! for recovery timings far faster than producing it over the network.
//!
//! Usage: `cargo run --release -p porter-storage --example fill_log -- DIR BYTES`
//!
//! `DIR` may already hold a log (e.g. `<data_dir>/logs/<topic>/0` of a stopped broker): it is
//! opened as after a clean shutdown and appended to. The broker must not be running.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use porter_storage::{FileCache, FlushMode, Log, LogConfig};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 1000;
const SEGMENT_BYTES: u64 = 1 << 30;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(bytes)) = (args.next(), args.next()) else {
        eprintln!("usage: fill_log DIR BYTES");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let bytes_wanted: u64 = bytes.parse().expect("BYTES must be an integer");

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let value = bytes::Bytes::from(vec![b'x'; RECORD_BYTES]);
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
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
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding the batch");
    let batch = batch.freeze();

    let config = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        retention_ms: None,
        flush: FlushMode::Never,
        ..LogConfig::default()
    };
    let log = Log::open(&dir, config, FileCache::new(1024), false).expect("opening the log");
    let batches = bytes_wanted.div_ceil(batch.len() as u64);
    let started = Instant::now();
    for _ in 0..batches {
        log.append(batch.clone(), now_ms).expect("append");
    }
    let appended = started.elapsed();
    log.close().expect("closing the log");
    let total = started.elapsed();
    let written = batches * batch.len() as u64;
    eprintln!(
        "fill_log: {written} bytes in {batches} batches of {} bytes; append {:.1} s ({:.0} MB/s), \
         with close (fdatasync) {:.1} s; log end offset {}",
        batch.len(),
        appended.as_secs_f64(),
        written as f64 / appended.as_secs_f64() / 1e6,
        total.as_secs_f64(),
        log.log_end_offset(),
    );
}
