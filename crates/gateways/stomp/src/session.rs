//! [`Session`]: one STOMP connection's state, without I/O: its subscriptions and their
//! unacknowledged messages, open transactions, temp queues, and the frames waiting to be
//! written. [`crate::commands`] changes it per client frame; the connection loop feeds it
//! deliveries and writes [`Session::out`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use porter_core::queue::api::{ConsumerEvent, OwnerId, QueueDelivery};
use porter_core::queue::Queue;
use porter_core::users::access::{Access, Resource};
use porter_core::{Broker, VirtualHost};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::StompConfig;
use crate::convert::add_headers;
use crate::destination::Destination;
use crate::frame::{Command, Frame};
use crate::kafka::KafkaRecord;

/// What every connection of a listener shares.
pub struct Context {
    pub broker: Arc<Broker>,
    pub config: Arc<StompConfig>,
    /// Checks logins when the transport's listener has no authenticator of its own (the
    /// HTTP listener serving STOMP over WebSocket).
    pub authenticator: Option<Arc<dyn porter_gateway_kit::auth::Authenticator>>,
}

/// The negotiated protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V1_0,
    V1_1,
    V1_2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// The highest version both sides speak; no `accept-version` means 1.0.
    pub fn negotiate(accept: Option<&str>) -> Option<Version> {
        let Some(accept) = accept else {
            return Some(Version::V1_0);
        };
        accept
            .split(',')
            .filter_map(|v| match v.trim() {
                "1.0" => Some(Version::V1_0),
                "1.1" => Some(Version::V1_1),
                "1.2" => Some(Version::V1_2),
                _ => None,
            })
            .max()
    }

    /// 1.1 and 1.2 escape header values.
    pub fn escapes(self) -> bool {
        self >= Version::V1_1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    Auto,
    /// Cumulative: an ACK settles the message and every earlier one of the subscription.
    Client,
    ClientIndividual,
}

impl AckMode {
    pub fn parse(text: Option<&str>) -> Option<AckMode> {
        match text.unwrap_or("auto") {
            "auto" => Some(AckMode::Auto),
            "client" => Some(AckMode::Client),
            "client-individual" => Some(AckMode::ClientIndividual),
            _ => None,
        }
    }
}

/// Where a subscription's messages come from.
pub enum Source {
    Queue {
        queue: Arc<Queue>,
        consumer_tag: String,
    },
    Kafka {
        stop: CancellationToken,
        /// Credits of a `prefetch-count` on an acknowledging subscription.
        credit: Option<Arc<Semaphore>>,
    },
}

pub struct Subscription {
    pub id: Arc<str>,
    /// As the client named it.
    pub destination: String,
    /// The destination a MESSAGE names: the subscription's own, or (topics and exchanges)
    /// where the message was sent.
    pub name_by_message: bool,
    pub ack: AckMode,
    pub source: Source,
    /// Ack id → the queue's tag (0 for Kafka records), in delivery order.
    pub unacked: BTreeMap<u64, u64>,
}

impl Subscription {
    /// Stops the source. Queue: the consumer goes, its unacked messages are requeued (an
    /// auto-delete subscription queue goes with it).
    pub fn stop(&self) {
        match &self.source {
            Source::Queue {
                queue,
                consumer_tag,
            } => queue.cancel(consumer_tag, true),
            Source::Kafka { stop, .. } => stop.cancel(),
        }
    }
}

