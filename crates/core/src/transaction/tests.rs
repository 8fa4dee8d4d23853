//! Transaction tests: the store against a model through random prepares, resolves, checks,
//! syncs, restarts and crashes (the file cut anywhere after the last sync, garbage appended);
//! the service's group commit, check-backs and drops.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn half(id: &str, payload: &[u8], check_after_ms: i64) -> HalfMessage {
    HalfMessage {
        id: id.into(),
        producer_group: "group".into(),
        topic: "topic".into(),
        payload: Bytes::copy_from_slice(payload),
        prepared_ms: 1_000,
        check_after_ms,
    }
}

fn small_limits() -> StoreLimits {
    StoreLimits {
        pending_max: 5,
        pending_bytes_max: 1 << 20,
        compact_bytes: 512,
    }
}

#[test]
fn prepare_resolve_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TransactionStore::open(dir.path()).unwrap();
    store.prepare(half("a", b"one", 10)).unwrap();
    store.prepare(half("b", b"two", 20)).unwrap();
    // A retried prepare changes nothing.
    store.prepare(half("a", b"other", 99)).unwrap();
    assert_eq!(store.next_check_ms(), Some(1_010));
    store.sync().unwrap();
    let committed = store.resolve("a", Resolution::Commit).unwrap();
    assert_eq!(committed, Some(half("a", b"one", 10)));
    assert_eq!(store.resolve("a", Resolution::Commit).unwrap(), None);
    assert_eq!(store.resolve("b", Resolution::Rollback).unwrap(), None);
    assert_eq!(store.resolve("zzz", Resolution::Commit).unwrap(), None);
    store.prepare(half("c", b"three", 5)).unwrap();
    store.sync().unwrap();
    drop(store);
    let mut store = TransactionStore::open(dir.path()).unwrap();
    assert_eq!(store.pending_len(), 1);
    assert_eq!(store.half("c").unwrap(), Some(half("c", b"three", 5)));
    assert_eq!(store.half("a").unwrap(), None);
}

#[test]
fn checks_fall_due_in_order_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TransactionStore::open(dir.path()).unwrap();
    store.prepare(half("late", b"l", 500)).unwrap();
    store.prepare(half("early", b"e", 100)).unwrap();
    assert!(store.due_checks(1_099, 10).unwrap().is_empty());
    let due = store.due_checks(1_100, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0],
        CheckDue {
            id: "early".into(),
            producer_group: "group".into(),
            topic: "topic".into(),
            payload: Bytes::from_static(b"e"),
            attempt: 1,
        }
    );
    store.record_check("early", 2_000).unwrap();
    let due = store.due_checks(1_600, 10).unwrap();
    assert_eq!(
        due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["late"]
    );
    let due = store.due_checks(5_000, 1).unwrap();
    assert_eq!((due[0].id.as_str(), due.len()), ("late", 1));
    let due = store.due_checks(5_000, 10).unwrap();
    assert_eq!(due[1].attempt, 2);
    store.sync().unwrap();
    drop(store);
    let mut store = TransactionStore::open(dir.path()).unwrap();
    let due = store.due_checks(5_000, 10).unwrap();
    assert_eq!(due.iter().find(|d| d.id == "early").unwrap().attempt, 2);
}

#[test]
fn limits_refuse_new_prepares() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TransactionStore::open_with(dir.path(), small_limits()).unwrap();
    for i in 0..5 {
        store.prepare(half(&format!("m{i}"), b"x", 0)).unwrap();
    }
    let e = store.prepare(half("m5", b"x", 0)).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::Precondition, "{e}");
    // A retry of a pending one is still fine.
    store.prepare(half("m0", b"x", 0)).unwrap();
    let big = vec![0u8; HALF_PAYLOAD_BYTES_MAX + 1];
    store.resolve("m0", Resolution::Rollback).unwrap();
    let e = store.prepare(half("big", &big, 0)).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::TooLarge);
    let e = store.prepare(half("", b"x", 0)).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::Precondition);
    let long = "x".repeat(TRANSACTION_NAME_BYTES_MAX + 1);
    assert!(store.prepare(half(&long, b"x", 0)).is_err());
}

