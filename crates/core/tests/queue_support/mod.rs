//! What the queue tests share (`queues.rs`, `queue_scale.rs`): a broker on a directory, queue
//! and message builders, and reading deliveries with a deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use porter_core::message::{Message, Properties};
use porter_core::queue::api::{ConsumerEvent, QueueDelivery};
use porter_core::queue::QueueDefinition;
use porter_core::routing::{FieldTable, HeaderValue};
use porter_core::{Broker, BrokerConfig, VirtualHost};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn open(dir: &std::path::Path) -> Arc<Broker> {
    Broker::open(BrokerConfig {
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap()
}

pub fn durable(name: &str, arguments: &[(&str, HeaderValue)]) -> QueueDefinition {
    QueueDefinition {
        name: name.into(),
        id: Default::default(),
        durable: true,
        exclusive_owner: None,
        auto_delete: false,
        arguments: arguments
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<FieldTable>(),
    }
}

pub fn message(routing_key: &str, body: &str, persistent: bool) -> Message {
    Message {
        exchange: String::new(),
        routing_key: routing_key.into(),
        properties: Properties {
            delivery_mode: Some(if persistent { 2 } else { 1 }),
            ..Properties::default()
        },
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

pub async fn publish(vhost: &VirtualHost, exchange: &str, m: Message) {
    let outcome = vhost.publish(exchange, m).await.unwrap();
    assert!(outcome.routed);
    outcome.durable.wait().await.unwrap();
}

pub async fn next(events: &mut mpsc::Receiver<ConsumerEvent>) -> QueueDelivery {
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(ConsumerEvent::Deliver(d))) => d,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

pub fn body(d: &QueueDelivery) -> String {
    String::from_utf8(d.message.body.to_vec()).unwrap()
}
