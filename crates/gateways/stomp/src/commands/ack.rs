//! ACK and NACK. A message is named by the `ack` header of its MESSAGE (the `id` header of
//! ACK in 1.2), or by `message-id` (and `subscription`) in 1.0 and 1.1; ack ids are unique per
//! connection. In `client` mode an ACK or NACK covers every earlier unacknowledged message of
//! the subscription too; in `client-individual` mode only the one named. NACK requeues (the
//! message is redelivered, `redelivered:true`) unless `requeue:false`, which dead-letters or
//! drops it, as RabbitMQ does.

use crate::error::{Result, StompError};
use crate::frame::{Command, Frame};
use crate::session::{AckMode, Session, Source, Version};

pub fn settle(session: &mut Session, frame: &Frame) -> Result<()> {
    let name = if session.version == Version::V1_2 {
        "id"
    } else {
        "message-id"
    };
    let text = frame.header(name).ok_or_else(|| {
        StompError::missing(
            if name == "id" { "id" } else { "message-id" },
            frame.command.as_str(),
        )
    })?;
    let ack_id: u64 = text.parse().map_err(|_| unknown(text))?;
    let sub = match frame.header("subscription") {
        Some(s) if session.version == Version::V1_1 => session.subscriptions.get_mut(s),
        _ => session
            .subscriptions
            .values_mut()
            .find(|s| s.unacked.contains_key(&ack_id)),
    }
    .ok_or_else(|| unknown(text))?;
    if !sub.unacked.contains_key(&ack_id) {
        return Err(unknown(text));
    }
    let ids: Vec<u64> = match sub.ack {
        AckMode::Client => sub.unacked.range(..=ack_id).map(|(&k, _)| k).collect(),
        _ => vec![ack_id],
    };
    let tags: Vec<u64> = ids.iter().filter_map(|id| sub.unacked.remove(id)).collect();
    let nack = frame.command == Command::Nack;
    let requeue = frame.header("requeue") != Some("false");
    match &sub.source {
        Source::Queue { queue, .. } => {
            if nack {
                queue.nack(&tags, requeue)?;
            } else {
                queue.ack(&tags)?;
            }
        }
        Source::Kafka { credit, .. } => {
            if let Some(credit) = credit {
                credit.add_permits(tags.len());
            }
        }
    }
    debug_assert!(sub.ack != AckMode::Auto);
    Ok(())
}

fn unknown(id: &str) -> StompError {
    StompError::protocol(
        "unknown message",
        format!("no unacknowledged message has id '{id}' on this connection"),
    )
}