#[test]
fn compaction_keeps_the_pending_set_and_bounds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TransactionStore::open_with(dir.path(), small_limits()).unwrap();
    store.prepare(half("keep", b"kept payload", 0)).unwrap();
    store.record_check("keep", 77).unwrap();
    for i in 0..200 {
        let id = format!("m{i}");
        store.prepare(half(&id, &[7u8; 40], 0)).unwrap();
        store.resolve(&id, Resolution::Rollback).unwrap();
        store.sync().unwrap();
    }
    let len = std::fs::metadata(dir.path().join("half.log"))
        .unwrap()
        .len();
    assert!(len < 1024, "compacted file is {len} bytes");
    assert_eq!(
        store.half("keep").unwrap(),
        Some(half("keep", b"kept payload", 0))
    );
    drop(store);
    let mut store = TransactionStore::open_with(dir.path(), small_limits()).unwrap();
    assert_eq!(store.pending_state(), vec![("keep".to_string(), 1, 77)]);
    assert_eq!(
        store.half("keep").unwrap().unwrap().payload,
        &b"kept payload"[..]
    );
}

#[test]
fn a_leftover_compaction_temp_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TransactionStore::open(dir.path()).unwrap();
    store.prepare(half("a", b"1", 0)).unwrap();
    store.sync().unwrap();
    drop(store);
    std::fs::write(dir.path().join("half.log.tmp"), b"half-written compaction").unwrap();
    let store = TransactionStore::open(dir.path()).unwrap();
    assert_eq!(store.pending_len(), 1);
    assert!(!dir.path().join("half.log.tmp").exists());
}

/// Kill -9 at every byte after the last sync: reopening never fails, never brings back the
/// message whose rollback was synced, never loses the one whose prepare was synced, and keeps
/// the unsynced tail as a prefix (a resolve never survives without what came before it).
#[test]
fn a_crash_at_any_byte_keeps_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TransactionStore::open(dir.path()).unwrap();
    store.prepare(half("resolved", b"r", 0)).unwrap();
    store.prepare(half("kept", b"k", 0)).unwrap();
    store.sync().unwrap();
    store.resolve("resolved", Resolution::Rollback).unwrap();
    store.sync().unwrap();
    let synced_len = store.file_len();
    store.prepare(half("new", b"n", 0)).unwrap();
    store.record_check("kept", 5).unwrap();
    store.resolve("kept", Resolution::Commit).unwrap();
    let len = store.file_len();
    drop(store);
    let whole = std::fs::read(dir.path().join("half.log")).unwrap();
    for cut in synced_len..=len {
        std::fs::write(dir.path().join("half.log"), &whole[..cut as usize]).unwrap();
        let mut store = TransactionStore::open(dir.path()).unwrap();
        assert_eq!(store.half("resolved").unwrap(), None, "cut at {cut}");
        let state = store.pending_state();
        let ids: Vec<&str> = state.iter().map(|(id, _, _)| id.as_str()).collect();
        let expected: &[&str] = match ids.as_slice() {
            ["kept"] => &["kept"],
            ["kept", "new"] => &["kept", "new"],
            ["new"] => &["new"],
            other => panic!("cut at {cut}: pending {other:?}"),
        };
        assert_eq!(ids, expected);
        if cut == len {
            assert_eq!(ids, ["new"]);
        }
        if cut == synced_len {
            assert_eq!(ids, ["kept"]);
        }
        assert!(store.file_len() <= cut);
    }
}

// ---- the model ----

#[derive(Clone, Debug)]
enum Op {
    Prepare {
        id: u8,
        len: u8,
        check_after: i64,
    },
    Resolve {
        id: u8,
        commit: bool,
    },
    Check {
        id: u8,
        next: i64,
    },
    Sync,
    Restart,
    /// Kill -9: the file is cut somewhere after the last sync (`cut` of the way) and random
    /// bytes may follow (a sector of garbage).
    Crash {
        cut: f64,
        garbage: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..64, 0i64..100).prop_map(|(id, len, check_after)| Op::Prepare { id, len, check_after }),
        3 => (0u8..6, any::<bool>()).prop_map(|(id, commit)| Op::Resolve { id, commit }),
        2 => (0u8..6, 0i64..1_000).prop_map(|(id, next)| Op::Check { id, next }),
        2 => Just(Op::Sync),
        1 => Just(Op::Restart),
        1 => (0.0f64..=1.0, prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(cut, garbage)| Op::Crash { cut, garbage }),
    ]
}

