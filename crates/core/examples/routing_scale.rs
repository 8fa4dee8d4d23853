//! Metadata at scale (issue 14): declares `Q` queues (default 10,000) and binds each `B` times
//! (default 10: 100,000 bindings) through the broker's metadata path (check, journal, apply,
//! routing snapshot), over four direct and four topic exchanges, then routes on a table of the
//! same shape and deletes every queue (each removal takes its bindings with it).
//!
//! `cargo run --release -p porter-core --example routing_scale [Q] [B]`. Prints the time of each
//! phase and per operation. Queues are transient, so the journal skips its fdatasync and the
//! figures are the metadata work, not the disk's. The data directory is a temporary one under
//! `/dev/shm` when it exists.

use std::time::Instant;

use porter_core::queue::QueueDefinition;
use porter_core::routing::{Binding, Destination, Exchange, ExchangeKind, Headers, RoutingTable};
use porter_core::{Broker, BrokerConfig};

const DIRECT: usize = 4;
const TOPIC: usize = 4;

fn transient(name: String) -> QueueDefinition {
    QueueDefinition {
        name,
        id: Default::default(),
        durable: false,
        exclusive_owner: None,
        auto_delete: false,
        arguments: Default::default(),
    }
}

fn exchanges() -> Vec<Exchange> {
    let mut all = Vec::new();
    for i in 0..DIRECT {
        all.push(Exchange {
            durable: false,
            ..Exchange::new(format!("d{i}"), ExchangeKind::Direct)
        });
    }
    for i in 0..TOPIC {
        all.push(Exchange {
            durable: false,
            ..Exchange::new(format!("t{i}"), ExchangeKind::Topic)
        });
    }
    all
}

/// Queue `q`'s `j`-th binding: alternately to a direct exchange (a key of its own) and to a
/// topic exchange (a user pattern of its own, or a shared room pattern).
fn binding(q: usize, j: usize) -> Binding {
    let destination = Destination::Queue(format!("q{q}"));
    if j.is_multiple_of(2) {
        Binding::new(
            format!("d{}", (q + j) % DIRECT),
            destination,
            format!("k.{q}.{j}"),
        )
    } else if j % 4 == 1 {
        Binding::new(
            format!("t{}", (q + j) % TOPIC),
            destination,
            format!("user.{q}.{j}.*"),
        )
    } else {
        Binding::new(
            format!("t{}", (q + j) % TOPIC),
            destination,
            format!("room.{}.#", (q + j) % 500),
        )
    }
}

/// Resident set size of this process, from /proc.
fn rss_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    (pages * 4096) >> 20
}

fn per_op(elapsed: std::time::Duration, n: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / n.max(1) as f64
}

async fn through_broker(dir: &std::path::Path, queues: usize, per_queue: usize) {
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap();
    let vhost = broker.vhost("/").unwrap();
    for exchange in exchanges() {
        vhost.declare_exchange(exchange, false).await.unwrap();
    }
    let start = Instant::now();
    for q in 0..queues {
        vhost
            .declare_queue(transient(format!("q{q}")), false, 1)
            .await
            .unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "broker: declared {queues} queues in {elapsed:.2?} ({:.1} us each)",
        per_op(elapsed, queues)
    );
    let start = Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    for j in 0..per_queue {
        for q in 0..queues {
            let one = Instant::now();
            vhost.bind(binding(q, j), 1).await.unwrap();
            slowest = slowest.max(one.elapsed());
        }
    }
    let n = queues * per_queue;
    let elapsed = start.elapsed();
    println!(
        "broker: {n} bindings in {elapsed:.2?} ({:.1} us each, slowest {slowest:.2?}); RSS {} MiB",
        per_op(elapsed, n),
        rss_mib()
    );
    let start = Instant::now();
    for q in 0..queues {
        vhost
            .delete_queue(&format!("q{q}"), false, false, 1)
            .await
            .unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "broker: deleted {queues} queues with their bindings in {elapsed:.2?} ({:.1} us each)",
        per_op(elapsed, queues)
    );
    broker.shutdown().await.unwrap();
}

fn routing(queues: usize, per_queue: usize) {
    let mut table = RoutingTable::new();
    for exchange in exchanges() {
        table.declare_exchange(exchange).unwrap();
    }
    for q in 0..queues {
        table.add_queue(&format!("q{q}")).unwrap();
    }
    let start = Instant::now();
    for j in 0..per_queue {
        for q in 0..queues {
            table.bind(binding(q, j)).unwrap();
        }
    }
    let n = queues * per_queue;
    println!(
        "table: {n} bindings in {:.2?} ({:.2} us each)",
        start.elapsed(),
        per_op(start.elapsed(), n)
    );
    let headers = Headers::new();
    let rounds = 20_000;
    let mut routed = 0;
    let start = Instant::now();
    for i in 0..rounds {
        let q = i * 7919 % queues;
        let j = 2 * (i % per_queue.div_ceil(2));
        let b = binding(q, j);
        routed += table
            .route(&b.source, &b.routing_key, &headers)
            .unwrap()
            .queues
            .len();
    }
    println!(
        "table: direct route {:.2} us each ({routed} deliveries for {rounds} publishes)",
        per_op(start.elapsed(), rounds)
    );
    let mut routed = 0;
    let start = Instant::now();
    for i in 0..rounds {
        let q = i * 7919 % queues;
        let key = if i % 2 == 0 {
            format!("user.{q}.1.x")
        } else {
            format!("room.{}.a.b", i % 500)
        };
        routed += table
            .route(&format!("t{}", i % TOPIC), &key, &headers)
            .unwrap()
            .queues
            .len();
    }
    println!(
        "table: topic route {:.2} us each ({routed} deliveries for {rounds} publishes)",
        per_op(start.elapsed(), rounds)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let queues: usize = args.get(1).map_or(10_000, |n| n.parse().unwrap());
    let per_queue: usize = args.get(2).map_or(10, |n| n.parse().unwrap());
    let root = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".to_string()
    } else {
        std::env::temp_dir().to_string_lossy().into_owned()
    };
    let dir = tempfile::tempdir_in(root).unwrap();
    through_broker(dir.path(), queues, per_queue).await;
    routing(queues, per_queue);
}
