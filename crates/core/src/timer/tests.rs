//! Tests of the timer store and service: behaviour, recovery (a model-based property test with
//! crashes that lose unsynced tails) and the memory bound.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::error::ErrorKind;

fn small_config() -> TimerConfig {
    TimerConfig {
        bucket_width_ms: 100,
        loaded_max: 4,
        in_flight_max: 8,
        segment_bytes: 4096,
        background_checkpoints: false,
        ..TimerConfig::default()
    }
}

fn payload_id(p: &[u8]) -> u64 {
    u64::from_le_bytes(p[..8].try_into().unwrap())
}

fn payload(id: u64, extra: usize) -> Vec<u8> {
    let mut p = id.to_le_bytes().to_vec();
    p.resize(8 + extra, (id % 251) as u8);
    p
}

#[test]
fn fires_in_due_order_never_early_and_not_again_after_marked() {
    let dir = tempfile::tempdir().unwrap();
    let base = now_ms();
    let mut store = TimerStore::open(dir.path(), small_config()).unwrap();
    for (i, delta) in [500, 20, 320, 20, 90, 1_000, 7].into_iter().enumerate() {
        store
            .schedule(base + delta, &payload(i as u64, 40))
            .unwrap();
    }
    store.sync().unwrap();
    assert_eq!(store.pending(), 7);
    assert_eq!(store.next_due_ms(), Some(base + 7));
    assert!(store.take_due(base + 6, 100).unwrap().is_empty());
    let due = store.take_due(base + 100, 100).unwrap();
    let dues: Vec<i64> = due.iter().map(|t| t.due_ms - base).collect();
    assert_eq!(dues, [7, 20, 20, 90]);
    assert!(
        store.take_due(base + 100, 100).unwrap().is_empty(),
        "handed out once"
    );
    let ids: Vec<TimerId> = due.iter().map(|t| t.id).collect();
    store.mark_fired(&ids[..2]).unwrap();
    store.sync().unwrap();
    assert_eq!(store.pending(), 5);
    drop(store); // a crash: the two unmarked ones fire again, the marked ones never

    let mut store = TimerStore::open(dir.path(), small_config()).unwrap();
    assert_eq!(store.pending(), 5);
    let again: Vec<u64> = store
        .take_due(base + 100, 100)
        .unwrap()
        .iter()
        .map(|t| payload_id(&t.payload))
        .collect();
    let first_two: Vec<u64> = due[..2].iter().map(|t| payload_id(&t.payload)).collect();
    let last_two: Vec<u64> = due[2..].iter().map(|t| payload_id(&t.payload)).collect();
    assert_eq!(again, last_two);
    assert!(again.iter().all(|id| !first_two.contains(id)));
}

#[test]
fn refuses_delays_beyond_the_maximum_and_negative_times() {
    let dir = tempfile::tempdir().unwrap();
    let config = TimerConfig {
        max_delay_ms: 60_000,
        ..small_config()
    };
    let mut store = TimerStore::open(dir.path(), config).unwrap();
    let e = store.schedule(now_ms() + 3_600_000, b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(
        store.schedule(-1, b"x").unwrap_err().kind(),
        ErrorKind::Invalid
    );
    let big = vec![0u8; PAYLOAD_BYTES_MAX + 1];
    assert_eq!(
        store.schedule(now_ms(), &big).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
    assert_eq!(store.pending(), 0);
}

#[test]
fn reclaims_bucket_files_and_segments_once_everything_fired() {
    reclaims(false);
    reclaims(true);
}

fn reclaims(background_checkpoints: bool) {
    let config = TimerConfig {
        background_checkpoints,
        ..small_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let base = now_ms() - 10_000;
    let mut store = TimerStore::open(dir.path(), config.clone()).unwrap();
    for i in 0..200u64 {
        store
            .schedule(base + (i as i64 % 20) * 100, &payload(i, 100))
            .unwrap();
    }
    store.sync().unwrap();
    assert_eq!(store.bucket_files(), 20);
    let segments = || {
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count()
    };
    assert!(segments() > 3, "{}", segments());
    let mut fired = 0;
    loop {
        let due = store.take_due(base + 10_000, 5).unwrap();
        if due.is_empty() {
            break;
        }
        fired += due.len();
        store
            .mark_fired(&due.iter().map(|t| t.id).collect::<Vec<_>>())
            .unwrap();
    }
    assert_eq!(fired, 200);
    store.sync().unwrap();
    store.close().unwrap();
    let store = TimerStore::open(dir.path(), config.clone()).unwrap();
    assert_eq!(store.pending(), 0);
    assert_eq!(store.bucket_files(), 0);
    assert_eq!(segments(), 1, "only the active segment stays");
    let idx = std::fs::read_dir(dir.path().join("buckets"))
        .unwrap()
        .count();
    assert_eq!(idx, 0);
}

#[test]
fn torn_tails_are_cut_and_stale_entries_ignored_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let base = now_ms() + 60_000;
    let config = TimerConfig {
        segment_bytes: 1 << 20,
        in_flight_max: 100,
        ..small_config()
    };
    let mut store = TimerStore::open(dir.path(), config.clone()).unwrap();
    for i in 0..10u64 {
        store.schedule(base, &payload(i, 10)).unwrap();
    }
    store.sync().unwrap();
    for i in 10..20u64 {
        store.schedule(base, &payload(i, 10)).unwrap();
    }
    drop(store);
    // Cut the log in the middle of the unsynced records, leave the index entries that point
    // past the end, and tear the last index entry.
    let seg = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 40).unwrap();
    let idx = files::bucket_path(&dir.path().join("buckets"), base / 100 * 100, "idx");
    let len = std::fs::metadata(&idx).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&idx)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut store = TimerStore::open(dir.path(), config).unwrap();
    let pending = store.pending();
    assert!((10..20).contains(&pending), "{pending}");
    let due = store.take_due(base, 100).unwrap();
    assert_eq!(due.len() as u64, pending);
    let ids: HashSet<u64> = due.iter().map(|t| payload_id(&t.payload)).collect();
    assert!((0..10).all(|i| ids.contains(&i)), "synced timers survive");
}

