//! The commands: what each frame a client sends on an open connection does, and what the server
//! answers. [`Channels`] (a connection's channels and their [`Session`]) takes frames and queue
//! events and appends its answers to an [`Out`]; it does no I/O, so everything here runs in a
//! test without a socket (see `tests/commands.rs`). One module per method class:
//! [`exchange`], [`queue`], [`basic`] (qos, get, ack / nack / reject / recover), [`consume`]
//! (consume, cancel, deliveries, direct reply-to consumers), [`publish`] (content → core
//! publish), [`confirm`], [`tx`]. Channel open / close / flow and `access.request` are here.
//!
//! Within this layer the only import between class modules is `tx` → `publish` (a commit
//! publishes what the transaction held).

pub mod basic;
pub mod confirm;
pub mod consume;
pub mod exchange;
pub mod publish;
pub mod queue;
pub mod tx;

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use amq_protocol::protocol::{
    access, basic as amqp_basic, channel, confirm as amqp_confirm, connection, AMQPClass,
};
use porter_core::queue::api::ConsumerEvent;

use crate::channel::Channel;
use crate::error::{
    AmqpError, CHANNEL_ERROR, COMMAND_INVALID, NOT_ALLOWED, NOT_IMPLEMENTED, UNEXPECTED_FRAME,
};
use crate::frame::Frame;
use crate::out::Out;
use crate::session::{ConfirmResult, Session};

/// What the connection does after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The client sent `connection.close` (or `close-ok`): release everything, answer
    /// `close-ok`, and end.
    ClientClosed,
}

/// What the connection must do after a method on a channel.
enum After {
    Continue,
    /// The client closed the channel (close-ok sent): forget it.
    Closed,
}

/// The open channels of one connection and the session they share.
pub struct Channels {
    pub session: Session,
    /// Boxed: a `Channel` is over 600 bytes, and the map allocates room for four at its first
    /// insert, so an unboxed map made a connection with one channel hold 2.5 KiB.
    channels: HashMap<u16, Box<Channel>>,
    /// Whole publishes of the current burst, handed to the core together.
    batch: publish::Batch,
    /// The negotiated channel_max: `channel.open` above it is 530 NOT_ALLOWED.
    channel_max: u16,
}

impl Channels {
    pub fn new(session: Session, channel_max: u16) -> Self {
        Channels {
            session,
            channels: HashMap::new(),
            batch: publish::Batch::default(),
            channel_max,
        }
    }

    /// Whether `channel` is open (and not closing after a channel error).
    pub fn is_open(&self, channel: u16) -> bool {
        self.channels.get(&channel).is_some_and(|ch| !ch.closing)
    }

    /// Body bytes held in publishes still being assembled, across the channels: what the
    /// connection charges to its memory share.
    /// Every open channel, by number, as the management API lists them.
    pub fn describe(&self) -> Vec<porter_gateway_kit::ChannelInfo> {
        let vhost = self.session.vhost.name();
        let mut channels: Vec<_> = self
            .channels
            .values()
            .filter(|ch| !ch.closing)
            .map(|ch| ch.describe(vhost))
            .collect();
        channels.sort_by_key(|ch| ch.number);
        channels
    }

    pub fn content_bytes(&self) -> u64 {
        self.channels
            .values()
            .map(|ch| ch.content_bytes())
            .sum::<u64>()
            + self.batch.bytes()
    }

    /// The end of a burst of frames: the batched publishes go to the core (their returns,
    /// confirms and errors into `out`), then the gathered acks are applied. `Err` is a
    /// connection error.
    pub async fn end_burst(&mut self, out: &mut Out) -> Result<(), AmqpError> {
        let published =
            publish::flush(&mut self.batch, &mut self.channels, &self.session, out).await;
        self.flush_acks();
        published
    }

