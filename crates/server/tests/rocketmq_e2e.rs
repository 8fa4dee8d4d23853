//! The official RocketMQ 5 Rust client (crate `rocketmq` 5.0.0, apache/rocketmq-clients) against
//! the real `porter` binary's gRPC gateway, doing what its users do:
//!
//! - `a_tagged_message_reaches_a_consumer_filtering_by_tag`: a producer sends with tags, keys and
//!   properties; a SimpleConsumer filtering `paid || refunded` receives and acks exactly those,
//!   with everything the producer set, then finds nothing more.
//! - `a_receive_returns_a_batch_and_acked_messages_never_come_back`: 40 messages, batches of up
//!   to 32, each once.
//! - `an_unacked_message_comes_back_with_its_attempt_raised`: no ack, the invisible duration
//!   passes, the same message again with delivery attempt 2.
//! - `fifo_groups_are_delivered_in_order_one_at_a_time`: interleaved message groups, one message
//!   per group in flight, each group in send order.
//! - `concurrent_sends_from_many_tasks_each_arrive_once`: one producer shared by 64 tasks (what
//!   the benchmark does), every message received once.
//!
//! This client version has no changeInvisibleDuration and no PushConsumer; the Python and Node
//! tests cover those.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::{MessageBuilder, MessageView};
use rocketmq::{Producer, SimpleConsumer};

/// How long a test keeps receiving before it gives up on a message it expects.
const WAIT: Duration = Duration::from_secs(20);
/// The long poll of a receive. The client uses it as the RPC's deadline too, so an empty
/// receive ends after this (with MESSAGE_NOT_FOUND or a deadline error, see `receive`).
const LONG_POLL: Duration = Duration::from_secs(2);
const BATCH: i32 = 32;

struct RocketmqServer {
    server: Server,
    endpoint: String,
}

fn start() -> RocketmqServer {
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let server = Server::start(&["--rocketmq-listen", &endpoint]);
    // The harness waits for the Kafka and AMQP listeners; RocketMQ's binds next to them.
    let addr: SocketAddr = endpoint.parse().unwrap();
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "RocketMQ listener {endpoint} never accepted; stderr:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    RocketmqServer { server, endpoint }
}

impl RocketmqServer {
    /// The server survived the test and stops cleanly (SIGTERM, exit 0).
    fn stop(&mut self) {
        self.server.assert_alive();
        self.server.terminate();
    }
}

fn client_option(endpoint: &str) -> ClientOption {
    let mut option = ClientOption::default();
    option.set_access_url(endpoint);
    option.set_enable_tls(false);
    option.set_timeout(Duration::from_secs(10));
    option.set_long_polling_timeout(LONG_POLL);
    option
}

async fn producer(endpoint: &str, topics: &[&str]) -> Producer {
    let mut option = ProducerOption::default();
    option.set_topics(topics.to_vec());
    let mut producer = Producer::new(option, client_option(endpoint)).expect("producer options");
    producer.start().await.expect("producer start");
    producer
}

async fn consumer(endpoint: &str, group: &str, topics: &[&str]) -> SimpleConsumer {
    let mut option = SimpleConsumerOption::default();
    option.set_consumer_group(group);
    option.set_topics(topics.to_vec());
    let mut consumer =
        SimpleConsumer::new(option, client_option(endpoint)).expect("consumer options");
    consumer.start().await.expect("consumer start");
    consumer
}

fn tag(expression: &str) -> FilterExpression {
    FilterExpression::new(FilterType::Tag, expression)
}

/// Whether `e` is the client's own deadline ending a receive. This client gives a receive a
/// deadline equal to its long-polling timeout; Porter ends an empty long poll before the
/// request's `grpc-timeout` (as RocketMQ's proxy does, with a reserve), so this should not happen
/// (`an_empty_long_poll_answers_message_not_found` checks it); the helpers still treat it as
/// "nothing came" so a loaded machine's slow answer does not fail unrelated tests.
fn is_client_deadline(e: &rocketmq::error::ClientError) -> bool {
    let text = format!("{e:?}");
    text.contains("Timeout expired") || text.contains("DeadlineExceeded")
}

/// One receive; the client's deadline ending an empty long poll counts as empty.
async fn receive(
    consumer: &SimpleConsumer,
    topic: &str,
    filter: &FilterExpression,
    invisible: Duration,
) -> Vec<MessageView> {
    match consumer.receive_with(topic, filter, BATCH, invisible).await {
        Ok(messages) => messages,
        Err(e) if is_client_deadline(&e) => Vec::new(),
        Err(e) => panic!("receive from {topic}: {e:?}"),
    }
}

