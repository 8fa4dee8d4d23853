//! [`Channel`]: one AMQP channel's state — content assembly (publish method, header, bodies),
//! consumers, per-channel delivery tags and what they stand for in the queues, confirm and
//! transaction modes. State only: the methods that change it are the commands in
//! [`crate::commands`], which sit above it; what it sends (deliveries, `get-ok`) it appends to
//! an [`Out`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::AMQPClass;
use bytes::{Bytes, BytesMut};
use porter_core::message::Message;
use porter_core::queue::api::QueueDelivery;
use porter_core::queue::Queue;

use crate::confirmer::Confirmer;
use crate::error::{AmqpError, FRAME_ERROR, NOT_ALLOWED, PRECONDITION_FAILED, UNEXPECTED_FRAME};
use crate::out::Out;
use crate::reply_to::ReplyRegistry;

/// Work a transaction holds until `tx.commit`.
pub enum TxOp {
    Publish(Box<(basic::Publish, Message)>),
    Ack(u64, bool),
    Nack(u64, bool, bool),
}

pub struct ConsumerEntry {
    pub queue: Arc<Queue>,
    /// The tag the queue knows (see `session::internal_tag`).
    pub internal: String,
    pub no_ack: bool,
    /// The channel's prefetch when it started (what the queue enforces for it).
    pub prefetch: u16,
    pub exclusive: bool,
}

pub struct Unacked {
    pub queue: Arc<Queue>,
    pub queue_tag: u64,
}

/// A publish whose content frames are still arriving.
struct Content {
    publish: basic::Publish,
    header: Option<(u64, AMQPProperties)>,
    body: BytesMut,
}

pub struct Channel {
    pub id: u16,
    /// The server sent `channel.close` and waits for `close-ok`; other frames are dropped.
    pub closing: bool,
    /// `basic.qos` prefetch-count for consumers created after it.
    pub prefetch: u16,
    pub consumers: HashMap<String, ConsumerEntry>,
    next_delivery_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
    pub confirm: Option<Confirmer>,
    pub tx: Option<Vec<TxOp>>,
    content: Option<Content>,
    /// The queue last declared on this channel: an empty queue name in later methods means it.
    pub last_queue: Option<String>,
    /// A direct reply-to consumer: (client tag, the name handed out for `reply_to`).
    pub direct_reply: Option<(String, String)>,
    /// Counted against the user's `max-channels` while the channel is open.
    pub user_slot: Option<porter_core::vhost_limits::CountedConnection>,
    /// Acks taken off `unacked` but not yet applied: the connection applies them together at
    /// the end of a batch of frames (one ack-file write per queue instead of one per ack).
    pending_acks: Vec<Unacked>,
}

impl Channel {
    /// This channel as the management API lists it.
    pub fn describe(&self, vhost: &str) -> porter_gateway_kit::ChannelInfo {
        let mut consumers: Vec<porter_gateway_kit::ConsumerInfo> = self
            .consumers
            .iter()
            .map(|(tag, c)| porter_gateway_kit::ConsumerInfo {
                tag: tag.clone(),
                queue: c.queue.name().to_string(),
                ack_required: !c.no_ack,
                prefetch: c.prefetch,
                exclusive: c.exclusive,
            })
            .collect();
        consumers.sort_by(|a, b| a.tag.cmp(&b.tag));
        porter_gateway_kit::ChannelInfo {
            number: self.id,
            vhost: vhost.to_string(),
            prefetch: self.prefetch,
            unacked: self.unacked.len(),
            confirm: self.confirm.is_some(),
            transactional: self.tx.is_some(),
            consumers,
        }
    }

    pub fn new(id: u16) -> Self {
        Channel {
            id,
            closing: false,
            prefetch: 0,
            consumers: HashMap::new(),
            next_delivery_tag: 1,
            unacked: BTreeMap::new(),
            confirm: None,
            tx: None,
            content: None,
            last_queue: None,
            direct_reply: None,
            user_slot: None,
            pending_acks: Vec::new(),
        }
    }

    /// Body bytes of the publish being assembled (held in memory until it is whole).
    pub fn content_bytes(&self) -> u64 {
        self.content.as_ref().map_or(0, |c| c.body.len() as u64)
    }

    /// Whether a method would interrupt a publish's content frames (505 UNEXPECTED_FRAME).
    pub fn expects_content(&self) -> bool {
        self.content.is_some()
    }