#[test]
fn memory_stays_within_the_window_with_200k_pending() {
    let dir = tempfile::tempdir().unwrap();
    let config = TimerConfig {
        bucket_width_ms: 1_000,
        loaded_max: 10_000,
        in_flight_max: 1_000,
        ..TimerConfig::default()
    };
    let base = now_ms();
    let mut store = TimerStore::open(dir.path(), config).unwrap();
    let mut peak = 0;
    for i in 0..200_000u64 {
        // A pseudo-random spread over 10 minutes.
        let delta = (i.wrapping_mul(2_654_435_761) % 600_000) as i64;
        store.schedule(base + delta, &payload(i, 16)).unwrap();
        peak = peak.max(store.in_memory());
        if i % 10_000 == 0 {
            store.sync().unwrap();
        }
    }
    store.sync().unwrap();
    assert_eq!(store.pending(), 200_000);
    assert!(peak <= 10_000, "{peak}");
    // Fire the first two minutes, marking as we go: the window refills from the buckets.
    let mut last = i64::MIN;
    let mut fired = 0;
    for step in (0..=120_000).step_by(500) {
        let due = store.take_due(base + step, 100_000).unwrap();
        peak = peak.max(store.in_memory());
        for t in &due {
            assert!(t.due_ms <= base + step && t.due_ms >= last);
            last = t.due_ms;
        }
        fired += due.len();
        store
            .mark_fired(&due.iter().map(|t| t.id).collect::<Vec<_>>())
            .unwrap();
    }
    assert!(peak <= 11_000, "{peak}");
    let expected = (0..200_000u64)
        .filter(|i| (i.wrapping_mul(2_654_435_761) % 600_000) <= 120_000)
        .count();
    assert_eq!(fired, expected);
    store.sync().unwrap();
    drop(store);
    let store = TimerStore::open(dir.path(), TimerConfig::default()).unwrap();
    assert_eq!(store.pending(), 200_000 - expected as u64);
    assert!(store.in_memory() <= LOADED_MAX_DEFAULT);
}

// ---- the model-based property test -------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Schedule at now + delta (negative: already due), with a payload of `extra` more bytes.
    Schedule {
        delta: i64,
        extra: usize,
    },
    /// Advance the clock and take up to `max`.
    Take {
        advance: i64,
        max: usize,
    },
    /// Mark every `nth` timer in flight fired.
    Mark {
        nth: usize,
    },
    Sync,
    /// Clean close and reopen.
    Reopen,
    /// Drop without sync, lose part of one file's unsynced tail, reopen.
    Crash {
        file: usize,
        keep: f64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (-300i64..1_500, 0usize..300).prop_map(|(delta, extra)| Op::Schedule { delta, extra }),
        4 => (0i64..400, 1usize..12).prop_map(|(advance, max)| Op::Take { advance, max }),
        3 => (1usize..3).prop_map(|nth| Op::Mark { nth }),
        3 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        2 => (0usize..64, 0.0f64..1.0).prop_map(|(file, keep)| Op::Crash { file, keep }),
    ]
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["segments", "buckets"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            out.push(e.unwrap().path());
        }
    }
    out.sort();
    out
}

