//! The coordinator's offset requests against a model, with pipelining: each request takes effect
//! when its ordered part returns, while the durability waits it leaves behind are settled later
//! and in any order (as a gateway overlaps them with the next requests). Whatever that order,
//! every read sees the requests sent before it, and after a reopen the last write sent wins.

use std::collections::BTreeMap;
use std::sync::Arc;

use porter_storage::FileCache;
use proptest::prelude::*;

use super::*;
use crate::commit::{CommitConfig, Committer};
use crate::group::{GroupConfig, JoinRequest};

#[derive(Clone, Debug)]
enum Op {
    Commit {
        topic: usize,
        partition: i32,
        offset: i64,
    },
    Delete {
        topic: usize,
        partition: i32,
    },
    Fetch,
    /// Settle the pending durability wait at this index (modulo how many there are).
    Settle(usize),
}

/// "gone" does not exist: commits to it fail and change nothing.
const TOPICS: [&str; 3] = ["a", "b", "gone"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..3i32, 0..1_000i64)
            .prop_map(|(topic, partition, offset)| Op::Commit { topic, partition, offset }),
        1 => (0..3usize, 0..3i32).prop_map(|(topic, partition)| Op::Delete { topic, partition }),
        2 => Just(Op::Fetch),
        3 => any::<usize>().prop_map(Op::Settle),
    ]
}

type Model = BTreeMap<(String, i32), i64>;

fn observed(coordinator: &GroupCoordinator) -> Model {
    coordinator
        .fetch_offsets("g", None)
        .into_iter()
        .map(|(k, v)| (k, v.expect("all offsets").offset))
        .collect()
}

fn open(dir: &std::path::Path, committer: &Committer) -> GroupCoordinator {
    GroupCoordinator::open(
        dir,
        FileCache::new(16),
        false,
        GroupConfig::default(),
        committer,
    )
    .unwrap()
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let committer: Arc<Committer> = Committer::start(&CommitConfig::default()).unwrap();
    let coordinator = open(dir.path(), &committer);
    let exists = |topic: &str, _| topic != "gone";
    let mut model = Model::new();
    let mut pending: Vec<Written<PartitionResults>> = Vec::new();
    for op in ops {
        match op {
            Op::Commit {
                topic,
                partition,
                offset,
            } => {
                let commit = OffsetCommit {
                    topic: TOPICS[topic].to_string(),
                    partition,
                    offset,
                    leader_epoch: -1,
                    metadata: None,
                };
                let written = coordinator
                    .commit_offsets("g", -1, "", None, vec![commit], exists)
                    .await
                    .unwrap();
                let expected = if TOPICS[topic] == "gone" {
                    Err(GroupError::UnknownTopicOrPartition)
                } else {
                    model.insert((TOPICS[topic].to_string(), partition), offset);
                    Ok(())
                };
                assert_eq!(written.outcome, vec![expected]);
                pending.push(written);
            }
            Op::Delete { topic, partition } => {
                let key = (TOPICS[topic].to_string(), partition);
                let had_group = !model.is_empty();
                let result = coordinator
                    .delete_offsets("g", std::slice::from_ref(&key), &|_| None)
                    .await;
                if had_group {
                    let written = result.unwrap();
                    assert_eq!(written.outcome, vec![Ok(())]);
                    model.remove(&key);
                    pending.push(written);
                } else {
                    // A group with no offsets and no members does not exist.
                    assert_eq!(result.unwrap_err(), GroupError::GroupIdNotFound);
                }
            }
            Op::Fetch => assert_eq!(observed(&coordinator), model, "a read after the writes"),
            Op::Settle(i) => {
                if !pending.is_empty() {
                    let written = pending.swap_remove(i % pending.len());
                    coordinator.durable(written).await.unwrap();
                }
            }
        }
    }
    // The rest in reverse order of sending: still the last write sent wins.
    while let Some(written) = pending.pop() {
        coordinator.durable(written).await.unwrap();
    }
    assert_eq!(observed(&coordinator), model);
    coordinator.close().unwrap();
    drop(coordinator);
    let reopened = open(dir.path(), &committer);
    assert_eq!(observed(&reopened), model, "after a reopen");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn pipelined_offset_requests_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}

/// A request that looks at a group sees a session end at its deadline, not at the next
/// background tick (librdkafka's 0081 deletes a group as its only member's session ends).
#[tokio::test]
async fn a_session_ends_at_its_deadline_for_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let committer: Arc<Committer> = Committer::start(&CommitConfig::default()).unwrap();
    let config = GroupConfig {
        initial_rebalance_delay: std::time::Duration::ZERO,
        session_timeout_min: std::time::Duration::from_millis(1),
        ..GroupConfig::default()
    };
    let coordinator =
        GroupCoordinator::open(dir.path(), FileCache::new(16), false, config, &committer).unwrap();
    let session = std::time::Duration::from_millis(200);
    let joining = coordinator.join(
        "g",
        JoinRequest {
            member_id: String::new(),
            instance_id: Some("static-1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: session,
            rebalance_timeout: session,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            require_known_member_id: false,
        },
    );
    coordinator.tick().await; // the (zero) initial delay
    let joined = coordinator.joined(joining).await;
    assert_eq!(joined.error, None);
    let syncing = coordinator.sync("g", &joined.member_id, Some("static-1"), 1, vec![]);
    assert_eq!(coordinator.synced(syncing).await.error, None);

    assert_eq!(
        coordinator.delete_group("g").await.unwrap_err(),
        GroupError::NonEmptyGroup
    );
    tokio::time::sleep(session).await;
    // No tick ran since: the request itself sees the member gone.
    let written = coordinator.delete_group("g").await.expect("an empty group");
    coordinator.durable(written).await.unwrap();
}