    /// A queue name from a method: empty means the last declared on this channel.
    pub fn queue_name(&self, name: &str) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        self.last_queue.clone().ok_or_else(|| {
            AmqpError::connection(NOT_ALLOWED, "no previously declared queue on this channel")
        })
    }

    /// `basic.publish` arrived: its header and bodies follow.
    pub fn start_content(&mut self, publish: basic::Publish) {
        self.content = Some(Content {
            publish,
            header: None,
            body: BytesMut::new(),
        });
    }

    /// The content header of the publish in progress. A body over `message_bytes_max` is a
    /// channel error, as RabbitMQ's `max_message_size`; the body frames that follow are then
    /// dropped with the closing channel.
    pub fn on_header(
        &mut self,
        header: AMQPContentHeader,
        message_bytes_max: u64,
    ) -> Result<Option<(basic::Publish, AMQPProperties, Bytes)>, AmqpError> {
        let Some(content) = self.content.as_mut() else {
            return Err(AmqpError::connection(
                UNEXPECTED_FRAME,
                format!("content header on channel {} without a publish", self.id),
            ));
        };
        if content.header.is_some() || header.class_id != 60 {
            return Err(AmqpError::connection(
                UNEXPECTED_FRAME,
                format!("unexpected content header on channel {}", self.id),
            ));
        }
        if header.body_size > message_bytes_max {
            self.content = None;
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                format!(
                    "message size {} is larger than configured max size {message_bytes_max}",
                    header.body_size
                ),
            )
            .on(60, 40));
        }
        content.body.reserve(header.body_size as usize);
        content.header = Some((header.body_size, header.properties));
        Ok(self.complete_content())
    }

    /// A body frame of the publish in progress; returns the publish when it is whole.
    pub fn on_body(
        &mut self,
        bytes: &[u8],
    ) -> Result<Option<(basic::Publish, AMQPProperties, Bytes)>, AmqpError> {
        let id = self.id;
        let unexpected = || {
            AmqpError::connection(
                UNEXPECTED_FRAME,
                format!("content body on channel {id} without a publish and header"),
            )
        };
        let content = self.content.as_mut().ok_or_else(unexpected)?;
        let Some((size, _)) = content.header else {
            return Err(unexpected());
        };
        if content.body.len() as u64 + bytes.len() as u64 > size {
            return Err(AmqpError::connection(
                FRAME_ERROR,
                format!("content body on channel {id} longer than its header's {size} bytes"),
            ));
        }
        content.body.extend_from_slice(bytes);
        Ok(self.complete_content())
    }

    fn complete_content(&mut self) -> Option<(basic::Publish, AMQPProperties, Bytes)> {
        let done = matches!(&self.content, Some(Content { header: Some((size, _)), body, .. }) if body.len() as u64 == *size);
        if !done {
            return None;
        }
        let content = self.content.take()?;
        let (_, properties) = content.header?;
        Some((content.publish, properties, content.body.freeze()))
    }

    /// Whether `client_tag` is a consumer here (a queue's or the direct reply-to one).
    pub fn has_consumer(&self, client_tag: &str) -> bool {
        self.consumers.contains_key(client_tag)
            || self
                .direct_reply
                .as_ref()
                .is_some_and(|(tag, _)| tag == client_tag)
    }

    /// A consumer's message: give it this channel's next delivery tag and write it out.
    pub fn deliver(&mut self, out: &mut Out, client_tag: &str, d: QueueDelivery) {
        let consumer = self.consumers.get(client_tag);
        if consumer.is_none() && !self.has_consumer(client_tag) {
            // Cancelled meanwhile: the queue requeued it with the consumer, unless no_ack.
            return;
        }
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        // Direct replies are no-ack, like the pseudo-queue's consumer.
        if let Some(consumer) = consumer.filter(|c| !c.no_ack) {
            self.unacked.insert(
                tag,
                Unacked {
                    queue: consumer.queue.clone(),
                    queue_tag: d.queue_tag,
                },
            );
        }
        let method = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: client_tag.into(),
            delivery_tag: tag,
            redelivered: d.redelivered,
            exchange: d.message.exchange.as_str().into(),
            routing_key: d.message.routing_key.as_str().into(),
        }));
        out.content(self.id, method, &d.message);
    }

    /// A `basic.get` result: its delivery tag, tracked unless `no_ack`.
    pub fn get_ok(&mut self, out: &mut Out, queue: Arc<Queue>, d: QueueDelivery, no_ack: bool) {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        if !no_ack {
            self.unacked.insert(
                tag,
                Unacked {
                    queue,
                    queue_tag: d.queue_tag,
                },
            );
        }
        let method = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: tag,
            redelivered: d.redelivered,
            exchange: d.message.exchange.as_str().into(),
            routing_key: d.message.routing_key.as_str().into(),
            message_count: d.remaining.min(u64::from(u32::MAX)) as u32,
        }));
        out.content(self.id, method, &d.message);
    }

    /// The outstanding tags `delivery_tag` (with `multiple`: and every lower one; 0 with
    /// `multiple`: all) designates, removed from the channel. 406 for an unknown tag.
    pub fn take_tags(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
    ) -> Result<Vec<Unacked>, AmqpError> {
        if multiple {
            let upto = if delivery_tag == 0 {
                u64::MAX
            } else {
                delivery_tag
            };
            if delivery_tag != 0 && !self.unacked.contains_key(&delivery_tag) {
                return Err(unknown_tag(delivery_tag));
            }
            let keep = self.unacked.split_off(&upto.saturating_add(1));
            let taken = std::mem::replace(&mut self.unacked, keep);
            return Ok(taken.into_values().collect());
        }
        self.unacked
            .remove(&delivery_tag)
            .map(|u| vec![u])
            .ok_or_else(|| unknown_tag(delivery_tag))
    }

    /// Gathers acked deliveries for [`Self::flush_acks`].
    pub fn defer_acks(&mut self, entries: Vec<Unacked>) {
        self.pending_acks.extend(entries);
    }

    /// Applies the gathered acks, one call per queue. The channel already checked every tag, so
    /// a failure here is the queue's (its store): logged, the messages stay unacked there.
    pub fn flush_acks(&mut self) {
        if self.pending_acks.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.pending_acks);
        if let Err(e) = settle(acks, |queue, tags| queue.ack(tags)) {
            tracing::warn!(channel = self.id, error = %e, "applying acks failed");
        }
    }

    /// A channel error: the channel ends (see [`Self::cleanup`]) and waits for the client's
    /// `close-ok` after the `channel.close` carrying the error.
    pub fn fail(&mut self, replies: &ReplyRegistry, error: &AmqpError, out: &mut Out) {
        tracing::info!(channel = self.id, code = error.code, text = %error.text, "amqp: channel error");
        self.cleanup(replies);
        self.closing = true;
        out.channel_close(self.id, error);
    }

    /// Ends the channel: consumers cancelled, and every message it holds unacknowledged (from
    /// consumers, cancelled ones included, and `basic.get`) requeued, as RabbitMQ does.
    pub fn cleanup(&mut self, replies: &ReplyRegistry) {
        self.flush_acks();
        for (_, consumer) in self.consumers.drain() {
            consumer.queue.cancel(&consumer.internal, false);
        }
        let held: Vec<Unacked> = std::mem::take(&mut self.unacked).into_values().collect();
        let _ = settle(held, |queue, tags| queue.nack(tags, true));
        self.content = None;
        self.tx = None;
        if let Some(confirmer) = self.confirm.take() {
            confirmer.close();
        }
        if let Some((_, name)) = self.direct_reply.take() {
            replies.unregister(&name);
        }
    }
}

fn unknown_tag(tag: u64) -> AmqpError {
    AmqpError::channel(PRECONDITION_FAILED, format!("unknown delivery tag {tag}"))
}

/// Applies `op` to each queue's share of `entries`, one call per queue.
pub fn settle(
    entries: Vec<Unacked>,
    op: impl Fn(&Queue, &[u64]) -> Result<(), porter_core::CoreError>,
) -> Result<(), porter_core::CoreError> {
    let mut groups: Vec<(Arc<Queue>, Vec<u64>)> = Vec::new();
    for entry in entries {
        match groups
            .iter_mut()
            .find(|(q, _)| Arc::ptr_eq(q, &entry.queue))
        {
            Some((_, tags)) => tags.push(entry.queue_tag),
            None => groups.push((entry.queue, vec![entry.queue_tag])),
        }
    }
    let mut result = Ok(());
    for (queue, tags) in groups {
        if let Err(e) = op(&queue, &tags) {
            result = Err(e);
        }
    }
    result
}