/// Receives until `want` messages came (acking each if `ack`) or `WAIT` passed.
async fn receive_all(
    consumer: &SimpleConsumer,
    topic: &str,
    filter: &FilterExpression,
    want: usize,
    invisible: Duration,
    ack: bool,
) -> Vec<MessageView> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < want && Instant::now() < deadline {
        for m in receive(consumer, topic, filter, invisible).await {
            if ack {
                consumer.ack(&m).await.expect("ack");
            }
            got.push(m);
        }
    }
    got
}

fn body(m: &MessageView) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_message_reaches_a_consumer_filtering_by_tag() {
    let mut rocketmq = start();
    let p = producer(&rocketmq.endpoint, &["orders"]).await;
    let mut ids = Vec::new();
    for (text, t, key) in [
        ("order 1 paid", "paid", "order-1"),
        ("order 2 created", "created", "order-2"),
        ("order 3 refunded", "refunded", "order-3"),
    ] {
        let mut builder = MessageBuilder::builder()
            .set_topic("orders")
            .set_body(text.as_bytes().to_vec())
            .set_tag(t)
            .set_keys(vec![key]);
        if t == "paid" {
            builder = builder.set_properties(HashMap::from([("region", "eu")]));
        }
        let receipt = p.send(builder.build().unwrap()).await.expect("send");
        ids.push(receipt.message_id().to_string());
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "{ids:?}");

    let c = consumer(&rocketmq.endpoint, "billing", &["orders"]).await;
    let filter = tag("paid || refunded");
    let got = receive_all(&c, "orders", &filter, 2, Duration::from_secs(30), true).await;
    let mut bodies: Vec<_> = got.iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, ["order 1 paid", "order 3 refunded"]);
    let paid = got.iter().find(|m| m.tag() == Some("paid")).unwrap();
    assert_eq!(paid.topic(), "orders");
    assert_eq!(paid.keys(), ["order-1"]);
    assert_eq!(
        paid.properties().get("region").map(String::as_str),
        Some("eu")
    );
    assert_eq!(paid.message_id(), ids[0]);
    assert_eq!(paid.delivery_attempt(), 1);
    // Both wanted messages are acked and the third one's tag is filtered out.
    let more = receive(&c, "orders", &filter, Duration::from_secs(30)).await;
    assert!(
        more.is_empty(),
        "{:?}",
        more.iter().map(body).collect::<Vec<_>>()
    );
    p.shutdown().await.expect("producer shutdown");
    c.shutdown().await.expect("consumer shutdown");
    rocketmq.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_long_poll_answers_message_not_found() {
    let mut rocketmq = start();
    let c = consumer(&rocketmq.endpoint, "idle", &["quiet"]).await;
    let started = Instant::now();
    let answer = c
        .receive_with("quiet", &tag("*"), BATCH, Duration::from_secs(30))
        .await;
    assert!(
        matches!(&answer, Ok(messages) if messages.is_empty()),
        "an empty receive is MESSAGE_NOT_FOUND (Ok and empty for this client): {answer:?}"
    );
    assert!(
        started.elapsed() >= LONG_POLL / 2,
        "it long-polled ({:?})",
        started.elapsed()
    );
    c.shutdown().await.expect("consumer shutdown");
    rocketmq.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_returns_a_batch_and_acked_messages_never_come_back() {
    let mut rocketmq = start();
    let p = producer(&rocketmq.endpoint, &["batch"]).await;
    for i in 0..40 {
        let m = MessageBuilder::builder()
            .set_topic("batch")
            .set_body(format!("m{i}").into_bytes())
            .build()
            .unwrap();
        p.send(m).await.expect("send");
    }
    let c = consumer(&rocketmq.endpoint, "g", &["batch"]).await;
    let all = tag("*");
    let first = receive(&c, "batch", &all, Duration::from_secs(30)).await;
    assert!(
        first.len() > 1 && first.len() <= BATCH as usize,
        "one receive brings several messages: {}",
        first.len()
    );
    let rest = receive_all(
        &c,
        "batch",
        &all,
        40 - first.len(),
        Duration::from_secs(30),
        true,
    )
    .await;
    for m in &first {
        c.ack(m).await.expect("ack");
    }
    let mut bodies: Vec<_> = first.iter().chain(&rest).map(body).collect();
    bodies.sort();
    let mut want: Vec<_> = (0..40).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(bodies, want, "each message exactly once");
    assert!(receive(&c, "batch", &all, Duration::from_secs(30))
        .await
        .is_empty());
    p.shutdown().await.expect("producer shutdown");
    c.shutdown().await.expect("consumer shutdown");
    rocketmq.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacked_message_comes_back_with_its_attempt_raised() {
    let mut rocketmq = start();
    let p = producer(&rocketmq.endpoint, &["work"]).await;
    let m = MessageBuilder::builder()
        .set_topic("work")
        .set_body(b"job".to_vec())
        .build()
        .unwrap();
    let id = p.send(m).await.expect("send").message_id().to_string();
    let c = consumer(&rocketmq.endpoint, "workers", &["work"]).await;
    let all = tag("*");
    let first = receive_all(&c, "work", &all, 1, Duration::from_secs(3), false).await;
    assert_eq!(
        first
            .iter()
            .map(|m| (body(m), m.delivery_attempt()))
            .collect::<Vec<_>>(),
        [("job".to_string(), 1)]
    );
    // Not acked: after its 3 s the same message comes again, attempt 2.
    let again = receive_all(&c, "work", &all, 1, Duration::from_secs(30), false).await;
    assert_eq!(
        again
            .iter()
            .map(|m| (body(m), m.delivery_attempt(), m.message_id().to_string()))
            .collect::<Vec<_>>(),
        [("job".to_string(), 2, id)]
    );
    c.ack(&again[0]).await.expect("ack");
    assert!(receive(&c, "work", &all, Duration::from_secs(30))
        .await
        .is_empty());
    p.shutdown().await.expect("producer shutdown");
    c.shutdown().await.expect("consumer shutdown");
    rocketmq.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_are_delivered_in_order_one_at_a_time() {
    let mut rocketmq = start();
    let groups = ["alice", "bob", "carol"];
    let p = producer(&rocketmq.endpoint, &["fifo"]).await;
    for i in 0..5 {
        for g in groups {
            let m =
                MessageBuilder::fifo_message_builder("fifo", format!("{g}-{i}").into_bytes(), g)
                    .build()
                    .unwrap();
            p.send(m).await.expect("send");
        }
    }
    let c = consumer(&rocketmq.endpoint, "fifo-readers", &["fifo"]).await;
    let all = tag("*");
    let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while seen.values().map(Vec::len).sum::<usize>() < 15 && Instant::now() < deadline {
        let got = receive(&c, "fifo", &all, Duration::from_secs(30)).await;
        let mut per_group: HashMap<String, usize> = HashMap::new();
        for m in &got {
            let text = body(m);
            let (g, i) = text.split_once('-').unwrap();
            assert_eq!(m.message_group(), Some(g));
            *per_group.entry(g.to_string()).or_default() += 1;
            seen.entry(g.to_string())
                .or_default()
                .push(i.parse().unwrap());
        }
        assert!(
            per_group.values().all(|n| *n == 1),
            "one message per group at a time: {per_group:?}"
        );
        for m in &got {
            c.ack(m).await.expect("ack");
        }
    }
    let want: BTreeMap<String, Vec<u32>> = groups
        .iter()
        .map(|g| (g.to_string(), (0..5).collect()))
        .collect();
    assert_eq!(seen, want);
    p.shutdown().await.expect("producer shutdown");
    c.shutdown().await.expect("consumer shutdown");
    rocketmq.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_from_many_tasks_each_arrive_once() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 50;
    let mut rocketmq = start();
    let p = Arc::new(producer(&rocketmq.endpoint, &["load"]).await);
    let sends: Vec<_> = (0..TASKS)
        .map(|t| {
            let p = p.clone();
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let m = MessageBuilder::builder()
                        .set_topic("load")
                        .set_body(format!("{t}/{i}").into_bytes())
                        .build()
                        .unwrap();
                    p.send(m).await.expect("send");
                }
            })
        })
        .collect();
    for s in sends {
        s.await.expect("send task");
    }
    let c = consumer(&rocketmq.endpoint, "loaders", &["load"]).await;
    let got = receive_all(
        &c,
        "load",
        &tag("*"),
        TASKS * PER_TASK,
        Duration::from_secs(30),
        true,
    )
    .await;
    let bodies: HashSet<String> = got.iter().map(body).collect();
    assert_eq!(got.len(), TASKS * PER_TASK, "no duplicates, none missing");
    assert_eq!(bodies.len(), TASKS * PER_TASK);
    Arc::into_inner(p)
        .expect("send tasks are done")
        .shutdown()
        .await
        .expect("producer shutdown");
    c.shutdown().await.expect("consumer shutdown");
    rocketmq.stop();
}
