//! Rough per-message cost of the queue publish path (no network): one publisher awaiting each
//! append, confirms awaited in the background. `cargo run --release -p porter-core --example
//! queue_publish`.

use std::time::Instant;

use bytes::Bytes;
use porter_core::message::{Message, Properties};
use porter_core::queue::QueueDefinition;
use porter_core::{Broker, BrokerConfig};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap();
    let vhost = broker.vhost("/").unwrap();
    vhost
        .declare_queue(
            QueueDefinition {
                name: "q".into(),
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
    let n = 200_000;
    let body = Bytes::from(vec![b'x'; 100]);
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let confirmer = tokio::spawn(async move {
        while let Some(wait) = rx.recv().await {
            porter_core::vhost::DurableWait::wait(wait).await.unwrap();
        }
    });
    for _ in 0..n {
        let outcome = vhost
            .publish(
                "",
                Message {
                    exchange: String::new(),
                    routing_key: "q".into(),
                    properties: Properties {
                        delivery_mode: Some(
                            std::env::var("MODE")
                                .map(|m| m.parse().unwrap())
                                .unwrap_or(2),
                        ),
                        ..Properties::default()
                    },
                    body: body.clone(),
                },
            )
            .await
            .unwrap();
        tx.send(outcome.durable).await.unwrap();
    }
    drop(tx);
    confirmer.await.unwrap();
    let elapsed = start.elapsed();
    println!(
        "{n} persistent publishes in {:.2?}: {:.0}/s, {:.2} us each",
        elapsed,
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_micros() as f64 / n as f64
    );
    let queue = vhost.queue("q", 1).unwrap();
    let start = Instant::now();
    let mut got = 0;
    while let Some(d) = queue.get(false).await.unwrap() {
        queue.ack(&[d.queue_tag]).unwrap();
        got += 1;
    }
    let elapsed = start.elapsed();
    println!(
        "{got} get+ack in {:.2?}: {:.0}/s",
        elapsed,
        got as f64 / elapsed.as_secs_f64()
    );
    broker.shutdown().await.unwrap();
}
