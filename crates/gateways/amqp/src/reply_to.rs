//! RabbitMQ's direct reply-to: an RPC client consumes from the pseudo-queue
//! `amq.rabbitmq.reply-to` (no-ack) and publishes requests with that `reply_to`; the server
//! rewrites it to a per-consumer name, and a reply published to the default exchange with that
//! name as routing key goes straight to the consumer, with no queue declared or stored.
//! Replies are not persisted and not confirmed beyond being handed over, as in RabbitMQ.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use porter_core::message::Message;
use porter_core::queue::api::{ConsumerEvent, ConsumerSink, QueueDelivery};

/// The pseudo-queue's name, and the prefix of the names it hands out.
pub const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";

pub use crate::limits::REPLY_CONSUMERS_MAX;

/// The reply consumers of one broker, by handed-out name.
#[derive(Default)]
pub struct ReplyRegistry {
    consumers: Mutex<HashMap<String, (ConsumerSink, String)>>,
}

impl ReplyRegistry {
    /// Registers a reply consumer (its connection's sink and internal consumer tag) and returns
    /// the name requests carry in `reply_to`; `None` past [`REPLY_CONSUMERS_MAX`].
    pub fn register(&self, sink: ConsumerSink, internal_tag: String) -> Option<String> {
        let mut consumers = self.consumers.lock();
        if consumers.len() >= REPLY_CONSUMERS_MAX {
            return None;
        }
        let name = format!("{PSEUDO_QUEUE}.{}", crate::names::generated_suffix());
        consumers.insert(name.clone(), (sink, internal_tag));
        Some(name)
    }

    pub fn unregister(&self, name: &str) {
        self.consumers.lock().remove(name);
    }

    /// Delivers a reply published to the default exchange with routing key `name`. `false`
    /// when no such consumer exists (unroutable) or its connection cannot take more.
    pub fn deliver(&self, name: &str, message: Message) -> bool {
        let Some((sink, tag)) = self.consumers.lock().get(name).cloned() else {
            return false;
        };
        sink.try_send(ConsumerEvent::Deliver(QueueDelivery {
            queue: Arc::from(PSEUDO_QUEUE),
            consumer_tag: Some(Arc::from(tag.as_str())),
            queue_tag: 0,
            redelivered: false,
            offset: 0,
            enqueued_ms: 0,
            message: Arc::new(message),
            remaining: 0,
        }))
        .is_ok()
    }
}

/// Whether a default-exchange routing key names a reply consumer.
pub fn is_reply_name(exchange: &str, routing_key: &str) -> bool {
    exchange.is_empty()
        && routing_key.len() > PSEUDO_QUEUE.len() + 1
        && routing_key.starts_with(PSEUDO_QUEUE)
        && routing_key.as_bytes()[PSEUDO_QUEUE.len()] == b'.'
}
