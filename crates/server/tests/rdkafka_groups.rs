//! Consumer groups through librdkafka (the `rdkafka` crate) against a real `porter`: members
//! that `subscribe` and commit by hand, the way applications use groups.
//!
//! - Three members of one group split a 6-partition topic 2/2/2 and consume every record exactly
//!   once, committing each synchronously; a member that stops part-way is replaced by one that
//!   resumes at the committed offsets (no re-reads); the committed offsets survive a kill -9 of
//!   the broker and a member joining afterwards starts from them.
//! - `cooperative-sticky`: a second member joins; the first gives up only the partitions that
//!   move (one incremental revoke) and keeps consuming the rest; every record is consumed once.
//!
//! Records are produced only while the group is stable, so "exactly once" is a hard assertion:
//! a duplicate means a commit was lost or a position was wrong, not a rebalance race.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;
const TIMEOUT: Duration = Duration::from_secs(20);
/// How long a test waits for a group to settle or for records to arrive.
const SETTLE: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(700);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn create_topic(server: &Server, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .expect("creating admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime()
        .block_on(async {
            tokio::time::timeout(
                TIMEOUT,
                admin.create_topics(
                    &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                    &opts,
                ),
            )
            .await
        })
        .expect("create_topics timed out")
        .expect("create_topics");
    assert_eq!(results[0].clone(), Ok(topic.to_string()));
}

/// Produces `count` records per partition with values `"{tag}-{partition}-{i}"`; returns
/// (partition, offset) -> value as the broker acknowledged them.
fn produce(server: &Server, topic: &str, tag: &str, count: usize) -> BTreeMap<(i32, i64), String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "15000")
        .create()
        .expect("creating producer");
    let mut pending = Vec::new();
    for p in 0..PARTITIONS {
        for i in 0..count {
            let value = format!("{tag}-{p}-{i}");
            let record: FutureRecord<'_, str, str> =
                FutureRecord::to(topic).partition(p).payload(&value);
            let future = producer
                .send_result(record)
                .unwrap_or_else(|(e, _)| panic!("enqueueing {value}: {e}"));
            pending.push((value, future));
        }
    }
    let rt = runtime();
    let mut acked = BTreeMap::new();
    for (value, future) in pending {
        let delivery = rt
            .block_on(async { tokio::time::timeout(TIMEOUT, future).await })
            .unwrap_or_else(|_| panic!("delivery of {value} timed out"))
            .expect("delivery future cancelled")
            .unwrap_or_else(|(e, _)| panic!("delivery of {value} failed: {e}"));
        let prior = acked.insert((delivery.partition, delivery.offset), value);
        assert!(prior.is_none(), "two records acknowledged at one offset");
    }
    acked
}

/// A rebalance callback as the member saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Assign(BTreeSet<i32>),
    Revoke(BTreeSet<i32>),
    Error(String),
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(tpl) => Event::Assign(partitions_of(tpl)),
            Rebalance::Revoke(tpl) => Event::Revoke(partitions_of(tpl)),
            Rebalance::Error(e) => Event::Error(e.to_string()),
        };
        self.0.lock().unwrap().push(event);
    }
}

/// What a member thread shares with the test.
#[derive(Default)]
struct Shared {
    /// (partition, offset, value) in consumption order.
    consumed: Vec<(i32, i64, String)>,
    /// Partitions of the latest `assignment()`.
    assignment: BTreeSet<i32>,
    /// Commit failures and consumer errors; a healthy run has none.
    errors: Vec<String>,
}

/// A group member polling on its own thread: records every message and commits it
/// synchronously before polling again; stops after `limit` messages or when told to, then
/// closes (LeaveGroup) by dropping its consumer.
struct Member {
    name: String,
    shared: Arc<Mutex<Shared>>,
    events: Recorder,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn consumer_config(server: &Server, group: &str, strategy: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", server.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("session.timeout.ms", "6000")
        // librdkafka learns of a rebalance from its next heartbeat: the 3 s default would make
        // every join slow.
        .set("heartbeat.interval.ms", "200")
        .set("partition.assignment.strategy", strategy)
        .set("fetch.wait.max.ms", "100");
    config
}

impl Member {
    fn start(
        server: &Server,
        name: &str,
        group: &str,
        topic: &str,
        strategy: &str,
        limit: Option<usize>,
    ) -> Member {
        Member::start_with(server, name, group, topic, strategy, limit, None)
    }