    /// One frame from the client. A channel error closes the channel (`channel.close` in
    /// `out`) and is not returned; `Err` is a connection error: the connection must close with
    /// it.
    pub async fn on_frame(&mut self, frame: Frame, out: &mut Out) -> Result<Flow, AmqpError> {
        let channel_id = match &frame {
            Frame::Method(c, _)
            | Frame::Header(c, _)
            | Frame::Body(c, _)
            | Frame::Heartbeat(c)
            | Frame::QosPrefetchSize(c) => *c,
        };
        let publishing = matches!(
            &frame,
            Frame::Header(..)
                | Frame::Body(..)
                | Frame::Method(_, AMQPClass::Basic(amqp_basic::AMQPMethod::Publish(_)))
        );
        if !publishing || self.batch.is_full() {
            // Whatever else the client asks sees the publishes sent before it.
            publish::flush(&mut self.batch, &mut self.channels, &self.session, out).await?;
        }
        if channel_id == 0 {
            return on_connection_frame(frame, out);
        }
        if let Frame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Open(_))) = &frame {
            if let Entry::Vacant(slot) = self.channels.entry(channel_id) {
                if channel_id > self.channel_max {
                    return Err(AmqpError::connection(
                        NOT_ALLOWED,
                        format!(
                            "channel {channel_id} is above the negotiated channel_max {}",
                            self.channel_max
                        ),
                    )
                    .on(20, 10));
                }
                // Counted against the user's max-channels, across its connections (530 past it).
                let user_slot = self
                    .session
                    .vhost
                    .broker()
                    .open_user_channel(&self.session.user)
                    .map_err(|e| AmqpError::connection(NOT_ALLOWED, e.to_string()).on(20, 10))?;
                let mut channel = Box::new(Channel::new(channel_id));
                channel.user_slot = user_slot;
                slot.insert(channel);
                out.method(
                    channel_id,
                    AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
                );
                return Ok(Flow::Continue);
            }
        }
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Err(AmqpError::connection(
                CHANNEL_ERROR,
                format!("expected 'channel.open' on channel {channel_id}"),
            ));
        };
        if ch.closing {
            // Waiting for `close-ok` after a channel error: everything else is dropped.
            match frame {
                Frame::Method(_, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
                    self.channels.remove(&channel_id);
                }
                Frame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                    out.method(
                        channel_id,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                }
                _ => {}
            }
            return Ok(Flow::Continue);
        }
        let session = &self.session;
        let result = match frame {
            Frame::Method(_, _) if ch.expects_content() => Err(AmqpError::connection(
                UNEXPECTED_FRAME,
                format!("method frame on channel {channel_id} in the middle of content"),
            )),
            Frame::Method(_, method) => match timed_dispatch(ch, session, method, out).await {
                Ok(After::Closed) => {
                    self.channels.remove(&channel_id);
                    return Ok(Flow::Continue);
                }
                Ok(After::Continue) => Ok(()),
                Err(e) => Err(e),
            },
            Frame::Header(_, header) => {
                match ch.on_header(header, session.config.message_bytes_max) {
                    Ok(Some((m, properties, body))) => {
                        publish::on_content(ch, session, m, properties, body, &mut self.batch, out)
                            .await
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Frame::Body(_, bytes) => match ch.on_body(&bytes) {
                Ok(Some((m, properties, body))) => {
                    publish::on_content(ch, session, m, properties, body, &mut self.batch, out)
                        .await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Frame::Heartbeat(_) => Err(AmqpError::connection(
                UNEXPECTED_FRAME,
                format!("heartbeat frame on channel {channel_id}"),
            )),
            Frame::QosPrefetchSize(_) => {
                Err(AmqpError::connection(NOT_IMPLEMENTED, "prefetch_size!=0").on(60, 10))
            }
        };
        match result {
            Ok(()) => Ok(Flow::Continue),
            Err(e) if e.connection => Err(e),
            Err(e) => {
                ch.fail(&self.session.replies, &e, out);
                Ok(Flow::Continue)
            }
        }
    }

    /// A queue's delivery or cancellation for one of this connection's consumers.
    pub fn on_consumer_event(&mut self, event: ConsumerEvent, out: &mut Out) {
        consume::on_consumer_event(&mut self.channels, &self.session, event, out);
    }

    /// A publisher confirm from a channel's confirmer task.
    pub fn on_confirm(&mut self, confirm: ConfirmResult, out: &mut Out) {
        if self.channels.contains_key(&confirm.channel) {
            confirm::answer(confirm, out);
        }
    }

    /// Applies the acks the channels gathered during a burst of frames (one ack-file write per
    /// queue instead of one per ack). The connection calls it before each write.
    pub fn flush_acks(&mut self) {
        for channel in self.channels.values_mut() {
            channel.flush_acks();
        }
    }

    /// Ends every channel (consumers cancelled, unacked messages requeued) and deletes the
    /// connection's exclusive queues. Idempotent.
    pub async fn release(&mut self) {
        for (_, mut channel) in self.channels.drain() {
            channel.cleanup(&self.session.replies);
        }
        self.session.vhost.release_owner(self.session.owner).await;
    }
}

/// A frame on channel 0 after the handshake.
fn on_connection_frame(frame: Frame, out: &mut Out) -> Result<Flow, AmqpError> {
    match frame {
        Frame::Heartbeat(_) => Ok(Flow::Continue),
        Frame::Method(_, AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
            tracing::debug!(code = close.reply_code, text = %close.reply_text, "amqp: client closed the connection");
            Ok(Flow::ClientClosed)
        }
        Frame::Method(_, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {
            Ok(Flow::ClientClosed)
        }
        Frame::Method(_, AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_))) => {
            out.method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                    connection::UpdateSecretOk {},
                )),
            );
            Ok(Flow::Continue)
        }
        Frame::Method(_, method) => Err(AmqpError::connection(
            COMMAND_INVALID,
            format!(
                "method {}.{} is not allowed on channel 0",
                method.get_amqp_class_id(),
                method.get_amqp_method_id()
            ),
        )
        .on(method.get_amqp_class_id(), method.get_amqp_method_id())),
        Frame::QosPrefetchSize(_) => Err(AmqpError::connection(
            COMMAND_INVALID,
            "basic.qos on channel 0",
        )),
        Frame::Header(..) | Frame::Body(..) => Err(AmqpError::connection(
            UNEXPECTED_FRAME,
            "content frame on channel 0",
        )),
    }
}