pub struct Session {
    pub ctx: Arc<Context>,
    pub vhost: VirtualHost,
    pub owner: OwnerId,
    pub version: Version,
    pub user: String,
    /// Whether SEND and SUBSCRIBE are checked against the user's permissions (the user is one
    /// of the broker's).
    pub permissions_checked: bool,
    pub subscriptions: HashMap<Arc<str>, Subscription>,
    /// Open transactions and the SEND / ACK / NACK frames they hold.
    pub transactions: HashMap<String, Vec<Frame>>,
    /// Bytes of the frames in `transactions` (≤ `transaction_bytes_max`).
    pub transaction_bytes: usize,
    /// Cancelled when the broker asks the connection to close: ends a SEND waiting out an
    /// alarm.
    pub closing: CancellationToken,
    /// `/temp-queue/<name>` → the exclusive queue behind it.
    pub temp_queues: HashMap<String, String>,
    /// Consumer tags are `<prefix><subscription id>`: unique per connection on a shared queue.
    pub tag_prefix: String,
    next_ack: u64,
    /// The sink every queue consumer of the connection shares, made on the first queue
    /// subscription; the connection loop takes the receiver.
    deliveries: Option<mpsc::Sender<ConsumerEvent>>,
    deliveries_receiver: Option<mpsc::Receiver<ConsumerEvent>>,
    /// Made on the first Kafka subscription (an idle connection holds no channel for it);
    /// the connection loop takes the receiver.
    kafka_feed: Option<mpsc::Sender<KafkaRecord>>,
    kafka_receiver: Option<mpsc::Receiver<KafkaRecord>>,
    /// Frames to write, in order.
    pub out: Vec<Frame>,
    /// DISCONNECT was handled: write `out`, then close.
    pub disconnecting: bool,
}

impl Session {
    /// The broker's permission check for this connection's user (see
    /// [`porter_core::users::access`]).
    pub fn authorize(
        &self,
        access: Access,
        resource: Resource<'_>,
    ) -> Result<(), porter_core::CoreError> {
        if !self.permissions_checked {
            return Ok(());
        }
        self.vhost.authorize(&self.user, access, resource)
    }

    /// A SEND's (`Write`) or a subscription's binding (`Read`) checks on an exchange: its
    /// permission, then `key` against the user's topic permission on it.
    pub fn authorize_routing(
        &self,
        access: Access,
        exchange: &str,
        key: &str,
    ) -> Result<(), porter_core::CoreError> {
        if !self.permissions_checked {
            return Ok(());
        }
        self.vhost
            .authorize_routing(&self.user, None, access, exchange, key)
    }

    pub fn new(
        ctx: Arc<Context>,
        vhost: VirtualHost,
        version: Version,
        user: String,
        closing: CancellationToken,
    ) -> Self {
        let owner = porter_core::vhost::next_owner_id();
        Session {
            ctx,
            vhost,
            owner,
            version,
            user,
            permissions_checked: false,
            subscriptions: HashMap::new(),
            transactions: HashMap::new(),
            transaction_bytes: 0,
            closing,
            temp_queues: HashMap::new(),
            tag_prefix: format!("stomp.{owner}."),
            next_ack: 0,
            deliveries: None,
            deliveries_receiver: None,
            kafka_feed: None,
            kafka_receiver: None,
            out: Vec::new(),
            disconnecting: false,
        }
    }

    /// The consumers' sink, made on first use.
    pub fn delivery_sink(&mut self) -> mpsc::Sender<ConsumerEvent> {
        if let Some(sink) = &self.deliveries {
            return sink.clone();
        }
        let (sink, receiver) = mpsc::channel(crate::limits::DELIVERY_FEED_MAX);
        self.deliveries = Some(sink.clone());
        self.deliveries_receiver = Some(receiver);
        sink
    }

    /// The delivery feed's receiving end, once, after it was made.
    pub fn take_delivery_receiver(&mut self) -> Option<mpsc::Receiver<ConsumerEvent>> {
        self.deliveries_receiver.take()
    }

    /// Where Kafka readers send records, made on first use.
    pub fn kafka_feed(&mut self) -> mpsc::Sender<KafkaRecord> {
        if let Some(feed) = &self.kafka_feed {
            return feed.clone();
        }
        let (feed, receiver) = mpsc::channel(crate::limits::KAFKA_FEED_MAX);
        self.kafka_feed = Some(feed.clone());
        self.kafka_receiver = Some(receiver);
        feed
    }

    /// The Kafka feed's receiving end, once, after it was made.
    pub fn take_kafka_receiver(&mut self) -> Option<mpsc::Receiver<KafkaRecord>> {
        self.kafka_receiver.take()
    }