    /// `start`, as a static member (`group.instance.id`) when `instance` is given.
    fn start_with(
        server: &Server,
        name: &str,
        group: &str,
        topic: &str,
        strategy: &str,
        limit: Option<usize>,
        instance: Option<&str>,
    ) -> Member {
        let events = Recorder::default();
        let mut config = consumer_config(server, group, strategy);
        config.set("client.id", name);
        if let Some(instance) = instance {
            config.set("group.instance.id", instance);
        }
        let consumer: BaseConsumer<Recorder> = config
            .create_with_context(events.clone())
            .expect("creating consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop, name) = (shared.clone(), stop.clone(), name.to_string());
            let deadline = Instant::now() + Duration::from_secs(50);
            std::thread::spawn(move || {
                let mut taken = 0;
                while !stop.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                    && limit.is_none_or(|l| taken < l)
                {
                    match consumer.poll(Duration::from_millis(50)) {
                        Some(Ok(message)) => {
                            let value = String::from_utf8_lossy(message.payload().unwrap_or(&[]))
                                .into_owned();
                            let (p, offset) = (message.partition(), message.offset());
                            taken += 1;
                            let commit = consumer.commit_message(&message, CommitMode::Sync);
                            let mut shared = shared.lock().unwrap();
                            shared.consumed.push((p, offset, value));
                            if let Err(e) = commit {
                                shared
                                    .errors
                                    .push(format!("{name}: commit {p}@{offset}: {e}"));
                            }
                        }
                        Some(Err(e)) => {
                            shared.lock().unwrap().errors.push(format!("{name}: {e}"));
                        }
                        None => {}
                    }
                    let assignment = consumer
                        .assignment()
                        .map(|tpl| partitions_of(&tpl))
                        .unwrap_or_default();
                    shared.lock().unwrap().assignment = assignment;
                }
                // Dropping closes the consumer: revoke callback, LeaveGroup.
                drop(consumer);
                shared.lock().unwrap().assignment.clear();
            })
        };
        Member {
            name: name.to_string(),
            shared,
            events,
            stop,
            thread: Some(thread),
        }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        self.shared.lock().unwrap().assignment.clone()
    }

    fn consumed(&self) -> Vec<(i32, i64, String)> {
        self.shared.lock().unwrap().consumed.clone()
    }

    /// Forgets what was consumed so far (the next phase's records are checked alone).
    fn forget_consumed(&self) {
        self.shared.lock().unwrap().consumed.clear();
    }

    fn events(&self) -> Vec<Event> {
        self.events.0.lock().unwrap().clone()
    }

    fn assert_no_errors(&self) {
        let errors = &self.shared.lock().unwrap().errors;
        assert!(errors.is_empty(), "{}: {errors:#?}", self.name);
    }

    /// Waits (bounded) for the thread to end on its own (after its `limit`).
    fn join(mut self) -> Vec<(i32, i64, String)> {
        let deadline = Instant::now() + TIMEOUT;
        let thread = self.thread.take().unwrap();
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "{} did not finish within {TIMEOUT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.join().expect("member thread panicked");
        self.assert_no_errors();
        self.consumed()
    }

