//! The channel methods, one arm per AMQP method: decode the arguments into core calls, reply
//! with the `-ok` (unless `nowait`). Connection-level methods live in `connection.rs`.

use amq_protocol::protocol::{access, basic, channel, confirm, exchange, queue, tx, AMQPClass};
use porter_core::queue::api::ConsumeRequest;
use porter_core::queue::QueueDefinition;
use porter_core::routing::{Binding, Destination, Exchange, ExchangeKind};
use porter_core::CoreError;

use crate::channel::{settle, Channel, ConsumerEntry};
use crate::convert::table_from_amqp;
use crate::error::{AmqpError, NOT_ALLOWED, NOT_IMPLEMENTED, PRECONDITION_FAILED};
use crate::publish::{self, Confirmer, TxOp};
use crate::reply_to;
use crate::session::{internal_tag, Session};

/// What the connection must do after a method.
pub enum After {
    Continue,
    /// The client closed the channel (close-ok sent): forget it.
    Closed,
}

/// Handles one method on an open channel. Errors carry the failing method's ids.
pub async fn dispatch(
    ch: &mut Channel,
    s: &mut Session,
    method: AMQPClass,
) -> Result<After, AmqpError> {
    let ids = (method.get_amqp_class_id(), method.get_amqp_method_id());
    let vhost = s.vhost.name().to_string();
    let core = |e: CoreError| AmqpError::from_core(&e, &vhost).on(ids.0, ids.1);
    let id = ch.id;
    if !matches!(method, AMQPClass::Basic(basic::AMQPMethod::Ack(_))) {
        // Acks gathered so far take effect before anything else this channel asks.
        ch.flush_acks();
    }
    match method {
        AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
            ch.cleanup(&s.replies);
            s.method(
                id,
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
            );
            return Ok(After::Closed);
        }
        AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => {
            // Porter does not pause deliveries on flow(false); it answers truthfully with the
            // state it keeps (active). RabbitMQ has deprecated client-initiated flow.
            let _ = flow;
            s.method(
                id,
                AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                    active: true,
                })),
            );
        }
        AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
            return Err(AmqpError::connection(
                crate::error::CHANNEL_ERROR,
                format!("channel {id} is already open"),
            )
            .on(20, 10));
        }
        AMQPClass::Access(access::AMQPMethod::Request(_)) => {
            s.method(
                id,
                AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
            );
        }
        AMQPClass::Exchange(m) => exchange_method(ch, s, m).await.map_err(core)?,
        AMQPClass::Queue(m) => queue_method(ch, s, m).await.map_err(core)?,
        AMQPClass::Basic(m) => basic_method(ch, s, m, ids).await?,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(select)) => {
            if ch.tx.is_some() {
                return Err(AmqpError::channel(
                    PRECONDITION_FAILED,
                    "cannot switch from tx to confirm mode",
                )
                .on(85, 10));
            }
            if ch.confirm.is_none() {
                ch.confirm = Some(Confirmer::start(id, s));
            }
            if !select.nowait {
                s.method(
                    id,
                    AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                );
            }
        }
        AMQPClass::Tx(m) => tx_method(ch, s, m).await?,
        other => {
            return Err(AmqpError::connection(
                crate::error::COMMAND_INVALID,
                format!("method {}.{} not valid on a channel", ids.0, ids.1),
            )
            .on(other.get_amqp_class_id(), other.get_amqp_method_id()));
        }
    }
    Ok(After::Continue)
}

