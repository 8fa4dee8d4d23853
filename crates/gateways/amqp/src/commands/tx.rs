//! `tx.select / commit / rollback`: a transactional channel holds its publishes and
//! settlements (up to `tx_publishes_max`) until commit, which applies them in order, each
//! publish made durable before `commit-ok`.

use amq_protocol::protocol::{tx, AMQPClass};

use crate::channel::{settle, Channel, TxOp};
use crate::error::{AmqpError, PRECONDITION_FAILED};
use crate::out::Out;
use crate::session::Session;

use super::publish::{publish_now, Published};

/// One tx-class method.
pub async fn command(
    ch: &mut Channel,
    s: &Session,
    method: tx::AMQPMethod,
    out: &mut Out,
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
            out.method(id, AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
        }
        tx::AMQPMethod::Commit(_) => {
            if ch.tx.is_none() {
                return Err(not_transactional().on(90, 20));
            }
            commit(ch, s, out).await?;
            out.method(id, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
        }
        tx::AMQPMethod::Rollback(_) => {
            let Some(held) = ch.tx.as_mut() else {
                return Err(not_transactional().on(90, 30));
            };
            held.clear();
            out.method(
                id,
                AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
            );
        }
        _ => {}
    }
    Ok(())
}

/// `tx.commit`: the held publishes (each made durable) and settlements, in order.
async fn commit(ch: &mut Channel, s: &Session, out: &mut Out) -> Result<(), AmqpError> {
    let ops = ch.tx.replace(Vec::new()).unwrap_or_default();
    for op in ops {
        match op {
            TxOp::Publish(held) => {
                let (publish, message) = *held;
                match publish_now(ch.id, s, &publish, message, out).await {
                    Ok(Published::Durable(wait)) => {
                        wait.wait().await.map_err(|e| s.error(&e).on(90, 20))?
                    }
                    // Overflow refusals drop the message, as RabbitMQ does in a transaction.
                    Ok(Published::Rejected) => {}
                    Err(e) => return Err(e),
                }
            }
            TxOp::Ack(tag, multiple) => {
                let entries = ch.take_tags(tag, multiple)?;
                settle(entries, |q, tags| q.ack(tags)).map_err(|e| s.error(&e))?;
            }
            TxOp::Nack(tag, multiple, requeue) => {
                let entries = ch.take_tags(tag, multiple)?;
                settle(entries, |q, tags| q.nack(tags, requeue)).map_err(|e| s.error(&e))?;
            }
        }
    }
    Ok(())
}
