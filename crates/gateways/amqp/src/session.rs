//! [`Session`]: what every channel of one connection shares — the virtual host, the owner id
//! exclusive queues are tied to, the negotiated frame size, the outgoing byte buffer, the one
//! delivery sink all of its consumers feed, and the confirm results coming back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, AMQPClass};
use porter_core::message::Message;
use porter_core::queue::api::{ConsumerEvent, OwnerId};
use porter_core::VirtualHost;
use tokio::sync::mpsc;

use crate::config::AmqpConfig;
use crate::convert::properties_to_amqp;
use crate::frame::{encode, encode_body, encode_method};

/// A publisher confirm decided by a channel's confirmer task.
#[derive(Debug)]
pub struct ConfirmResult {
    pub channel: u16,
    pub delivery_tag: u64,
    pub multiple: bool,
    pub ack: bool,
}

/// Client capabilities from `connection.start-ok` that change what the server may send.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capabilities {
    pub consumer_cancel_notify: bool,
    pub connection_blocked: bool,
}

pub struct Session {
    pub vhost: VirtualHost,
    pub user: String,
    pub owner: OwnerId,
    pub frame_max: u32,
    pub config: Arc<AmqpConfig>,
    pub capabilities: Capabilities,
    /// Bytes to write to the socket when the current event is handled.
    pub out: Vec<u8>,
    /// The sink every consumer of this connection is given; events carry an internal consumer
    /// tag that names the channel (see [`internal_tag`]).
    pub deliveries: mpsc::Sender<ConsumerEvent>,
    pub confirms: mpsc::UnboundedSender<ConfirmResult>,
    /// Publishes waiting for their confirm across the connection's channels; bounded by
    /// `AmqpConfig::confirms_pending_max` (the connection stops reading past it).
    pub confirms_pending: Arc<AtomicUsize>,
    /// Direct reply-to consumers of the whole broker.
    pub replies: Arc<crate::reply_to::ReplyRegistry>,
}

impl Session {
    pub fn method(&mut self, channel: u16, method: AMQPClass) {
        encode_method(channel, method, &mut self.out);
    }

    /// A content-carrying method (deliver, get-ok, return) with its header and body frames.
    pub fn content(&mut self, channel: u16, method: AMQPClass, message: &Message) {
        encode_method(channel, method, &mut self.out);
        encode(
            &AMQPFrame::Header(
                channel,
                AMQPContentHeader {
                    class_id: 60,
                    body_size: message.body.len() as u64,
                    properties: properties_to_amqp(&message.properties),
                },
            ),
            &mut self.out,
        );
        encode_body(channel, &message.body, self.frame_max, &mut self.out);
    }

    /// `basic.return` of an unroutable mandatory message.
    pub fn basic_return(&mut self, channel: u16, message: &Message) {
        let method = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: message.exchange.as_str().into(),
            routing_key: message.routing_key.as_str().into(),
        }));
        self.content(channel, method, message);
    }

    pub fn confirms_pending(&self) -> usize {
        self.confirms_pending.load(Ordering::Relaxed)
    }
}

/// The consumer tag a queue knows: unique per connection and channel, since AMQP consumer tags
/// are only unique within a channel.
pub fn internal_tag(owner: OwnerId, channel: u16, tag: &str) -> String {
    format!("{owner}:{channel}:{tag}")
}

/// The channel and client tag an internal tag stands for.
pub fn split_internal_tag(internal: &str) -> Option<(u16, &str)> {
    let mut parts = internal.splitn(3, ':');
    let _owner = parts.next()?;
    let channel = parts.next()?.parse().ok()?;
    Some((channel, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_tags_round_trip_even_with_colons() {
        let tag = internal_tag(7, 3, "amq.ctag:x:y");
        assert_eq!(split_internal_tag(&tag), Some((3, "amq.ctag:x:y")));
    }
}