async fn exchange_method(
    ch: &mut Channel,
    s: &mut Session,
    method: exchange::AMQPMethod,
) -> Result<(), CoreError> {
    let id = ch.id;
    let (reply, nowait) = match method {
        exchange::AMQPMethod::Declare(d) => {
            let kind = if d.passive {
                ExchangeKind::Direct
            } else {
                ExchangeKind::parse(d.kind.as_str())?
            };
            let declared = Exchange {
                name: d.exchange.as_str().to_string(),
                kind,
                durable: d.durable,
                auto_delete: d.auto_delete,
                internal: d.internal,
                arguments: table_from_amqp(&d.arguments),
            };
            s.vhost.declare_exchange(declared, d.passive).await?;
            (
                exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                d.nowait,
            )
        }
        exchange::AMQPMethod::Delete(d) => {
            s.vhost
                .delete_exchange(d.exchange.as_str(), d.if_unused)
                .await?;
            (
                exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                d.nowait,
            )
        }
        exchange::AMQPMethod::Bind(b) => {
            let binding = binding(
                b.source.as_str(),
                Destination::Exchange(b.destination.as_str().to_string()),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.bind(binding, s.owner).await?;
            (exchange::AMQPMethod::BindOk(exchange::BindOk {}), b.nowait)
        }
        exchange::AMQPMethod::Unbind(b) => {
            let binding = binding(
                b.source.as_str(),
                Destination::Exchange(b.destination.as_str().to_string()),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.unbind(binding, s.owner).await?;
            (
                exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                b.nowait,
            )
        }
        _ => return Ok(()),
    };
    if !nowait {
        s.method(id, AMQPClass::Exchange(reply));
    }
    Ok(())
}

async fn queue_method(
    ch: &mut Channel,
    s: &mut Session,
    method: queue::AMQPMethod,
) -> Result<(), CoreError> {
    let id = ch.id;
    let name_of = |ch: &Channel, name: &str| {
        ch.queue_name(name)
            .map_err(|e| CoreError::Precondition(e.text))
    };
    let (reply, nowait) = match method {
        queue::AMQPMethod::Declare(d) => {
            let definition = QueueDefinition {
                name: d.queue.as_str().to_string(),
                id: Default::default(),
                durable: d.durable,
                exclusive_owner: d.exclusive.then_some(s.owner),
                auto_delete: d.auto_delete,
                arguments: table_from_amqp(&d.arguments),
            };
            let declared = s
                .vhost
                .declare_queue(definition, d.passive, s.owner)
                .await?;
            ch.last_queue = Some(declared.name.clone());
            (
                queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue: declared.name.as_str().into(),
                    message_count: declared.message_count.min(u64::from(u32::MAX)) as u32,
                    consumer_count: declared.consumer_count,
                }),
                d.nowait,
            )
        }
        queue::AMQPMethod::Bind(b) => {
            let name = name_of(ch, b.queue.as_str())?;
            let binding = binding(
                b.exchange.as_str(),
                Destination::Queue(name),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.bind(binding, s.owner).await?;
            (queue::AMQPMethod::BindOk(queue::BindOk {}), b.nowait)
        }
        queue::AMQPMethod::Unbind(b) => {
            let name = name_of(ch, b.queue.as_str())?;
            let binding = binding(
                b.exchange.as_str(),
                Destination::Queue(name),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.unbind(binding, s.owner).await?;
            (queue::AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
        }
        queue::AMQPMethod::Purge(p) => {
            let name = name_of(ch, p.queue.as_str())?;
            let count = s.vhost.purge_queue(&name, s.owner).await?;
            (
                queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                    message_count: count.min(u64::from(u32::MAX)) as u32,
                }),
                p.nowait,
            )
        }
        queue::AMQPMethod::Delete(d) => {
            let name = name_of(ch, d.queue.as_str())?;
            let count = s
                .vhost
                .delete_queue(&name, d.if_unused, d.if_empty, s.owner)
                .await?;
            (
                queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count: count.min(u64::from(u32::MAX)) as u32,
                }),
                d.nowait,
            )
        }
        _ => return Ok(()),
    };
    if !nowait {
        s.method(id, AMQPClass::Queue(reply));
    }
    Ok(())
}

