//! The broker-wide bound on queue message bodies kept in memory: a backlog across many queues
//! stays in their logs past `queue_cache_bytes_max`, and is delivered intact and in order all the
//! same (read back from the log).

use porter_core::queue::api::{ConsumeRequest, CONSUMER_BUFFER_MAX};
use porter_core::{Broker, BrokerConfig};
use tokio::sync::mpsc;

mod queue_support;

use queue_support::*;

const QUEUES: usize = 12;
const MESSAGES: usize = 150;
const BODY: usize = 1024;
const BUDGET: usize = 64 << 10;

#[tokio::test]
async fn backlogs_past_the_budget_stay_in_the_log_and_are_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        queue_cache_bytes_max: BUDGET,
        ..BrokerConfig::default()
    })
    .unwrap();
    let vhost = broker.vhost("/").unwrap();
    let body_of = |q: usize, i: usize| format!("{q:02}-{i:04}-{}", "x".repeat(BODY - 8));
    for q in 0..QUEUES {
        let name = format!("q{q}");
        vhost
            .declare_queue(durable(&name, &[]), false, 1)
            .await
            .unwrap();
        for i in 0..MESSAGES {
            publish(&vhost, "", message(&name, &body_of(q, i), false)).await;
        }
        let (used, max) = broker.queue_cache_bytes();
        assert!(used <= max, "cache {used} over its budget {max}");
    }
    // 1.8 MB of backlog, of which at most the budget is in memory.
    let (used, _) = broker.queue_cache_bytes();
    assert!(used <= BUDGET && used > 0, "{used}");

    for q in 0..QUEUES {
        let (sink, mut events) = mpsc::channel(CONSUMER_BUFFER_MAX);
        let queue = vhost.queue(&format!("q{q}"), 1).unwrap();
        queue
            .consume(ConsumeRequest {
                consumer_tag: "c".into(),
                prefetch: 0,
                no_ack: true,
                exclusive: false,
                owner: 1,
                sink,
            })
            .unwrap();
        for i in 0..MESSAGES {
            let delivery = next(&mut events).await;
            assert_eq!(body(&delivery), body_of(q, i), "queue q{q}, message {i}");
        }
        assert!(broker.queue_cache_bytes().0 <= BUDGET);
    }
    // Everything delivered: nothing is held for these queues any more.
    assert_eq!(broker.queue_cache_bytes().0, 0);
}

#[tokio::test]
async fn a_deleted_or_purged_queue_gives_its_cache_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let vhost = broker.vhost("/").unwrap();
    for name in ["purged", "deleted"] {
        vhost
            .declare_queue(durable(name, &[]), false, 1)
            .await
            .unwrap();
        for i in 0..20 {
            publish(&vhost, "", message(name, &format!("m{i}"), true)).await;
        }
    }
    assert!(broker.queue_cache_bytes().0 > 0);
    vhost.queue("purged", 1).unwrap().purge().unwrap();
    vhost
        .delete_queue("deleted", false, false, 1)
        .await
        .unwrap();
    assert_eq!(broker.queue_cache_bytes().0, 0);
}
