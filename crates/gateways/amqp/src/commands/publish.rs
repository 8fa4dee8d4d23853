//! Publishing: `basic.publish` starts content on its channel; once the header and bodies are in,
//! the whole message joins the burst's [`Batch`]. The batch goes to the core's publish pipeline
//! in one call ([`VirtualHost::publish_batch`](porter_core::VirtualHost::publish_batch): one
//! append per destination queue) before any other frame is handled and at the end of the burst,
//! so every later command sees the publishes before it. Then, per message in order:
//! `mandatory` misses come back as `basic.return`, and in confirm mode the outcome goes to the
//! channel's `Confirmer` (confirms stay per message). In a transaction the publish waits for
//! `tx.commit`, and direct replies go straight to their consumer.
//!
//! One difference from publishing one by one: when a message of the batch is refused on its
//! own (an unknown exchange: 404), its channel closes, but the channel's later messages of the
//! same batch were already appended.

use amq_protocol::protocol::basic::{self, AMQPProperties};
use bytes::Bytes;
use std::collections::HashMap;

use porter_core::message::Message;
use porter_core::publish::PUBLISH_BATCH_MAX;
use porter_core::vhost::{DurableWait, Publish, PublishOutcome};
use porter_core::CoreError;

use crate::channel::{Channel, TxOp};
use crate::confirmer::Pending;
use crate::convert::properties_from_amqp;
use crate::error::{AmqpError, INTERNAL_ERROR, NOT_IMPLEMENTED, PRECONDITION_FAILED};
use crate::out::Out;
use crate::reply_to;
use crate::session::Session;

/// `basic.publish`: its content header and bodies follow.
pub fn start(ch: &mut Channel, publish: basic::Publish) {
    ch.start_content(publish);
}

/// A publish whose content is complete.
pub async fn on_content(
    ch: &mut Channel,
    s: &Session,
    publish: basic::Publish,
    properties: AMQPProperties,
    body: Bytes,
    batch: &mut Batch,
    out: &mut Out,
) -> Result<(), AmqpError> {
    s.authorize_publish(publish.exchange.as_str(), publish.routing_key.as_str())
        .map_err(|e| s.error(&e).on(60, 40))?;
    let message = message_of(&publish, &properties, body, s)?;
    on_publish(ch, s, publish, message, batch, out).await
}

/// The message a whole publish carries, checked as RabbitMQ checks it.
fn message_of(
    publish: &basic::Publish,
    properties: &AMQPProperties,
    body: Bytes,
    s: &Session,
) -> Result<Message, AmqpError> {
    let properties = properties_from_amqp(properties);
    if let Some(user_id) = &properties.user_id {
        if *user_id != s.user {
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                format!(
                    "user_id property set to '{user_id}' but authenticated user was '{}'",
                    s.user
                ),
            )
            .on(60, 40));
        }
    }
    Ok(Message {
        exchange: publish.exchange.as_str().to_string(),
        routing_key: publish.routing_key.as_str().to_string(),
        properties,
        body,
    })
}

/// A whole publish: into the transaction if one is open, else published now.
async fn on_publish(
    ch: &mut Channel,
    s: &Session,
    publish: basic::Publish,
    mut message: Message,
    batch: &mut Batch,
    out: &mut Out,
) -> Result<(), AmqpError> {
    if publish.immediate {
        return Err(AmqpError::connection(NOT_IMPLEMENTED, "immediate=true").on(60, 40));
    }
    if message.properties.reply_to.as_deref() == Some(reply_to::PSEUDO_QUEUE) {
        // A request expecting a direct reply: name this channel's reply consumer.
        let Some((_, name)) = &ch.direct_reply else {
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                "fast reply consumer does not exist",
            )
            .on(60, 40));
        };
        message.properties.reply_to = Some(name.clone());
    }
    if let Some(tx) = ch.tx.as_mut() {
        if tx.len() >= s.config.tx_publishes_max {
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                format!(
                    "transaction holds more than {} operations",
                    s.config.tx_publishes_max
                ),
            ));
        }
        tx.push(TxOp::Publish(Box::new((publish, message))));
        return Ok(());
    }
    if reply_to::is_reply_name(publish.exchange.as_str(), publish.routing_key.as_str()) {
        // Boxed: direct replies are rare, and inline this future would be most of every
        // connection task's size, idle or not (issue 14).
        let durable = Box::pin(publish_now(ch.id, s, &publish, message, out)).await;
        return confirm(ch, s, durable);
    }
    batch.push(ch.id, &publish, message);
    Ok(())
}