async fn basic_method(
    ch: &mut Channel,
    s: &mut Session,
    method: basic::AMQPMethod,
    ids: (u16, u16),
) -> Result<(), AmqpError> {
    let id = ch.id;
    let vhost = s.vhost.name().to_string();
    let core = |e: CoreError| AmqpError::from_core(&e, &vhost).on(ids.0, ids.1);
    match method {
        basic::AMQPMethod::Publish(publish) => ch.start_content(publish),
        basic::AMQPMethod::Qos(qos) => {
            // `global` (per-channel sharing of the count) is not modelled: the count applies
            // to each consumer created on the channel afterwards, as with global=false.
            ch.prefetch = qos.prefetch_count;
            s.method(
                id,
                AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
            );
        }
        basic::AMQPMethod::Consume(c) if c.queue.as_str() == reply_to::PSEUDO_QUEUE => {
            consume_replies(ch, s, c, ids)?;
        }
        basic::AMQPMethod::Consume(c) => {
            let name = ch.queue_name(c.queue.as_str())?;
            let queue = s.vhost.queue(&name, s.owner).map_err(core)?;
            let tag = if c.consumer_tag.as_str().is_empty() {
                format!("amq.ctag-{}", generated_suffix())
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
                },
            );
            if !c.nowait {
                s.method(
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                        consumer_tag: tag.as_str().into(),
                    })),
                );
            }
        }
        basic::AMQPMethod::Cancel(c) => {
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
                s.method(
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                        consumer_tag: c.consumer_tag,
                    })),
                );
            }
        }
        basic::AMQPMethod::Get(g) => {
            let name = ch.queue_name(g.queue.as_str())?;
            let queue = s.vhost.queue(&name, s.owner).map_err(core)?;
            match queue.get(g.no_ack).await.map_err(core)? {
                Some(delivery) => ch.get_ok(s, queue, delivery, g.no_ack),
                None => s.method(
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                ),
            }
        }
        basic::AMQPMethod::Ack(a) => {
            if let Some(tx) = ch.tx.as_mut() {
                tx.push(TxOp::Ack(a.delivery_tag, a.multiple));
            } else {
                let entries = ch
                    .take_tags(a.delivery_tag, a.multiple)
                    .map_err(|e| e.on(ids.0, ids.1))?;
                ch.defer_acks(entries);
            }
        }
        basic::AMQPMethod::Nack(n) => {
            if let Some(tx) = ch.tx.as_mut() {
                tx.push(TxOp::Nack(n.delivery_tag, n.multiple, n.requeue));
            } else {
                let entries = ch
                    .take_tags(n.delivery_tag, n.multiple)
                    .map_err(|e| e.on(ids.0, ids.1))?;
                settle(entries, |q, tags| q.nack(tags, n.requeue)).map_err(core)?;
            }
        }
        basic::AMQPMethod::Reject(r) => {
            if let Some(tx) = ch.tx.as_mut() {
                tx.push(TxOp::Nack(r.delivery_tag, false, r.requeue));
            } else {
                let entries = ch
                    .take_tags(r.delivery_tag, false)
                    .map_err(|e| e.on(ids.0, ids.1))?;
                settle(entries, |q, tags| q.nack(tags, r.requeue)).map_err(core)?;
            }
        }
        basic::AMQPMethod::Recover(basic::Recover { requeue })
        | basic::AMQPMethod::RecoverAsync(basic::RecoverAsync { requeue }) => {
            if !requeue {
                return Err(AmqpError::connection(
                    NOT_IMPLEMENTED,
                    "basic.recover with requeue=false",
                )
                .on(ids.0, ids.1));
            }
            let entries = ch.take_tags(0, true)?;
            settle(entries, |q, tags| q.nack(tags, true)).map_err(core)?;
            if ids.1 == 110 {
                s.method(
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
            }
        }
        _ => {
            return Err(AmqpError::connection(
                crate::error::COMMAND_INVALID,
                format!("method {}.{} is not sent by clients", ids.0, ids.1),
            )
            .on(ids.0, ids.1))
        }
    }
    Ok(())
}

/// `basic.consume` of `amq.rabbitmq.reply-to`: no queue, a name handed out for `reply_to`.
fn consume_replies(
    ch: &mut Channel,
    s: &mut Session,
    c: basic::Consume,
    ids: (u16, u16),
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
        format!("amq.ctag-{}", generated_suffix())
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
        s.method(
            ch.id,
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.as_str().into(),
            })),
        );
    }
    Ok(())
}

async fn tx_method(
    ch: &mut Channel,
    s: &mut Session,
    method: tx::AMQPMethod,
) -> Result<(), AmqpError> {
    let id = ch.id;
    let not_transactional =
        || AmqpError::channel(PRECONDITION_FAILED, "channel is not transactional");
    match method {
        tx::AMQPMethod::Select(_) => {
            if ch.confirm.is_some() {
                return Err(AmqpError::channel(
                    PRECONDITION_FAILED,
                    "cannot switch from confirm to tx mode",
                )
                .on(90, 10));
            }
            ch.tx.get_or_insert_with(Vec::new);
            s.method(id, AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
        }
        tx::AMQPMethod::Commit(_) => {
            if ch.tx.is_none() {
                return Err(not_transactional().on(90, 20));
            }
            publish::commit(ch, s).await?;
            s.method(id, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
        }
        tx::AMQPMethod::Rollback(_) => {
            let Some(held) = ch.tx.as_mut() else {
                return Err(not_transactional().on(90, 30));
            };
            held.clear();
            s.method(
                id,
                AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
            );
        }
        _ => {}
    }
    Ok(())
}

/// A binding as `queue.bind` / `exchange.bind` and their unbinds state it.
fn binding(
    source: &str,
    destination: Destination,
    routing_key: &str,
    arguments: &amq_protocol::types::FieldTable,
) -> Binding {
    Binding::new(source, destination, routing_key).with_arguments(table_from_amqp(arguments))
}

/// 22 URL-safe random characters, as RabbitMQ's generated names.
pub fn generated_suffix() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = rand_u128();
    (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect()
}

fn rand_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let a = RandomState::new().build_hasher().finish();
    let mut h = RandomState::new().build_hasher();
    h.write_u64(a);
    (u128::from(a) << 64) | u128::from(h.finish())
}