/// Pending id → (payload, attempts, next check).
type Model = BTreeMap<String, (Vec<u8>, u32, i64)>;

fn model_state(model: &Model) -> Vec<(String, u32, i64)> {
    model
        .iter()
        .map(|(id, (_, a, n))| (id.clone(), *a, *n))
        .collect()
}

fn payload(id: u8, len: u8) -> Vec<u8> {
    (0..len).map(|i| i.wrapping_mul(31) ^ id).collect()
}

fn crash(dir: &Path, cut_at: u64, garbage: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(dir.join("half.log"))
        .unwrap();
    file.set_len(cut_at).unwrap();
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.join("half.log"))
        .unwrap();
    file.write_all(garbage).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// After any sequence of operations, restarts and crashes, the store's pending set is the
    /// model's: a crash loses only what was not synced, in order (a prefix of it), so a resolve
    /// that was synced never comes undone, and what was never resolved is never lost.
    #[test]
    fn the_store_follows_the_model_through_crashes(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TransactionStore::open_with(dir.path(), small_limits()).unwrap();
        let mut model = Model::new();
        // The model as of the last sync, the file length then, and each later step's model
        // with the file length after it.
        let mut synced = (model.clone(), 0u64);
        let mut steps: Vec<(Model, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Prepare { id, len, check_after } => {
                    let key = format!("m{id}");
                    let result = store.prepare(half(&key, &payload(id, len), check_after));
                    if model.contains_key(&key) {
                        prop_assert!(result.is_ok());
                    } else if model.len() >= 5 {
                        prop_assert!(result.is_err());
                    } else {
                        prop_assert!(result.is_ok());
                        model.insert(key, (payload(id, len), 0, 1_000 + check_after));
                    }
                }
                Op::Resolve { id, commit } => {
                    let key = format!("m{id}");
                    let resolution = if commit { Resolution::Commit } else { Resolution::Rollback };
                    let got = store.resolve(&key, resolution).unwrap();
                    let expected = model.remove(&key).filter(|_| commit).map(|(p, _, _)| p);
                    prop_assert_eq!(got.map(|h| h.payload.to_vec()), expected);
                }
                Op::Check { id, next } => {
                    let key = format!("m{id}");
                    store.record_check(&key, next).unwrap();
                    if let Some(entry) = model.get_mut(&key) {
                        entry.1 += 1;
                        entry.2 = next;
                    }
                }
                Op::Sync => {
                    store.sync().unwrap();
                    synced = (model.clone(), store.file_len());
                    steps.clear();
                }
                Op::Restart => {
                    drop(store);
                    store = TransactionStore::open_with(dir.path(), small_limits()).unwrap();
                }
                Op::Crash { cut, garbage } => {
                    let len = store.file_len();
                    drop(store);
                    let cut_at = synced.1 + ((len - synced.1) as f64 * cut) as u64;
                    crash(dir.path(), cut_at, &garbage);
                    store = TransactionStore::open_with(dir.path(), small_limits()).unwrap();
                    model = steps
                        .iter()
                        .rev()
                        .find(|(_, end)| *end <= cut_at)
                        .map_or_else(|| synced.0.clone(), |(m, _)| m.clone());
                    synced = (model.clone(), store.file_len());
                    steps.clear();
                }
            }
            steps.push((model.clone(), store.file_len()));
            prop_assert_eq!(store.pending_state(), model_state(&model));
        }
        drop(store);
        let mut store = TransactionStore::open_with(dir.path(), small_limits()).unwrap();
        prop_assert_eq!(store.pending_state(), model_state(&model));
        for (id, (payload, _, _)) in &model {
            prop_assert_eq!(store.half(id).unwrap().map(|h| h.payload.to_vec()), Some(payload.clone()));
        }
    }
}

// ---- the service ----

fn fast_config() -> TransactionConfig {
    TransactionConfig {
        checks_max: 3,
        check_interval_ms: 1,
        check_interval_max_ms: 4,
        ..TransactionConfig::default()
    }
}

