//! `confirm.select` puts a channel in confirm mode (a [`Confirmer`] task per channel); the
//! results it decides come back through the session's feed and are answered here as
//! `basic.ack` / `basic.nack`.

use amq_protocol::protocol::{basic, confirm, AMQPClass};

use crate::channel::Channel;
use crate::confirmer::Confirmer;
use crate::error::{AmqpError, PRECONDITION_FAILED};
use crate::out::Out;
use crate::session::{ConfirmResult, Session};

/// `confirm.select`: 406 on a transactional channel; selecting twice is harmless.
pub fn select(
    ch: &mut Channel,
    s: &Session,
    select: confirm::Select,
    out: &mut Out,
) -> Result<(), AmqpError> {
    if ch.tx.is_some() {
        return Err(AmqpError::channel(
            PRECONDITION_FAILED,
            "cannot switch from tx to confirm mode",
        )
        .on(85, 10));
    }
    if ch.confirm.is_none() {
        ch.confirm = Some(Confirmer::start(ch.id, s));
    }
    if !select.nowait {
        out.method(
            ch.id,
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
        );
    }
    Ok(())
}

/// A confirm the channel's confirmer decided: `basic.ack` or `basic.nack` to the publisher.
pub fn answer(confirm: ConfirmResult, out: &mut Out) {
    let method = if confirm.ack {
        basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: confirm.delivery_tag,
            multiple: confirm.multiple,
        })
    } else {
        basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: confirm.delivery_tag,
            multiple: confirm.multiple,
            requeue: false,
        })
    };
    out.method(confirm.channel, AMQPClass::Basic(method));
}
