//! Property test: random runs of append / read / retention / delete_records_before / clean
//! reopen / crash (drop without close) against an in-memory model of every record ever written.

mod common;

use std::collections::BTreeMap;

use common::*;
use porter_storage::{FileCache, FlushMode, Log, LogConfig, Offset};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Batches of these record counts, each record `size` bytes.
    Append {
        counts: Vec<usize>,
        size: usize,
    },
    /// Read at log start + `position` (modulo the readable range), `max_bytes`.
    Read {
        position: usize,
        max_bytes: u32,
    },
    RetainBytes {
        bytes: u64,
    },
    DeleteBefore {
        position: usize,
    },
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(1usize..4, 1..4), 1usize..120)
            .prop_map(|(counts, size)| Op::Append { counts, size }),
        4 => (any::<usize>(), 1u32..800).prop_map(|(position, max_bytes)| Op::Read { position, max_bytes }),
        1 => (200u64..3000).prop_map(|bytes| Op::RetainBytes { bytes }),
        1 => any::<usize>().prop_map(|position| Op::DeleteBefore { position }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

struct Harness {
    dir: tempfile::TempDir,
    files: std::sync::Arc<FileCache>,
    config: LogConfig,
    log: Option<Log>,
    /// Every record ever appended, by offset; records below the log start stay for checking
    /// the head of a batch that straddles it.
    model: BTreeMap<Offset, Vec<u8>>,
    log_start_offset: Offset,
    next_tag: u64,
}

impl Harness {
    fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }

    fn end(&self) -> Offset {
        self.model.keys().next_back().map_or(0, |o| o + 1)
    }

    fn check_offsets(&self) {
        let log = self.log();
        assert_eq!(log.log_end_offset(), self.end());
        assert_eq!(log.high_watermark(), self.end());
        assert_eq!(log.log_start_offset(), self.log_start_offset);
    }

    fn check_read(&self, offset: Offset, max_bytes: u32) {
        let slice = self.log().read(offset, max_bytes).unwrap();
        let records = decode(&slice.bytes);
        if offset == self.end() {
            assert!(records.is_empty());
            return;
        }
        assert!(!records.is_empty());
        assert!(records[0].0 <= offset && records.iter().any(|r| r.0 == offset));
        for (i, (record_offset, value)) in records.iter().enumerate() {
            assert_eq!(
                *record_offset,
                records[0].0 + i as Offset,
                "offsets contiguous"
            );
            assert_eq!(
                self.model.get(record_offset),
                Some(value),
                "record at {record_offset}"
            );
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append { counts, size } => {
                let mut buffer = Vec::new();
                let mut appended = Vec::new();
                for &count in counts {
                    let batch_values = values(self.next_tag, count, *size);
                    self.next_tag += 1;
                    buffer.extend_from_slice(&batch(&batch_values, self.next_tag as i64));
                    appended.extend(batch_values);
                }
                let log = self.log();
                let info = log.append_committed(buffer.into(), 0).unwrap();
                assert_eq!(info.base_offset, self.end());
                for (i, value) in appended.into_iter().enumerate() {
                    self.model.insert(info.base_offset + i as Offset, value);
                }
            }
            Op::Read {
                position,
                max_bytes,
            } => {
                let span = (self.end() - self.log_start_offset + 1) as usize;
                self.check_read(
                    self.log_start_offset + (position % span) as Offset,
                    *max_bytes,
                );
            }
            Op::RetainBytes { bytes } => {
                let log = self.log();
                log.set_config(LogConfig {
                    retention_bytes: Some(*bytes),
                    ..self.config.clone()
                });
                log.apply_retention(0).unwrap();
                log.set_config(self.config.clone());
                let start = log.log_start_offset();
                assert!(start >= self.log_start_offset && start <= self.end());
                self.log_start_offset = start;
            }
            Op::DeleteBefore { position } => {
                let span = (self.end() - self.log_start_offset + 1) as usize;
                let target = self.log_start_offset + (position % span) as Offset;
                assert_eq!(self.log().delete_records_before(target).unwrap(), target);
                self.log_start_offset = target;
            }
            Op::Reopen => {
                self.log.take().unwrap().close().unwrap();
                self.log = Some(
                    Log::open(
                        self.dir.path(),
                        self.config.clone(),
                        self.files.clone(),
                        false,
                    )
                    .unwrap(),
                );
            }
            Op::Crash => {
                drop(self.log.take());
                self.log = Some(
                    Log::open(
                        self.dir.path(),
                        self.config.clone(),
                        self.files.clone(),
                        true,
                    )
                    .unwrap(),
                );
            }
        }
        self.check_offsets();
    }

    fn check_everything(&self) {
        let records = read_all(self.log(), self.log_start_offset);
        let expected: Vec<(Offset, Vec<u8>)> = self
            .model
            .range(self.log_start_offset..)
            .map(|(o, v)| (*o, v.clone()))
            .collect();
        assert_eq!(records, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        ops in prop::collection::vec(op(), 1..40),
        group in any::<bool>(),
        segment_bytes in 300u64..1500,
        index_interval_bytes in 1u32..400,
    ) {
        let flush = if group { FlushMode::Group } else { FlushMode::Never };
        let config = LogConfig { segment_bytes, index_interval_bytes, retention_ms: None, flush, ..LogConfig::default() };
        let dir = tempfile::tempdir().unwrap();
        let files = FileCache::new(6);
        let log = Log::open(dir.path(), config.clone(), files.clone(), false).unwrap();
        let mut harness = Harness {
            dir, files, config, log: Some(log), model: BTreeMap::new(), log_start_offset: 0, next_tag: 0,
        };
        for op in &ops {
            harness.apply(op);
        }
        harness.check_everything();
        harness.apply(&Op::Crash);
        harness.check_everything();
    }
}