fn now_half(id: &str, payload: &[u8], check_after_ms: i64) -> HalfMessage {
    HalfMessage {
        prepared_ms: wall_clock_ms(),
        ..half(id, payload, check_after_ms)
    }
}

/// Guards a wait against hanging; never an assertion about how long something took.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

#[tokio::test]
async fn prepare_then_commit_returns_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _checks) =
        TransactionService::start(dir.path(), TransactionConfig::default()).unwrap();
    service
        .prepare(now_half("tx", b"body", 60_000))
        .await
        .unwrap();
    assert_eq!(service.pending_len(), 1);
    let committed = service
        .resolve("tx".into(), Resolution::Commit)
        .await
        .unwrap();
    assert_eq!(committed.unwrap().payload, &b"body"[..]);
    assert_eq!(
        service
            .resolve("tx".into(), Resolution::Commit)
            .await
            .unwrap(),
        None
    );
    service.prepare(now_half("rb", b"x", 60_000)).await.unwrap();
    assert_eq!(
        service
            .resolve("rb".into(), Resolution::Rollback)
            .await
            .unwrap(),
        None
    );
    assert_eq!(service.half("rb".into()).await.unwrap(), None);
    // Durable before answering: a restart sees the same.
    service
        .prepare(now_half("kept", b"k", 60_000))
        .await
        .unwrap();
    drop(service);
    let (service, _checks) =
        TransactionService::start(dir.path(), TransactionConfig::default()).unwrap();
    assert_eq!(
        service.half("kept".into()).await.unwrap().unwrap().payload,
        &b"k"[..]
    );
    assert_eq!(service.pending_len(), 1);
}

#[tokio::test]
async fn a_burst_of_prepares_shares_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _checks) =
        TransactionService::start(dir.path(), TransactionConfig::default()).unwrap();
    let service = std::sync::Arc::new(service);
    let release = service.pause().await;
    // The thread has taken the pause (and returned its place in the queue) and holds.
    let room = TRANSACTION_QUEUE_MAX;
    within("the pause taken", async {
        while service.room() < room {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .prepare(now_half(&format!("m{i}"), b"x", 60_000))
                    .await
            })
        })
        .collect();
    within("50 prepares queued", async {
        while service.room() > room - 50 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let before = service.syncs();
    drop(release);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(service.syncs(), before + 1, "50 queued prepares, one fsync");
}

#[tokio::test]
async fn unanswered_messages_are_checked_with_backoff_then_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (service, mut checks) = TransactionService::start(dir.path(), fast_config()).unwrap();
    service.prepare(now_half("silent", b"s", 0)).await.unwrap();
    for attempt in 1..=3 {
        let check = within("a check", checks.recv()).await.unwrap();
        assert_eq!((check.id.as_str(), check.attempt), ("silent", attempt));
        assert_eq!(check.payload, &b"s"[..]);
        assert_eq!(check.producer_group, "group");
    }
    within("the drop", async {
        while service.half("silent".into()).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(checks.try_recv().is_err(), "no check after the last one");
    assert_eq!(
        service
            .resolve("silent".into(), Resolution::Commit)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_check_answered_with_commit_publishes() {
    let dir = tempfile::tempdir().unwrap();
    // The first check at once, the next a minute later: the answer cannot race a drop.
    let config = TransactionConfig {
        check_interval_ms: 60_000,
        ..fast_config()
    };
    let (service, mut checks) = TransactionService::start(dir.path(), config).unwrap();
    service.prepare(now_half("late", b"l", 0)).await.unwrap();
    let check = within("a check", checks.recv()).await.unwrap();
    let committed = service.resolve(check.id, Resolution::Commit).await.unwrap();
    assert_eq!(committed.unwrap().payload, &b"l"[..]);
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let config = TransactionConfig::default();
    let delays: Vec<i64> = (1..=6).map(|n| config.next_check_ms(0, n)).collect();
    assert_eq!(delays, [6_000, 12_000, 24_000, 30_000, 30_000, 30_000]);
    assert_eq!(config.next_check_ms(0, u32::MAX), 30_000);
}