/// A channel method's name for `/metrics`, as RabbitMQ writes it (`basic.publish`). Handling a
/// publish's method frame is timed, not its content or its confirm (the commit seam's fsync
/// histogram has that).
fn method_name(class: u16, method: u16) -> &'static str {
    match (class, method) {
        (20, 10) => "channel.open",
        (20, 20) => "channel.flow",
        (20, 40) => "channel.close",
        (30, 10) => "access.request",
        (40, 10) => "exchange.declare",
        (40, 20) => "exchange.delete",
        (40, 30) => "exchange.bind",
        (40, 40) => "exchange.unbind",
        (50, 10) => "queue.declare",
        (50, 20) => "queue.bind",
        (50, 30) => "queue.purge",
        (50, 40) => "queue.delete",
        (50, 50) => "queue.unbind",
        (60, 10) => "basic.qos",
        (60, 20) => "basic.consume",
        (60, 30) => "basic.cancel",
        (60, 40) => "basic.publish",
        (60, 70) => "basic.get",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover-async",
        (60, 110) => "basic.recover",
        (60, 120) => "basic.nack",
        (85, 10) => "confirm.select",
        (90, 10) => "tx.select",
        (90, 20) => "tx.commit",
        (90, 30) => "tx.rollback",
        _ => "other",
    }
}

/// [`dispatch`], recording how long it took under the method's name.
async fn timed_dispatch(
    ch: &mut Channel,
    s: &Session,
    method: AMQPClass,
    out: &mut Out,
) -> Result<After, AmqpError> {
    let name = method_name(method.get_amqp_class_id(), method.get_amqp_method_id());
    let started = std::time::Instant::now();
    let after = dispatch(ch, s, method, out).await;
    s.operations.record(name, started.elapsed());
    after
}

/// Handles one method on an open channel. Errors carry the failing method's ids.
async fn dispatch(
    ch: &mut Channel,
    s: &Session,
    method: AMQPClass,
    out: &mut Out,
) -> Result<After, AmqpError> {
    let ids = (method.get_amqp_class_id(), method.get_amqp_method_id());
    let id = ch.id;
    if !matches!(method, AMQPClass::Basic(amqp_basic::AMQPMethod::Ack(_))) {
        // Acks gathered so far take effect before anything else this channel asks.
        ch.flush_acks();
    }
    match method {
        AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
            ch.cleanup(&s.replies);
            out.method(
                id,
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
            );
            return Ok(After::Closed);
        }
        AMQPClass::Channel(channel::AMQPMethod::Flow(_)) => {
            // Porter does not pause deliveries on flow(false); it answers truthfully with the
            // state it keeps (active). RabbitMQ has deprecated client-initiated flow.
            out.method(
                id,
                AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                    active: true,
                })),
            );
        }
        AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
            return Err(AmqpError::connection(
                CHANNEL_ERROR,
                format!("channel {id} is already open"),
            )
            .on(20, 10));
        }
        AMQPClass::Access(access::AMQPMethod::Request(_)) => {
            out.method(
                id,
                AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
            );
        }
        // Boxed: topology commands are rare, and their futures (metadata journaling) are the
        // largest here; inline, every idle connection's task would carry their size.
        AMQPClass::Exchange(m) => Box::pin(exchange::command(s, id, m, out))
            .await
            .map_err(|e| s.error(&e).on(ids.0, ids.1))?,
        AMQPClass::Queue(m) => Box::pin(queue::command(ch, s, m, ids, out)).await?,
        AMQPClass::Basic(amqp_basic::AMQPMethod::Publish(m)) => publish::start(ch, m),
        AMQPClass::Basic(amqp_basic::AMQPMethod::Consume(m)) => {
            consume::consume(ch, s, m, ids, out)?
        }
        AMQPClass::Basic(amqp_basic::AMQPMethod::Cancel(m)) => consume::cancel(ch, s, m, out),
        AMQPClass::Basic(m) => basic::command(ch, s, m, ids, out).await?,
        AMQPClass::Confirm(amqp_confirm::AMQPMethod::Select(m)) => confirm::select(ch, s, m, out)?,
        AMQPClass::Tx(m) => Box::pin(tx::command(ch, s, m, out)).await?,
        other => {
            return Err(AmqpError::connection(
                COMMAND_INVALID,
                format!("method {}.{} not valid on a channel", ids.0, ids.1),
            )
            .on(other.get_amqp_class_id(), other.get_amqp_method_id()));
        }
    }
    Ok(After::Continue)
}
