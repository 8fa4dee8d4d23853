//! Broker CPU per published message fanned out to N durable queues (no network): one publisher
//! through a fanout exchange, confirms awaited in the background, then every queue drained with
//! `basic.get`. Prints wall time and process CPU (user + system) per published message.
//!
//! `cargo run --release -p porter-core --example queue_fanout [queues] [messages]`
//! (default 10 queues, 20,000 messages of 100 bytes, persistent). Data under `/dev/shm` when it
//! exists, so the disk's fsync time does not hide the CPU cost.

use std::time::Instant;

use bytes::Bytes;
use porter_core::message::{Message, Properties};
use porter_core::queue::QueueDefinition;
use porter_core::routing::{Binding, Destination, Exchange, ExchangeKind};
use porter_core::{Broker, BrokerConfig};

/// User + system CPU seconds of this process so far, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let queues: usize = args.get(1).map_or(10, |n| n.parse().unwrap());
    let messages: usize = args.get(2).map_or(20_000, |n| n.parse().unwrap());
    let root = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::tempdir_in(root).unwrap();
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap();
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_exchange(Exchange::new("fan", ExchangeKind::Fanout), false)
        .await
        .unwrap();
    for i in 0..queues {
        let name = format!("fan-{i}");
        vhost
            .declare_queue(
                QueueDefinition {
                    name: name.clone(),
                    id: Default::default(),
                    durable: true,
                    exclusive_owner: None,
                    auto_delete: false,
                    arguments: Default::default(),
                },
                false,
                1,
            )
            .await
            .unwrap();
        vhost
            .bind(Binding::new("fan", Destination::Queue(name), ""), 1)
            .await
            .unwrap();
    }
    let body = Bytes::from(vec![b'x'; 100]);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let confirmer = tokio::spawn(async move {
        while let Some(wait) = rx.recv().await {
            porter_core::vhost::DurableWait::wait(wait).await.unwrap();
        }
    });
    let (start, cpu) = (Instant::now(), cpu_seconds());
    for _ in 0..messages {
        let message = Message {
            exchange: String::new(),
            routing_key: String::new(),
            properties: Properties {
                delivery_mode: Some(2),
                content_type: Some("application/octet-stream".into()),
                message_id: Some("a-message-id".into()),
                ..Properties::default()
            },
            body: body.clone(),
        };
        let outcome = vhost.publish("fan", message).await.unwrap();
        tx.send(outcome.durable).await.unwrap();
    }
    drop(tx);
    confirmer.await.unwrap();
    let (wall, used) = (start.elapsed(), cpu_seconds() - cpu);
    println!(
        "publish+confirm, fan-out to {queues}: {messages} messages in {wall:.2?}, \
         {:.1} us wall and {:.1} us CPU per message",
        wall.as_micros() as f64 / messages as f64,
        used * 1e6 / messages as f64
    );
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let mut got = 0;
    for i in 0..queues {
        let queue = vhost.queue(&format!("fan-{i}"), 1).unwrap();
        while let Some(d) = queue.get(true).await.unwrap() {
            std::hint::black_box(&d.message);
            got += 1;
        }
    }
    assert_eq!(got, queues * messages);
    println!(
        "get(no_ack) of {got} deliveries: {:.2?}, {:.2} us CPU each",
        start.elapsed(),
        (cpu_seconds() - cpu) * 1e6 / got as f64
    );
    broker.shutdown().await.unwrap();
}
