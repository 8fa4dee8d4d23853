//! `basic.consume / cancel` and what consumers receive: a queue's deliveries get this channel's
//! delivery tags; a queue deleted under its consumers cancels them (`basic.cancel` to clients
//! with `consumer_cancel_notify`). Consuming `amq.rabbitmq.reply-to` registers a direct
//! reply-to consumer instead of a queue consumer.

use std::collections::HashMap;

use amq_protocol::protocol::{basic, AMQPClass};
use porter_core::queue::api::{ConsumeRequest, ConsumerEvent};
use porter_core::users::access::{Access, Resource};

use crate::channel::{Channel, ConsumerEntry};
use crate::error::{AmqpError, NOT_ALLOWED, PRECONDITION_FAILED};
use crate::names;
use crate::out::Out;
use crate::reply_to;
use crate::session::{internal_tag, split_internal_tag, Session};

/// `basic.consume`; `ids` name it in errors.
pub fn consume(
    ch: &mut Channel,
    s: &Session,
    c: basic::Consume,
    ids: (u16, u16),
    out: &mut Out,
) -> Result<(), AmqpError> {
    if c.queue.as_str() == reply_to::PSEUDO_QUEUE {
        return consume_replies(ch, s, c, ids, out);
    }
    let id = ch.id;
    let core = |e| s.error(&e).on(ids.0, ids.1);
    let name = ch.queue_name(c.queue.as_str())?;
    s.authorize(Access::Read, Resource::Queue(&name))
        .map_err(core)?;
    let queue = s.vhost.queue(&name, s.owner).map_err(core)?;
    let tag = if c.consumer_tag.as_str().is_empty() {
        names::consumer_tag()
    } else {
        c.consumer_tag.as_str().to_string()
    };
    if ch.consumers.contains_key(&tag) {
        return Err(AmqpError::connection(
            NOT_ALLOWED,
            format!("attempt to reuse consumer tag '{tag}'"),
        )
        .on(ids.0, ids.1));
    }
    let internal = internal_tag(s.owner, id, &tag);
    queue
        .consume(ConsumeRequest {
            consumer_tag: internal.clone(),
            prefetch: ch.prefetch,
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            owner: s.owner,
            sink: s.deliveries.clone(),
        })
        .map_err(core)?;
    ch.consumers.insert(
        tag.clone(),
        ConsumerEntry {
            queue,
            internal,
            no_ack: c.no_ack,
            prefetch: ch.prefetch,
            exclusive: c.exclusive,
        },
    );
    if !c.nowait {
        out.method(
            id,
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.as_str().into(),
            })),
        );
    }
    Ok(())
}

/// `basic.consume` of `amq.rabbitmq.reply-to`: no queue, a name handed out for `reply_to`.
fn consume_replies(
    ch: &mut Channel,
    s: &Session,
    c: basic::Consume,
    ids: (u16, u16),
    out: &mut Out,
) -> Result<(), AmqpError> {
    if !c.no_ack {
        return Err(
            AmqpError::channel(PRECONDITION_FAILED, "reply consumer cannot acknowledge")
                .on(ids.0, ids.1),
        );
    }
    if ch.direct_reply.is_some() {
        return Err(
            AmqpError::channel(PRECONDITION_FAILED, "reply consumer already set").on(ids.0, ids.1),
        );
    }
    let tag = if c.consumer_tag.as_str().is_empty() {
        names::consumer_tag()
    } else {
        c.consumer_tag.as_str().to_string()
    };
    let name = s
        .replies
        .register(s.deliveries.clone(), internal_tag(s.owner, ch.id, &tag))
        .ok_or_else(|| {
            AmqpError::channel(PRECONDITION_FAILED, "too many reply consumers").on(ids.0, ids.1)
        })?;
    ch.direct_reply = Some((tag.clone(), name));
    if !c.nowait {
        out.method(
            ch.id,
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.as_str().into(),
            })),
        );
    }
    Ok(())
}

/// `basic.cancel` from the client (a queue's consumer or the direct reply-to one).
pub fn cancel(ch: &mut Channel, s: &Session, c: basic::Cancel, out: &mut Out) {
    if ch
        .direct_reply
        .as_ref()
        .is_some_and(|(tag, _)| tag == c.consumer_tag.as_str())
    {
        if let Some((_, name)) = ch.direct_reply.take() {
            s.replies.unregister(&name);
        }
    }
    if let Some(consumer) = ch.consumers.remove(c.consumer_tag.as_str()) {
        consumer.queue.cancel(&consumer.internal, false);
    }
    if !c.nowait {
        out.method(
            ch.id,
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: c.consumer_tag,
            })),
        );
    }
}

/// A queue's event for a consumer of this connection, routed by the channel its internal tag
/// names.
pub fn on_consumer_event(
    channels: &mut HashMap<u16, Box<Channel>>,
    s: &Session,
    event: ConsumerEvent,
    out: &mut Out,
) {
    match event {
        ConsumerEvent::Deliver(delivery) => {
            let tag = delivery.consumer_tag.clone().unwrap_or_else(|| "".into());
            let Some((channel_id, client_tag)) = split_internal_tag(&tag) else {
                return;
            };
            match channels.get_mut(&channel_id) {
                Some(ch) if !ch.closing && ch.has_consumer(client_tag) => {
                    ch.deliver(out, client_tag, delivery)
                }
                // The consumer or channel is gone: give an acked-mode message back.
                _ => {
                    if let Ok(queue) = s.vhost.queue(&delivery.queue, s.owner) {
                        let _ = queue.nack(&[delivery.queue_tag], true);
                    }
                }
            }
        }
        ConsumerEvent::Cancelled { consumer_tag } => {
            let Some((channel_id, client_tag)) = split_internal_tag(&consumer_tag) else {
                return;
            };
            let Some(ch) = channels.get_mut(&channel_id) else {
                return;
            };
            if ch.consumers.remove(client_tag).is_some() && s.capabilities.consumer_cancel_notify {
                out.method(
                    channel_id,
                    AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                        consumer_tag: client_tag.into(),
                        nowait: true,
                    })),
                );
            }
        }
    }
}