    fn ack_id(&mut self) -> u64 {
        self.next_ack += 1;
        self.next_ack
    }

    /// A MESSAGE frame's common headers; records the ack id if the subscription acknowledges.
    fn message_frame(&mut self, sub_id: &str, destination: String, tag: u64) -> Option<Frame> {
        let ack_id = self.ack_id();
        let version = self.version;
        let sub = self.subscriptions.get_mut(sub_id)?;
        let mut frame = Frame::new(Command::Message)
            .with("subscription", sub_id)
            .with("destination", destination)
            .with("message-id", ack_id.to_string());
        if sub.ack != AckMode::Auto {
            sub.unacked.insert(ack_id, tag);
            if version == Version::V1_2 {
                frame.push("ack", ack_id.to_string());
            }
        }
        Some(frame)
    }

    /// A queue's event for one of this connection's consumers.
    pub fn on_consumer_event(&mut self, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Deliver(d) => self.deliver(d),
            ConsumerEvent::Cancelled { consumer_tag } => {
                if let Some(id) = consumer_tag.strip_prefix(self.tag_prefix.as_str()) {
                    if let Some(sub) = self.subscriptions.remove(id) {
                        tracing::info!(subscription = %sub.id, destination = %sub.destination, "stomp subscription ended: its queue was deleted");
                        self.out.push(cancelled(&sub));
                    }
                }
            }
        }
    }

    fn deliver(&mut self, d: QueueDelivery) {
        let Some(tag) = d.consumer_tag.as_deref() else {
            return;
        };
        let Some(id) = tag.strip_prefix(self.tag_prefix.as_str()) else {
            return;
        };
        // A delivery for a subscription already gone was requeued with it.
        let Some(sub) = self.subscriptions.get(id) else {
            return;
        };
        let destination = if sub.name_by_message {
            Destination::of_message(&d.message.exchange, &d.message.routing_key)
        } else {
            sub.destination.clone()
        };
        let id: Arc<str> = sub.id.clone();
        let Some(mut frame) = self.message_frame(&id, destination, d.queue_tag) else {
            return;
        };
        frame.push("redelivered", d.redelivered.to_string());
        add_headers(&mut frame, &d.message.properties);
        frame.body = d.message.body.clone();
        self.out.push(frame);
    }

    /// A record read from a Kafka partition for a subscription.
    pub fn on_kafka_record(&mut self, r: KafkaRecord) {
        let Some(sub) = self.subscriptions.get(&*r.subscription) else {
            return;
        };
        let destination = sub.destination.clone();
        let Some(mut frame) = self.message_frame(&r.subscription, destination, 0) else {
            return;
        };
        frame.push("x-stream-offset", r.record.offset.to_string());
        frame.push("x-partition", r.partition.to_string());
        if let Some(key) = &r.record.key {
            frame.push("x-key", String::from_utf8_lossy(key).into_owned());
        }
        frame.push("timestamp", r.record.timestamp.to_string());
        for (name, value) in &r.record.headers {
            let value = value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            frame.push(name.clone(), value);
        }
        frame.body = r.record.value.unwrap_or_default();
        self.out.push(frame);
    }

    /// The connection ends: consumers go (their unacked messages requeued), Kafka readers
    /// stop, exclusive queues (topic subscriptions, temp queues) are deleted.
    pub async fn close(&mut self) {
        for (_, sub) in self.subscriptions.drain() {
            sub.stop();
        }
        self.vhost.release_owner(self.owner).await;
    }
}

/// The ERROR frame RabbitMQ sends when the broker ends a subscription (its queue was deleted):
/// it names the subscription, and the connection stays open for the others.
fn cancelled(sub: &Subscription) -> Frame {
    let mut frame = Frame::new(Command::Error)
        .with("message", "Server cancelled subscription")
        .with("subscription", sub.id.to_string())
        .with("content-type", "text/plain");
    frame.body = bytes::Bytes::from(format!(
        "The server has canceled a subscription.\nNo more messages will be delivered for {}.\n",
        sub.destination
    ));
    frame
}
