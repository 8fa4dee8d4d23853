//! Publishing: `basic.publish` starts content on its channel; once the header and bodies are in,
//! the whole message becomes a core publish; `mandatory` misses come back as `basic.return`; in
//! confirm mode each publish's outcome goes to the channel's `Confirmer`; in a transaction the
//! publish waits for `tx.commit`.

use amq_protocol::protocol::basic::{self, AMQPProperties};
use bytes::Bytes;
use porter_core::message::Message;
use porter_core::vhost::DurableWait;

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
    out: &mut Out,
) -> Result<(), AmqpError> {
    let message = message_of(&publish, &properties, body, s)?;
    on_publish(ch, s, publish, message, out).await
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
    let durable = publish_now(ch.id, s, &publish, message, out).await;
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
