//! Replays every saved fuzz input (`fuzz/corpus/<target>/*`, the seeds and what libFuzzer kept)
//! through its target, and then a bounded number of mutations of them, so every decoder meets
//! hostile bytes in the ordinary test suite even where cargo-fuzz (nightly) is not installed.

use std::path::PathBuf;

use porter_fuzz_targets::TARGETS;

/// Mutations per target (xorshift, deterministic): a few seconds for all of them.
const MUTATIONS: usize = 100_000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_saved_input_is_decoded_without_a_panic() {
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        assert!(!inputs.is_empty(), "fuzz/corpus/{name} has no seeds");
        for input in &inputs {
            target(input);
        }
    }
}

#[test]
fn mutations_of_the_corpus_are_decoded_without_a_panic() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        for _ in 0..MUTATIONS {
            let mut input = inputs[next() as usize % inputs.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % (input.len() + 1);
                match next() % 4 {
                    0 if !input.is_empty() => {
                        let i = at.min(input.len() - 1);
                        input[i] ^= 1 << (next() % 8);
                    }
                    1 => input.insert(at, next() as u8),
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {
                        // An interesting integer at `at`: lengths and counts live there.
                        let value: [u8; 4] = [0xFF, 0xFF, 0xFF, 0x7F];
                        for (k, b) in value.iter().enumerate() {
                            if let Some(slot) = input.get_mut(at + k) {
                                *slot = *b;
                            }
                        }
                    }
                }
            }
            target(&input);
        }
    }
}

/// Writes `fuzz/corpus/kafka_records/seed-zstd` (fuzz/seeds.py makes the other codecs' batches
/// with kafka-python, which needs an optional library for zstd): `cargo test -p
/// porter-fuzz-targets -- --ignored write_zstd_seed`.
#[test]
#[ignore]
fn write_zstd_seed() {
    use porter_storage::records::{encode_batch, recompress, LogRecord};
    let records: Vec<LogRecord> = (0..3)
        .map(|i| LogRecord {
            offset: i,
            timestamp: 1_700_000_000_000 + i,
            key: Some(format!("k{i}").into_bytes().into()),
            value: Some(vec![b'v'; i as usize * 10].into()),
            headers: vec![("h".to_string(), Some(b"x".to_vec().into()))],
        })
        .collect();
    let zstd = recompress(encode_batch(&records).unwrap(), 4).unwrap();
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/kafka_records/seed-zstd");
    std::fs::write(path, zstd).unwrap();
}
