//! Publishing: a whole `basic.publish` becomes a core publish; `mandatory` misses come back as
//! `basic.return`; in confirm mode each publish gets a sequence number and a [`Confirmer`] task
//! answers them in order once durable, coalescing runs of acks with `multiple`; in a
//! transaction, publishes and acks wait for `tx.commit`.

use std::sync::atomic::Ordering;

use amq_protocol::protocol::basic::{self, AMQPProperties};
use bytes::Bytes;
use porter_core::message::Message;
use porter_core::vhost::DurableWait;
use tokio::sync::mpsc;

use crate::channel::{settle, Channel};
use crate::convert::properties_from_amqp;
use crate::error::{AmqpError, NOT_IMPLEMENTED, PRECONDITION_FAILED};
use crate::reply_to;
use crate::session::{ConfirmResult, Session};

/// What a confirmer answers for one publish.
enum Pending {
    Nack,
    Wait(DurableWait),
}

/// A channel in confirm mode: the next sequence number and the feed of its confirmer task.
pub struct Confirmer {
    next_seq: u64,
    feed: mpsc::UnboundedSender<(u64, Pending)>,
}

impl Confirmer {
    pub fn start(channel: u16, session: &Session) -> Confirmer {
        let (feed, mut items) = mpsc::unbounded_channel::<(u64, Pending)>();
        let results = session.confirms.clone();
        let pending = session.confirms_pending.clone();
        tokio::spawn(async move {
            // The end of a run of acks not yet sent: (first, last).
            let mut run: Option<(u64, u64)> = None;
            let flush = |run: &mut Option<(u64, u64)>| {
                if let Some((first, last)) = run.take() {
                    let _ = results.send(ConfirmResult {
                        channel,
                        delivery_tag: last,
                        multiple: last > first,
                        ack: true,
                    });
                }
            };
            while let Some((seq, item)) = items.recv().await {
                let ack = match item {
                    Pending::Nack => false,
                    Pending::Wait(wait) => match wait.wait().await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "publish not made durable: nack");
                            false
                        }
                    },
                };
                pending.fetch_sub(1, Ordering::Relaxed);
                if ack {
                    run = Some(run.map_or((seq, seq), |(first, _)| (first, seq)));
                } else {
                    flush(&mut run);
                    let _ = results.send(ConfirmResult {
                        channel,
                        delivery_tag: seq,
                        multiple: false,
                        ack: false,
                    });
                }
                if items.is_empty() {
                    flush(&mut run);
                }
            }
            flush(&mut run);
        });
        Confirmer { next_seq: 1, feed }
    }

    fn push(&mut self, session: &Session, item: Pending) {
        let seq = self.next_seq;
        self.next_seq += 1;
        session.confirms_pending.fetch_add(1, Ordering::Relaxed);
        if self.feed.send((seq, item)).is_err() {
            session.confirms_pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The channel closed: the task ends once it has answered what it holds.
    pub fn close(self) {}
}

/// Work a transaction holds until `tx.commit`.
pub enum TxOp {
    Publish(Box<(basic::Publish, Message)>),
    Ack(u64, bool),
    Nack(u64, bool, bool),
}

/// The message a whole publish carries, checked as RabbitMQ checks it.
pub fn message_of(
    publish: &basic::Publish,
    properties: &AMQPProperties,
    body: Bytes,
    session: &Session,
) -> Result<Message, AmqpError> {
    let properties = properties_from_amqp(properties);
    if let Some(user_id) = &properties.user_id {
        if *user_id != session.user {
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                format!(
                    "user_id property set to '{user_id}' but authenticated user was '{}'",
                    session.user
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
pub async fn on_publish(
    channel: &mut Channel,
    session: &mut Session,
    publish: basic::Publish,
    message: Message,
) -> Result<(), AmqpError> {
    if publish.immediate {
        return Err(AmqpError::connection(NOT_IMPLEMENTED, "immediate=true").on(60, 40));
    }
    let mut message = message;
    if message.properties.reply_to.as_deref() == Some(reply_to::PSEUDO_QUEUE) {
        // A request expecting a direct reply: name this channel's reply consumer.
        let Some((_, name)) = &channel.direct_reply else {
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                "fast reply consumer does not exist",
            )
            .on(60, 40));
        };
        message.properties.reply_to = Some(name.clone());
    }
    if let Some(tx) = channel.tx.as_mut() {
        if tx.len() >= session.config.tx_publishes_max {
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                format!(
                    "transaction holds more than {} operations",
                    session.config.tx_publishes_max
                ),
            ));
        }
        tx.push(TxOp::Publish(Box::new((publish, message))));
        return Ok(());
    }
    let durable = publish_now(channel.id, session, &publish, message).await;
    let Some(confirmer) = channel.confirm.as_mut() else {
        // Without confirms an overflow refusal is silent, as in RabbitMQ.
        return durable.map(drop);
    };
    match durable {
        Ok(Published::Durable(wait)) => confirmer.push(session, Pending::Wait(wait)),
        Ok(Published::Rejected) => confirmer.push(session, Pending::Nack),
        Err(e) if e.code == crate::error::INTERNAL_ERROR => {
            // The store failed (disk full, I/O error): a nack, the channel stays open.
            tracing::warn!(error = %e.text, "publish failed: nack");
            confirmer.push(session, Pending::Nack);
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// What became of a publish that was not an error.
enum Published {
    /// Resolves when the message is durable (at once if nothing needs syncing).
    Durable(DurableWait),
    /// An `x-overflow = reject-publish(-dlx)` queue refused it.
    Rejected,
}

/// Publishes one message.
async fn publish_now(
    channel: u16,
    session: &mut Session,
    publish: &basic::Publish,
    message: Message,
) -> Result<Published, AmqpError> {
    if reply_to::is_reply_name(publish.exchange.as_str(), publish.routing_key.as_str()) {
        let returned = publish.mandatory.then(|| message.clone());
        if !session
            .replies
            .deliver(publish.routing_key.as_str(), message)
        {
            if let Some(message) = returned {
                session.basic_return(channel, &message);
            }
        }
        return Ok(Published::Durable(DurableWait::default()));
    }
    let vhost = session.vhost.name().to_string();
    let returned = publish.mandatory.then(|| message.clone());
    let outcome = session
        .vhost
        .publish(publish.exchange.as_str(), message)
        .await
        .map_err(|e| AmqpError::from_core(&e, &vhost).on(60, 40))?;
    if !outcome.routed {
        if let Some(message) = returned {
            session.basic_return(channel, &message);
        }
    }
    if outcome.rejected {
        return Ok(Published::Rejected);
    }
    Ok(Published::Durable(outcome.durable))
}

/// `tx.commit`: the held publishes (each made durable) and settlements, in order.
pub async fn commit(channel: &mut Channel, session: &mut Session) -> Result<(), AmqpError> {
    let ops = channel.tx.replace(Vec::new()).unwrap_or_default();
    for op in ops {
        match op {
            TxOp::Publish(held) => {
                let (publish, message) = *held;
                match publish_now(channel.id, session, &publish, message).await {
                    Ok(Published::Durable(wait)) => wait
                        .wait()
                        .await
                        .map_err(|e| AmqpError::from_core(&e, session.vhost.name()).on(90, 20))?,
                    // Overflow refusals drop the message, as RabbitMQ does in a transaction.
                    Ok(Published::Rejected) => {}
                    Err(e) => return Err(e),
                }
            }
            TxOp::Ack(tag, multiple) => {
                let entries = channel.take_tags(tag, multiple)?;
                settle(entries, |q, tags| q.ack(tags))
                    .map_err(|e| AmqpError::from_core(&e, session.vhost.name()))?;
            }
            TxOp::Nack(tag, multiple, requeue) => {
                let entries = channel.take_tags(tag, multiple)?;
                settle(entries, |q, tags| q.nack(tags, requeue))
                    .map_err(|e| AmqpError::from_core(&e, session.vhost.name()))?;
            }
        }
    }
    Ok(())
}

pub fn confirms_backlogged(session: &Session) -> bool {
    session.confirms_pending() >= session.config.confirms_pending_max
}