fn file_lens(dir: &Path, filter: impl Fn(&Path) -> bool) -> HashMap<PathBuf, u64> {
    all_files(dir)
        .into_iter()
        .filter(|p| filter(p))
        .map(|p| {
            let len = std::fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .collect()
}

fn is_idx(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "idx")
}

/// What the model knows about each timer, by payload id.
#[derive(Default)]
struct Model {
    due: HashMap<u64, i64>,
    /// Schedules made durable by a sync.
    synced: HashSet<u64>,
    /// Marked fired and synced: must never fire again.
    acked: HashSet<u64>,
    /// Scheduled, or marked, without a sync before a crash: may or may not come back.
    uncertain: HashSet<u64>,
    unsynced_schedules: HashSet<u64>,
    unsynced_marks: HashSet<u64>,
    in_flight: std::collections::BTreeMap<TimerId, u64>,
}

fn check_fired(model: &Model, due: &[DueTimer], now: i64) -> Result<(), TestCaseError> {
    let mut last = i64::MIN;
    for t in due {
        let id = payload_id(&t.payload);
        prop_assert!(t.due_ms <= now, "fired early: due {} now {}", t.due_ms, now);
        prop_assert_eq!(Some(&t.due_ms), model.due.get(&id));
        prop_assert!(
            !model.acked.contains(&id),
            "timer {} fired after a synced mark",
            id
        );
        prop_assert!(t.due_ms >= last, "out of order");
        last = t.due_ms;
    }
    Ok(())
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    // Aligned, so bucket boundaries fall the same way in every run (shrinking needs that).
    let base = now_ms() / 10_000 * 10_000;
    let mut now = base;
    let mut next_id = 0u64;
    let mut model = Model::default();
    let mut store = Some(TimerStore::open(dir.path(), config.clone()).unwrap());
    // File lengths known durable: data files at the last sync, index files at the last
    // checkpoint. Only the last segment has an unsynced tail (a roll syncs the one before).
    let mut durable = file_lens(dir.path(), |_| true);
    let mut checkpoints = store.as_ref().unwrap().checkpoints();
    for op in ops {
        let s = store.as_mut().unwrap();
        match op {
            Op::Schedule { delta, extra } => {
                let id = next_id;
                next_id += 1;
                s.schedule(now + delta, &payload(id, extra)).unwrap();
                model.due.insert(id, now + delta);
                model.unsynced_schedules.insert(id);
            }
            Op::Take { advance, max } => {
                now += advance;
                let due = s.take_due(now, max).unwrap();
                check_fired(&model, &due, now)?;
                for t in due {
                    model.in_flight.insert(t.id, payload_id(&t.payload));
                }
                prop_assert!(s.in_memory() <= config.loaded_max + config.in_flight_max);
            }
            Op::Mark { nth } => {
                let ids: Vec<TimerId> = model.in_flight.keys().copied().step_by(nth).collect();
                s.mark_fired(&ids).unwrap();
                for id in ids {
                    let pid = model.in_flight.remove(&id).unwrap();
                    model.unsynced_marks.insert(pid);
                }
            }
            Op::Sync => {
                s.sync().unwrap();
                model.synced.extend(model.unsynced_schedules.drain());
                model.acked.extend(model.unsynced_marks.drain());
                if s.checkpoints() != checkpoints {
                    checkpoints = s.checkpoints();
                    durable = file_lens(dir.path(), |_| true);
                } else {
                    let idx = durable.clone();
                    durable = file_lens(dir.path(), |p| !is_idx(p));
                    durable.extend(idx.into_iter().filter(|(p, _)| is_idx(p)));
                }
            }
            Op::Reopen => {
                store.take().unwrap().close().unwrap();
                model.synced.extend(model.unsynced_schedules.drain());
                model.acked.extend(model.unsynced_marks.drain());
                model.in_flight.clear();
                store = Some(TimerStore::open(dir.path(), config.clone()).unwrap());
                durable = file_lens(dir.path(), |_| true);
                checkpoints = store.as_ref().unwrap().checkpoints();
            }
            Op::Crash { file, keep } => {
                drop(store.take());
                let files = all_files(dir.path());
                let last_segment = files
                    .iter()
                    .filter(|p| !is_idx(p) && p.to_string_lossy().ends_with(".log"))
                    .max()
                    .cloned();
                if !files.is_empty() {
                    let path = &files[file % files.len()];
                    let len = std::fs::metadata(path).unwrap().len();
                    let is_segment = path.to_string_lossy().ends_with(".log");
                    let floor = if is_segment && Some(path) != last_segment.as_ref() {
                        len
                    } else {
                        durable.get(path).copied().unwrap_or(0).min(len)
                    };
                    let cut = floor + ((len - floor) as f64 * keep) as u64;
                    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                    f.set_len(cut).unwrap();
                }
                model.uncertain.extend(model.unsynced_schedules.drain());
                model.uncertain.extend(model.unsynced_marks.drain());
                model.in_flight.clear();
                store = Some(TimerStore::open(dir.path(), config.clone()).unwrap());
                durable = file_lens(dir.path(), |_| true);
                checkpoints = store.as_ref().unwrap().checkpoints();
            }
        }
    }
    // Reopen (what is in flight comes back) and drain: every synced, unacked timer fires; no
    // acked one does.
    store.take().unwrap().close().unwrap();
    model.synced.extend(model.unsynced_schedules.drain());
    model.acked.extend(model.unsynced_marks.drain());
    let mut s = TimerStore::open(dir.path(), config.clone()).unwrap();
    let end = now + 10_000;
    let mut fired = HashSet::new();
    loop {
        let due = s.take_due(end, 7).unwrap();
        if due.is_empty() {
            break;
        }
        check_fired(&model, &due, end)?;
        s.mark_fired(&due.iter().map(|t| t.id).collect::<Vec<_>>())
            .unwrap();
        fired.extend(due.iter().map(|t| payload_id(&t.payload)));
    }
    for id in &model.synced {
        if !model.acked.contains(id) && !model.uncertain.contains(id) {
            prop_assert!(fired.contains(id), "synced timer {} was lost", id);
        }
    }
    prop_assert_eq!(s.pending(), 0);
    prop_assert_eq!(s.in_memory(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn model_never_early_never_lost_never_refired(ops in proptest::collection::vec(op(), 1..120)) {
        run_model(ops)?;
    }
}

// ---- the service ------------------------------------------------------------------------

#[tokio::test]
async fn service_fires_in_order_not_before_due_and_marks_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = TimerStore::open(dir.path(), TimerConfig::default()).unwrap();
    let (service, mut due) = TimerService::start(store, 16).unwrap();
    let base = now_ms();
    let mut ids = Vec::new();
    for (n, delta) in [(2u8, 150), (0, 50), (1, 100)] {
        let id = service
            .schedule(base + delta, Bytes::from(vec![n]))
            .await
            .unwrap();
        ids.push(id);
    }
    for expected in 0..3u8 {
        let t = due.recv().await.unwrap();
        assert_eq!(t.payload[0], expected);
        assert!(now_ms() >= t.due_ms, "received before due");
        if expected < 2 {
            service.fired(vec![t.id]);
        }
    }
    service.shutdown().await;
    drop(due);
    // The third was never confirmed: it fires again after a restart; the others do not.
    let store = TimerStore::open(dir.path(), TimerConfig::default()).unwrap();
    assert_eq!(store.pending(), 1);
    let (service, mut due) = TimerService::start(store, 16).unwrap();
    let t = due.recv().await.unwrap();
    assert_eq!(t.payload[0], 2);
    service.fired(vec![t.id]);
    service.shutdown().await;
    let store = TimerStore::open(dir.path(), TimerConfig::default()).unwrap();
    assert_eq!(store.pending(), 0);
}

#[tokio::test]
async fn service_groups_concurrent_schedules_and_refuses_too_far() {
    let dir = tempfile::tempdir().unwrap();
    let store = TimerStore::open(dir.path(), TimerConfig::default()).unwrap();
    let (service, _due) = TimerService::start(store, 16).unwrap();
    let service = std::sync::Arc::new(service);
    let far = now_ms() + 3_600_000;
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .schedule(far, Bytes::from(i.to_le_bytes().to_vec()))
                    .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 200);
    let e = service
        .schedule(now_ms() + MAX_DELAY_MS_DEFAULT + 60_000, Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    service.shutdown().await;
    let store = TimerStore::open(dir.path(), TimerConfig::default()).unwrap();
    assert_eq!(store.pending(), 200);
}

#[tokio::test]
async fn a_full_channel_holds_timers_back_without_losing_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = TimerStore::open(dir.path(), TimerConfig::default()).unwrap();
    let (service, mut due) = TimerService::start(store, 2).unwrap();
    let past = now_ms() - 1_000;
    for i in 0..50u8 {
        service.schedule(past, Bytes::from(vec![i])).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 50 {
        let t = due.recv().await.unwrap();
        got.push(t.payload[0]);
        service.fired(vec![t.id]);
    }
    got.sort_unstable();
    assert_eq!(got, (0..50).collect::<Vec<u8>>());
    service.shutdown().await;
}