    fn stop(self) -> Vec<(i32, i64, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A panicking test must not wait on librdkafka's close against a dead broker.
        if !std::thread::panicking() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Waits (bounded) until `check` holds for the members' assignments.
fn wait_for_assignments(members: &[&Member], what: &str, check: impl Fn(&[BTreeSet<i32>]) -> bool) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let assignments: Vec<BTreeSet<i32>> = members.iter().map(|m| m.assignment()).collect();
        if check(&assignments) {
            return;
        }
        if Instant::now() > deadline {
            let events: Vec<_> = members.iter().map(|m| (&m.name, m.events())).collect();
            panic!(
                "{what}: not within {SETTLE:?}; assignments {assignments:?}, events {events:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until the members together consumed `expected.len()` records, then a little
/// longer for extras; returns everything consumed, keyed by (partition, offset), panicking on a
/// record consumed twice.
fn collect_all(
    members: &[&Member],
    expected: &BTreeMap<(i32, i64), String>,
    what: &str,
) -> BTreeMap<(i32, i64), String> {
    let total = || members.iter().map(|m| m.consumed().len()).sum::<usize>();
    let deadline = Instant::now() + SETTLE;
    while total() < expected.len() {
        if Instant::now() > deadline {
            panic!(
                "{what}: consumed {} of {} records within {SETTLE:?}",
                total(),
                expected.len()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(QUIET);
    let mut got = BTreeMap::new();
    for member in members {
        for (p, offset, value) in member.consumed() {
            if let Some(first) = got.insert((p, offset), value.clone()) {
                panic!("{what}: {p}@{offset} ({value}) consumed twice (first: {first})");
            }
        }
    }
    got
}

/// `got == want`, reported as the records missing and unexpected (a few of each).
fn assert_same(
    got: &BTreeMap<(i32, i64), String>,
    want: &BTreeMap<(i32, i64), String>,
    what: &str,
) {
    if got == want {
        return;
    }
    let missing: Vec<_> = want.iter().filter(|(k, v)| got.get(k) != Some(v)).collect();
    let extra: Vec<_> = got.iter().filter(|(k, v)| want.get(k) != Some(v)).collect();
    panic!(
        "{what}: {} records missing, e.g. {:?}; {} unexpected, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)]
    );
}

fn all_partitions(topic: &str) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    tpl
}

/// The group's committed offsets, read by a consumer that does not join.
fn committed(server: &Server, group: &str, topic: &str) -> BTreeMap<i32, Offset> {
    let consumer: BaseConsumer = consumer_config(server, group, "range")
        .create()
        .expect("creating consumer");
    let tpl = consumer
        .committed_offsets(all_partitions(topic), TIMEOUT)
        .expect("committed_offsets");
    tpl.elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect()
}

fn offsets_at(per_partition: i64) -> BTreeMap<i32, Offset> {
    (0..PARTITIONS)
        .map(|p| (p, Offset::Offset(per_partition)))
        .collect()
}

#[test]
fn three_members_commit_resume_and_survive_kill9() {
    let started = Instant::now();
    let topic = "orders";
    let group = "billing";
    let mut server = Server::start(&[]);
    create_topic(&server, topic, PARTITIONS);

    // Three members split six partitions two each; records are produced once they settled.
    let members: Vec<Member> = (0..3)
        .map(|i| Member::start(&server, &format!("m{i}"), group, topic, "range", None))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for_assignments(&refs, "three members get 2 partitions each", |a| {
        a.iter().all(|s| s.len() == 2) && a.iter().flatten().collect::<BTreeSet<_>>().len() == 6
    });
    let joined = started.elapsed();
    let first = produce(&server, topic, "first", 100);
    let got = collect_all(&refs, &first, "three members");
    assert_same(&got, &first, "three members");
    for member in &members {
        let owned = member.assignment();
        for (p, offset, _) in member.consumed() {
            assert!(
                owned.contains(&p),
                "{} consumed {p}@{offset} but owns {owned:?}",
                member.name
            );
        }
        member.assert_no_errors();
    }
    for member in members {
        member.stop();
    }
    assert_eq!(committed(&server, group, topic), offsets_at(100));
    let phase1 = started.elapsed();

    // A member that stops after 30 of 60 new records; its successor reads exactly the rest.
    let second = produce(&server, topic, "second", 10);
    let quitter = Member::start(&server, "quitter", group, topic, "range", Some(30));
    let taken = quitter.join();
    assert_eq!(taken.len(), 30);
    let successor = Member::start(&server, "successor", group, topic, "range", None);
    let taken: BTreeMap<(i32, i64), String> =
        taken.into_iter().map(|(p, o, v)| ((p, o), v)).collect();
    let rest: BTreeMap<(i32, i64), String> = second
        .iter()
        .filter(|(k, _)| !taken.contains_key(k))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(rest.len(), 30, "the quitter consumed records not produced");
    let got = collect_all(&[&successor], &rest, "successor");
    assert_eq!(
        got, rest,
        "the successor did not resume at the committed offsets"
    );
    successor.stop();
    assert_eq!(committed(&server, group, topic), offsets_at(110));
    let phase2 = started.elapsed();

    // kill -9: the committed offsets are still there, and a new member starts from them.
    server.kill9();
    server.restart();
    assert_eq!(
        committed(&server, group, topic),
        offsets_at(110),
        "committed offsets lost by kill -9"
    );
    let third = produce(&server, topic, "third", 2);
    let after = Member::start(&server, "after-crash", group, topic, "range", None);
    let got = collect_all(&[&after], &third, "after kill -9");
    assert_eq!(
        got, third,
        "a member after kill -9 re-read or skipped records"
    );
    after.stop();
    assert_eq!(committed(&server, group, topic), offsets_at(112));
    server.terminate();
    eprintln!(
        "three members: joined {joined:?}, phase 1 {phase1:?}, resume {phase2:?}, total {:?}",
        started.elapsed()
    );
}

#[test]
fn cooperative_sticky_member_joining_moves_only_some_partitions() {
    let started = Instant::now();
    let topic = "clicks";
    let group = "sessionizer";
    let strategy = "cooperative-sticky";
    let server = Server::start(&[]);
    create_topic(&server, topic, PARTITIONS);

    let a = Member::start(&server, "a", group, topic, strategy, None);
    wait_for_assignments(&[&a], "a alone owns every partition", |s| s[0].len() == 6);
    let first = produce(&server, topic, "first", 50);
    let got = collect_all(&[&a], &first, "a alone");
    assert_same(&got, &first, "a alone");
    a.forget_consumed();
    let alone = started.elapsed();

    let b = Member::start(&server, "b", group, topic, strategy, None);
    wait_for_assignments(&[&a, &b], "a and b own 3 partitions each", |s| {
        s[0].len() == 3 && s[1].len() == 3 && s[0].is_disjoint(&s[1])
    });
    let rebalanced = started.elapsed();
    let a_now = a.assignment();
    let b_now = b.assignment();
    // Incremental: a's callbacks are the initial assignment, then one revoke of exactly the
    // partitions b got, and (librdkafka's cooperative flow) possibly an empty assign; never a
    // revoke of everything.
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    let events: Vec<Event> = a
        .events()
        .into_iter()
        .filter(|e| *e != Event::Assign(BTreeSet::new()))
        .collect();
    assert_eq!(
        events,
        vec![Event::Assign(all.clone()), Event::Revoke(b_now.clone())],
        "a's rebalance callbacks (a now owns {a_now:?}, b {b_now:?})"
    );
    assert_eq!(
        b.events()
            .into_iter()
            .filter(|e| *e != Event::Assign(BTreeSet::new()))
            .collect::<Vec<_>>(),
        vec![Event::Assign(b_now.clone())],
        "b's rebalance callbacks"
    );

    let second = produce(&server, topic, "second", 50);
    let got = collect_all(&[&a, &b], &second, "a and b");
    assert_same(&got, &second, "a and b");
    for (member, owned) in [(&a, &a_now), (&b, &b_now)] {
        for (p, offset, value) in member.consumed() {
            assert!(
                owned.contains(&p),
                "{} consumed {p}@{offset} ({value}) but owns {owned:?}",
                member.name
            );
        }
    }
    a.stop();
    b.stop();
    assert_eq!(committed(&server, group, topic), offsets_at(100));
    eprintln!(
        "cooperative: a alone {alone:?}, rebalanced {rebalanced:?}, total {:?}",
        started.elapsed()
    );
    drop(server);
}

/// Static membership (KIP-345): a member with a `group.instance.id` that restarts within its
/// session timeout gets its partitions back without a rebalance, so the other member is not
/// disturbed, and it resumes at its committed offsets.
#[test]
fn static_member_restart_keeps_its_partitions_without_a_rebalance() {
    let started = Instant::now();
    let topic = "ledger";
    let group = "auditors";
    let server = Server::start(&[]);
    create_topic(&server, topic, PARTITIONS);
    let start = |name: &str| {
        Member::start_with(
            &server,
            name,
            group,
            topic,
            "range",
            None,
            Some(&format!("static-{name}")),
        )
    };
    let x = start("x");
    let y = start("y");
    wait_for_assignments(&[&x, &y], "x and y own 3 partitions each", |s| {
        s[0].len() == 3 && s[1].len() == 3
    });
    let (x_owned, y_events) = (x.assignment(), y.events());
    let first = produce(&server, topic, "first", 20);
    assert_same(
        &collect_all(&[&x, &y], &first, "x and y"),
        &first,
        "x and y",
    );
    x.stop();
    y.forget_consumed();

    // x comes back as the same instance: same partitions, y sees no rebalance.
    let second = produce(&server, topic, "second", 5);
    let x = start("x");
    wait_for_assignments(&[&x], "x back", |s| !s[0].is_empty());
    assert_eq!(
        x.assignment(),
        x_owned,
        "the static member got other partitions"
    );
    let got = collect_all(&[&x, &y], &second, "x back and y");
    assert_same(&got, &second, "x back and y");
    assert_eq!(y.events(), y_events, "y went through a rebalance");
    x.stop();
    y.stop();
    eprintln!("static membership: total {:?}", started.elapsed());
}