/// What a publish's outcome means for its channel: in confirm mode its confirm, else nothing
/// (or the error).
fn confirm(
    ch: &mut Channel,
    s: &Session,
    durable: Result<Published, AmqpError>,
) -> Result<(), AmqpError> {
    let Some(confirmer) = ch.confirm.as_mut() else {
        // Without confirms an overflow refusal is silent, as in RabbitMQ.
        return durable.map(drop);
    };
    match durable {
        Ok(Published::Durable(wait)) => confirmer.push(s, Pending::Wait(wait)),
        Ok(Published::Rejected) => confirmer.push(s, Pending::Nack),
        Err(e) if e.code == INTERNAL_ERROR => {
            // The store failed (disk full, I/O error): a nack, the channel stays open.
            tracing::warn!(error = %e.text, "publish failed: nack");
            confirmer.push(s, Pending::Nack);
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// What became of a publish that was not an error.
pub enum Published {
    /// Resolves when the message is durable (at once if nothing needs syncing).
    Durable(DurableWait),
    /// An `x-overflow = reject-publish(-dlx)` queue refused it.
    Rejected,
}

/// Publishes one message on `channel` (a direct reply goes straight to its consumer).
pub async fn publish_now(
    channel: u16,
    s: &Session,
    publish: &basic::Publish,
    message: Message,
    out: &mut Out,
) -> Result<Published, AmqpError> {
    if reply_to::is_reply_name(publish.exchange.as_str(), publish.routing_key.as_str()) {
        let returned = publish.mandatory.then(|| message.clone());
        if !s.replies.deliver(publish.routing_key.as_str(), message) {
            if let Some(message) = returned {
                out.basic_return(channel, &message);
            }
        }
        return Ok(Published::Durable(DurableWait::default()));
    }
    let returned = publish.mandatory.then(|| message.clone());
    let outcome = s
        .vhost
        .publish(publish.exchange.as_str(), message)
        .await
        .map_err(|e| s.error(&e).on(60, 40))?;
    if !outcome.routed {
        if let Some(message) = returned {
            out.basic_return(channel, &message);
        }
    }
    if outcome.rejected {
        return Ok(Published::Rejected);
    }
    Ok(Published::Durable(outcome.durable))
}

/// Whole publishes of this burst, not yet handed to the core, in the order they completed.
#[derive(Default)]
pub struct Batch {
    publishes: Vec<Publish>,
    /// Per publish: its channel, and for `mandatory` the message to return if unroutable.
    entries: Vec<(u16, Option<Message>)>,
    bytes: u64,
    /// How many publishes the previous batch held: the next one reserves that many at once.
    last_len: usize,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.publishes.is_empty()
    }

    /// The batch cannot take more: hand it to the core first.
    pub fn is_full(&self) -> bool {
        self.publishes.len() >= PUBLISH_BATCH_MAX
    }

    /// Body bytes held (charged to the connection like content being assembled).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn push(&mut self, channel: u16, publish: &basic::Publish, message: Message) {
        debug_assert!(!self.is_full(), "the batch is flushed when full");
        if self.publishes.capacity() == 0 {
            self.publishes.reserve(self.last_len);
            self.entries.reserve(self.last_len);
        }
        self.bytes += message.body.len() as u64;
        self.entries
            .push((channel, publish.mandatory.then(|| message.clone())));
        self.publishes.push(Publish {
            exchange: publish.exchange.as_str().to_string(),
            message,
        });
    }
}

/// Hands the batch to the core in one call, then answers each message in order: `basic.return`
/// for a mandatory miss, its confirm, or its error — a channel error closes that channel
/// (`channel.close` in `out`); a connection error is returned.
pub async fn flush(
    batch: &mut Batch,
    channels: &mut HashMap<u16, Box<Channel>>,
    s: &Session,
    out: &mut Out,
) -> Result<(), AmqpError> {
    if batch.is_empty() {
        return Ok(());
    }
    // The next batch starts at this one's size (reserved at its first publish, so an idle
    // connection holds no batch memory): growing from empty again would copy the vectors
    // (hundreds of bytes per publish) log2(n) times per burst.
    batch.last_len = batch.publishes.len();
    let publishes = std::mem::take(&mut batch.publishes);
    let entries = std::mem::take(&mut batch.entries);
    batch.bytes = 0;
    let results: Vec<Result<PublishOutcome, CoreError>> =
        match s.vhost.publish_batch(publishes).await {
            Ok(results) => results,
            // The append failed (storage): every message of the batch shares the failure.
            Err(e) => {
                let failed = s.error(&e).on(60, 40);
                return answer_each(entries, |_| Err(failed.clone()), channels, s, out);
            }
        };
    let mut results = results.into_iter();
    answer_each(
        entries,
        |_| {
            results
                .next()
                .expect("one result per publish")
                .map_err(|e| s.error(&e).on(60, 40))
        },
        channels,
        s,
        out,
    )
}

fn answer_each(
    entries: Vec<(u16, Option<Message>)>,
    mut result_of: impl FnMut(usize) -> Result<PublishOutcome, AmqpError>,
    channels: &mut HashMap<u16, Box<Channel>>,
    s: &Session,
    out: &mut Out,
) -> Result<(), AmqpError> {
    for (i, (channel, returned)) in entries.into_iter().enumerate() {
        let result = result_of(i);
        let Some(ch) = channels.get_mut(&channel).filter(|ch| !ch.closing) else {
            // Closed by an earlier message of the batch (or by the client meanwhile).
            continue;
        };
        let published = result.map(|outcome| {
            if !outcome.routed {
                if let Some(message) = &returned {
                    out.basic_return(channel, message);
                }
            }
            if outcome.rejected {
                Published::Rejected
            } else {
                Published::Durable(outcome.durable)
            }
        });
        match confirm(ch, s, published) {
            Ok(()) => {}
            Err(e) if e.connection => return Err(e),
            Err(e) => ch.fail(&s.replies, &e, out),
        }
    }
    Ok(())
}
