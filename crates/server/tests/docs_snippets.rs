//! The Rust snippets of docs/ as they are printed there, compiled and run against the real binary.
//!
//! A Rust snippet needs a surrounding program, so `tests/python/test_docs.py` requires every
//! ```` ```rust ```` block of the docs to appear, line for line, in a test or example under
//! `crates/`; this file is their home. Edit a snippet here and in the doc together.

mod common;

use std::time::{Duration, Instant};

use common::*;

// docs/amqp.md, "Everyday patterns", Rust (lapin): from here ...
async fn publish_persistent(url: &str) -> Result<(), lapin::Error> {
    let conn = lapin::Connection::connect(url, Default::default()).await?;
    let ch = conn.create_channel().await?;
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("jobs".into(), durable, Default::default())
        .await?;
    ch.confirm_select(Default::default()).await?;
    let confirmation = ch
        .basic_publish(
            "".into(),
            "jobs".into(),
            Default::default(),
            b"hello",
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    assert!(confirmation.is_ack()); // on disk now
    conn.close(200, "bye".into()).await
}
// ... to here.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_md_lapin_snippet_publishes_a_confirmed_persistent_message() {
    let server = Server::start(&[]);
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", server.amqp_port);
    wait_for_amqp(&url).await;

    publish_persistent(&url)
        .await
        .expect("the documented snippet runs");

    // What the reader expects: the message is in the durable queue "jobs", persistent.
    let conn = lapin::Connection::connect(&url, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let message = ch
        .basic_get(
            "jobs".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the published message is in the queue");
    assert_eq!(message.delivery.data, b"hello");
    assert_eq!(message.delivery.properties.delivery_mode(), &Some(2));
}

async fn wait_for_amqp(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match lapin::Connection::connect(url, Default::default()).await {
            Ok(connection) => {
                let _ = connection.close(200, "ready".into()).await;
                return;
            }
            Err(e) if Instant::now() >= deadline => panic!("AMQP listener at {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
