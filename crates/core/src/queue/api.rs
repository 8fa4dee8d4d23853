//! The types a gateway exchanges with a running queue: what it hands in (a consumer's sink) and
//! what comes out (deliveries, cancellations, declare and publish results).

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::message::Message;

/// Identifies the connection that owns exclusive queues and consumers. Gateways take one from
/// [`crate::vhost::next_owner_id`] per connection.
pub type OwnerId = u64;

/// Deliveries buffered per consumer between its queue and its connection. Prefetch bounds
/// acked consumers below this; a `no_ack` consumer that falls this far behind makes its queue
/// wait (backpressure) rather than buffer without bound.
pub const CONSUMER_BUFFER_MAX: usize = 1_024;

/// One message for a consumer (or a `basic.get`).
#[derive(Clone, Debug)]
pub struct QueueDelivery {
    pub queue: Arc<str>,
    /// `None` for `basic.get`.
    pub consumer_tag: Option<Arc<str>>,
    /// The queue's tag: pass it back to [`Queue::ack`](super::Queue::ack) and friends. A gateway
    /// maps it to its own per-channel tags.
    pub queue_tag: u64,
    pub redelivered: bool,
    /// Where the message sits in its queue's log (lane 0 for a queue without priorities):
    /// stable across redeliveries and restarts, so a gateway can derive a protocol identifier
    /// from it (MQTT re-sends an unacknowledged message with its original packet id).
    pub offset: porter_storage::Offset,
    /// When the message was enqueued (ms since the epoch): what TTL counts from.
    pub enqueued_ms: i64,
    pub message: Arc<Message>,
    /// Ready messages left after this one (`basic.get-ok` message-count).
    pub remaining: u64,
}

/// What a queue sends to a consumer.
#[derive(Clone, Debug)]
pub enum ConsumerEvent {
    Deliver(QueueDelivery),
    /// The broker ended the consumer (its queue was deleted): AMQP's server-sent
    /// `basic.cancel`.
    Cancelled {
        consumer_tag: Arc<str>,
    },
}

pub type ConsumerSink = mpsc::Sender<ConsumerEvent>;

/// A `basic.consume` request.
#[derive(Clone, Debug)]
pub struct ConsumeRequest {
    pub consumer_tag: String,
    /// 0 = unlimited.
    pub prefetch: u16,
    pub no_ack: bool,
    /// No other consumer may use the queue while this one does (403 ACCESS_REFUSED otherwise).
    pub exclusive: bool,
    pub owner: OwnerId,
    pub sink: ConsumerSink,
}

/// `queue.declare-ok`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredQueue {
    pub name: String,
    /// Ready messages.
    pub message_count: u64,
    pub consumer_count: u32,
}
