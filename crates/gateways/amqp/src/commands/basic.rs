//! `basic.qos / get / ack / nack / reject / recover`: prefetch for later consumers, pulling a
//! message, and settling deliveries by this channel's delivery tags. (Consume and cancel are in
//! [`super::consume`], publish in [`super::publish`].) In a transaction, settlements wait for
//! `tx.commit`; outside one, acks are gathered and applied per queue at the end of the burst.

use amq_protocol::protocol::{basic, AMQPClass};

use porter_core::users::access::{Access, Resource};

use crate::channel::{settle, Channel, TxOp};
use crate::error::{AmqpError, COMMAND_INVALID, NOT_IMPLEMENTED};
use crate::out::Out;
use crate::session::Session;

/// One basic-class method other than publish, consume and cancel; `ids` name it in errors.
pub async fn command(
    ch: &mut Channel,
    s: &Session,
    method: basic::AMQPMethod,
    ids: (u16, u16),
    out: &mut Out,
) -> Result<(), AmqpError> {
    let id = ch.id;
    let core = |e| s.error(&e).on(ids.0, ids.1);
    match method {
        basic::AMQPMethod::Qos(qos) => {
            // `global` (per-channel sharing of the count) is not modelled: the count applies
            // to each consumer created on the channel afterwards, as with global=false.
            ch.prefetch = qos.prefetch_count;
            out.method(
                id,
                AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
            );
        }
        basic::AMQPMethod::Get(g) => {
            let name = ch.queue_name(g.queue.as_str())?;
            s.authorize(Access::Read, Resource::Queue(&name))
                .map_err(core)?;
            let queue = s.vhost.queue(&name, s.owner).map_err(core)?;
            match queue.get(g.no_ack).await.map_err(core)? {
                Some(delivery) => ch.get_ok(out, queue, delivery, g.no_ack),
                None => out.method(
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
                out.method(
                    id,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
            }
        }
        _ => {
            return Err(AmqpError::connection(
                COMMAND_INVALID,
                format!("method {}.{} is not sent by clients", ids.0, ids.1),
            )
            .on(ids.0, ids.1))
        }
    }
    Ok(())
}
