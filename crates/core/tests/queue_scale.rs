//! Cheap queues through the broker's gateway-facing API: many durable queues open at once on the
//! shared scheduler (no task or timer per queue), and consumers that stop reading not holding
//! the scheduler's workers. Real files in a temp dir (tmpfs when there is one).

use std::time::Duration;

use porter_core::queue::api::{ConsumeRequest, ConsumerEvent, CONSUMER_BUFFER_MAX};
use porter_core::{Broker, BrokerConfig, VirtualHost};
use tokio::sync::mpsc;

mod queue_support;

use queue_support::*;

fn consume_into(
    vhost: &VirtualHost,
    queue: &str,
    tag: &str,
    buffer: usize,
    no_ack: bool,
) -> mpsc::Receiver<ConsumerEvent> {
    let (sink, events) = mpsc::channel(buffer);
    vhost
        .queue(queue, 1)
        .unwrap()
        .consume(ConsumeRequest {
            consumer_tag: tag.into(),
            prefetch: 10,
            no_ack,
            exclusive: false,
            owner: 1,
            sink,
        })
        .unwrap();
    events
}

/// A data directory for the many-queues tests: on tmpfs when there is one, since each declare
/// costs about three fsyncs (metadata journal, queue directory) and on a disk those would make
/// the test measure the disk; the broker's own work is the same either way.
fn many_queues_dir() -> tempfile::TempDir {
    match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

/// Declares `n` durable queues, restarts, and checks every one came back with its messages
/// and that publish, consume and get work on a few of them.
async fn many_durable_queues_survive_a_restart(n: usize) {
    let dir = many_queues_dir();
    let config = || BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        // Fewer descriptors than queues by far: logs and ack files share this cache.
        open_files_max: 256,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(config()).unwrap();
    let vhost = broker.vhost("/").unwrap();
    for i in 0..n {
        vhost
            .declare_queue(durable(&format!("mq-{i}"), &[]), false, 1)
            .await
            .unwrap();
    }
    publish(&vhost, "", message("mq-0", "before restart", true)).await;
    broker.shutdown().await.unwrap();
    drop((vhost, broker));

    let broker = Broker::open(config()).unwrap();
    assert_eq!(broker.queue_count(), n);
    // Idle queues cost no scheduler work: once the one with a backlog had its first turn,
    // no queue waits for a worker and none has a timer.
    let deadline = std::time::Instant::now() + WAIT;
    while broker.queue_scheduler_pending() != (0, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            broker.queue_scheduler_pending()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let vhost = broker.vhost("/").unwrap();
    for i in 0..n {
        let name = format!("mq-{i}");
        let declared = vhost
            .declare_queue(durable(&name, &[]), true, 1)
            .await
            .unwrap();
        assert_eq!(declared.message_count, u64::from(i == 0), "{name}");
    }
    let mut events = consume_into(&vhost, "mq-0", "c0", CONSUMER_BUFFER_MAX, false);
    assert_eq!(body(&next(&mut events).await), "before restart");
    for i in [1, n / 2, n - 1] {
        let name = format!("mq-{i}");
        publish(&vhost, "", message(&name, &name, true)).await;
        let queue = vhost.queue(&name, 1).unwrap();
        let got = queue.get(false).await.unwrap().expect("a message");
        assert_eq!(body(&got), name);
        queue.ack(&[got.queue_tag]).unwrap();
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_durable_queues_survive_a_restart() {
    many_durable_queues_survive_a_restart(10_000).await;
}

/// The target. Ignored by default: over a minute in a debug build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow in debug builds; run with --run-ignored"]
async fn hundred_thousand_durable_queues_survive_a_restart() {
    many_durable_queues_survive_a_restart(100_000).await;
}

/// Consumers that stop reading do not hold the queues' shared workers: with more stalled
/// consumers than workers (each with a full buffer and more messages waiting), another queue's
/// consumer still gets its message, and a stalled one that reads again gets all of its own, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_consumers_do_not_hold_other_queues() {
    use porter_core::queue::limits::QUEUE_WORKERS;

    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    let stalled = QUEUE_WORKERS + 8;
    let mut receivers = Vec::new();
    for i in 0..stalled {
        let name = format!("stuck-{i}");
        vhost
            .declare_queue(durable(&name, &[]), false, 1)
            .await
            .unwrap();
        // Room for one delivery: the second waits for the consumer to read.
        let events = consume_into(&vhost, &name, &format!("c{i}"), 1, true);
        for k in 0..3 {
            publish(&vhost, "", message(&name, &format!("{name}/{k}"), true)).await;
        }
        receivers.push(events);
    }
    vhost
        .declare_queue(durable("free", &[]), false, 1)
        .await
        .unwrap();
    let mut events = consume_into(&vhost, "free", "free", CONSUMER_BUFFER_MAX, false);
    publish(&vhost, "", message("free", "through", true)).await;
    assert_eq!(body(&next(&mut events).await), "through");
    let mut first = receivers.swap_remove(0);
    let got: Vec<String> = {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(body(&next(&mut first).await));
        }
        got
    };
    assert_eq!(got, ["stuck-0/0", "stuck-0/1", "stuck-0/2"]);
    broker.shutdown().await.unwrap();
}

/// Closing a connection looks at its own exclusive queues only, not at every queue of the vhost:
/// 2,000 chat clients closing together would otherwise be 4 million comparisons. Counted, not
/// timed: the broker counts the queues it examined to find closing owners' queues.
#[tokio::test]
async fn closing_a_connection_examines_only_its_own_exclusive_queues() {
    let dir = many_queues_dir();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    let exclusive = |owner| {
        let mut definition = durable("", &[]);
        definition.durable = false;
        definition.exclusive_owner = Some(owner);
        definition
    };
    // 200 other connections with an exclusive queue each, and shared queues besides.
    for owner in 100..300 {
        vhost
            .declare_queue(exclusive(owner), false, owner)
            .await
            .unwrap();
    }
    for i in 0..50 {
        vhost
            .declare_queue(durable(&format!("shared-{i}"), &[]), false, 1)
            .await
            .unwrap();
    }
    let mine = [
        vhost.declare_queue(exclusive(7), false, 7).await.unwrap(),
        vhost.declare_queue(exclusive(7), false, 7).await.unwrap(),
    ];
    assert_eq!(broker.queue_count(), 252);

    let before = broker.queues_examined_on_release();
    vhost.release_owner(7).await;
    assert_eq!(broker.queues_examined_on_release() - before, 2);
    for declared in &mine {
        assert!(vhost.queue(&declared.name, 7).is_err(), "{}", declared.name);
    }
    assert_eq!(broker.queue_count(), 250);
    // A connection with no exclusive queue looks at none; another's go with it alone.
    vhost.release_owner(1).await;
    vhost.release_owner(150).await;
    assert_eq!(broker.queues_examined_on_release() - before, 3);
    assert_eq!(broker.queue_count(), 249);
    broker.shutdown().await.unwrap();
}
