//! One client connection: the protocol header, the `start / tune / open` negotiation, then the
//! event loop: frames from the client, deliveries from queues, confirms from the confirmer
//! tasks, heartbeats, resource alarms. Every event writes into one buffer that is flushed to the
//! socket before the next event is taken, so writes keep the order decisions were made in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPFrame, ProtocolVersion};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use futures::{FutureExt, StreamExt};
use porter_core::queue::api::{ConsumerEvent, CONSUMER_BUFFER_MAX};
use porter_core::vhost::next_owner_id;
use porter_core::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::auth::authenticate;
use crate::channel::Channel;
use crate::config::{AmqpConfig, FRAME_MIN_SIZE};
use crate::error::{AmqpError, CHANNEL_ERROR, CONNECTION_FORCED, NOT_ALLOWED};
use crate::frame::{encode, encode_method, Frame, FrameCodec, FrameError};
use crate::methods::{dispatch, After};
use crate::publish::{confirms_backlogged, message_of, on_publish};
use crate::session::{split_internal_tag, Capabilities, ConfirmResult, Session};

/// Time allowed for the protocol header and negotiation (RabbitMQ: `handshake_timeout`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the client's `close-ok`.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(2);
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

pub struct Context {
    pub broker: Arc<Broker>,
    pub config: Arc<AmqpConfig>,
    pub replies: Arc<crate::reply_to::ReplyRegistry>,
}

type Frames = FramedRead<OwnedReadHalf, FrameCodec>;

/// Events handled before one write to the socket.
const EVENTS_PER_WRITE_MAX: usize = 512;
/// Outgoing bytes gathered before a write, at most (plus one event's worth).
const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// What the connection's loop reacts to. One lives on the stack at a time, so the size of the
/// frame variant costs nothing worth a heap allocation per frame.
#[allow(clippy::large_enum_variant)]
enum Event {
    Frame(Option<Result<Frame, FrameError>>),
    Consumer(ConsumerEvent),
    Confirm(ConfirmResult),
    /// A timer or alarm, already handled.
    Idle,
}

pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut header = [0u8; 8];
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.read_exact(&mut header)).await;
    match read {
        Ok(Ok(_)) if &header == PROTOCOL_HEADER => {}
        Ok(Ok(_)) => {
            tracing::warn!(%peer, header = ?String::from_utf8_lossy(&header), "amqp: bad protocol header; replied with ours and closed");
            let _ = writer.write_all(PROTOCOL_HEADER).await;
            return;
        }
        _ => {
            tracing::debug!(%peer, "amqp: no protocol header");
            return;
        }
    }
    let mut frames = FramedRead::new(
        reader,
        FrameCodec {
            frame_max: ctx.config.frame_max.max(FRAME_MIN_SIZE),
        },
    );
    let session = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(&mut frames, &mut writer, peer, &ctx),
    )
    .await
    {
        Ok(Ok(session)) => session,
        Ok(Err(Some(error))) => {
            tracing::warn!(%peer, code = error.code, text = %error.text, "amqp: connection refused");
            close_connection(&mut frames, &mut writer, &error).await;
            return;
        }
        Ok(Err(None)) | Err(_) => {
            tracing::debug!(%peer, "amqp: handshake abandoned");
            return;
        }
    };
    let Negotiated {
        session,
        deliveries,
        confirms,
        heartbeat,
        channel_max,
    } = session;
    let mut conn = Connection {
        session,
        channels: HashMap::new(),
        peer,
        heartbeat: Duration::from_secs(u64::from(heartbeat)),
        channel_max,
        last_read: Instant::now(),
        last_write: Instant::now(),
        blocked: false,
        has_published: false,
    };
    let outcome = conn
        .serve(
            &mut frames,
            &mut writer,
            deliveries,
            confirms,
            &ctx,
            shutdown,
        )
        .await;
    if let Err(error) = &outcome {
        if error.code != 0 {
            tracing::warn!(%peer, code = error.code, text = %error.text, "amqp: closing connection");
            close_connection(&mut frames, &mut writer, error).await;
        }
    }
    conn.release().await;
}

/// Sends `connection.close` and waits briefly for `close-ok`.
async fn close_connection(frames: &mut Frames, writer: &mut OwnedWriteHalf, error: &AmqpError) {
    let mut out = Vec::new();
    encode_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: error.code,
            reply_text: truncated(&error.text).into(),
            class_id: error.class_id,
            method_id: error.method_id,
        })),
        &mut out,
    );
    if writer.write_all(&out).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, async {
        while let Some(Ok(frame)) = frames.next().await {
            if matches!(
                frame,
                Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))
            ) {
                return;
            }
        }
    })
    .await;
}

/// A short string holds 255 bytes; reply texts are cut at a character boundary.
fn truncated(text: &str) -> &str {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What the handshake settled.
struct Negotiated {
    session: Session,
    deliveries: mpsc::Receiver<ConsumerEvent>,
    confirms: mpsc::UnboundedReceiver<ConfirmResult>,
    /// Seconds; 0 = off.
    heartbeat: u16,
    channel_max: u16,
}

/// start → start-ok → tune → tune-ok → open → open-ok. `Err(None)`: the client went away.
async fn handshake(
    frames: &mut Frames,
    writer: &mut OwnedWriteHalf,
    peer: SocketAddr,
    ctx: &Context,
) -> Result<Negotiated, Option<AmqpError>> {
    let mut out = Vec::new();
    encode_method(0, start_method(), &mut out);
    writer.write_all(&out).await.map_err(|_| None)?;
    out.clear();
    let start_ok = match next_method(frames).await? {
        AMQPClass::Connection(connection::AMQPMethod::StartOk(ok)) => ok,
        _ => return Err(Some(unexpected("connection.start-ok"))),
    };
    let user = authenticate(&start_ok, peer, &ctx.config.users).map_err(Some)?;
    let capabilities = client_capabilities(&start_ok.client_properties);
    let config = &ctx.config;
    encode_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat_s,
        })),
        &mut out,
    );
    writer.write_all(&out).await.map_err(|_| None)?;
    out.clear();
    let tune_ok = match next_method(frames).await? {
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(ok)) => ok,
        _ => return Err(Some(unexpected("connection.tune-ok"))),
    };
    let frame_max = match tune_ok.frame_max {
        0 => config.frame_max,
        n => n.clamp(FRAME_MIN_SIZE, config.frame_max),
    };
    frames.decoder_mut().frame_max = frame_max;
    let open = match next_method(frames).await? {
        AMQPClass::Connection(connection::AMQPMethod::Open(open)) => open,
        _ => return Err(Some(unexpected("connection.open"))),
    };
    let vhost = ctx.broker.vhost(open.virtual_host.as_str()).map_err(|_| {
        Some(
            AmqpError::connection(
                NOT_ALLOWED,
                format!("vhost {} not found", open.virtual_host.as_str()),
            )
            .on(10, 40),
        )
    })?;
    encode_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
        &mut out,
    );
    writer.write_all(&out).await.map_err(|_| None)?;
    let (deliveries_tx, deliveries) = mpsc::channel(CONSUMER_BUFFER_MAX);
    let (confirms_tx, confirms) = mpsc::unbounded_channel();
    let session = Session {
        vhost,
        user,
        owner: next_owner_id(),
        frame_max,
        config: ctx.config.clone(),
        capabilities,
        out: Vec::new(),
        deliveries: deliveries_tx,
        confirms: confirms_tx,
        confirms_pending: Arc::new(AtomicUsize::new(0)),
        replies: ctx.replies.clone(),
    };
    tracing::debug!(%peer, user = %session.user, vhost = %session.vhost.name(), frame_max, heartbeat = tune_ok.heartbeat, channel_max = tune_ok.channel_max, "amqp: connection open");
    Ok(Negotiated {
        session,
        deliveries,
        confirms,
        heartbeat: tune_ok.heartbeat,
        channel_max: match tune_ok.channel_max {
            0 => config.channel_max,
            n => n.min(config.channel_max),
        },
    })
}

async fn next_method(frames: &mut Frames) -> Result<AMQPClass, Option<AmqpError>> {
    loop {
        match frames.next().await {
            Some(Ok(Frame::Method(0, method))) => return Ok(method),
            Some(Ok(Frame::Heartbeat(_))) => continue,
            Some(Ok(_)) => return Err(Some(unexpected("a connection method on channel 0"))),
            Some(Err(FrameError::Io(_))) | None => return Err(None),
            Some(Err(e)) => return Err(Some(AmqpError::from_frame(&e))),
        }
    }
}

fn unexpected(expected: &str) -> AmqpError {
    AmqpError::connection(
        crate::error::COMMAND_INVALID,
        format!("expected {expected}"),
    )
}

fn start_method() -> AMQPClass {
    let mut capabilities = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        capabilities.insert(name.into(), AMQPValue::Boolean(true));
    }
    capabilities.insert("direct_reply_to".into(), AMQPValue::Boolean(true));
    let mut properties = FieldTable::default();
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    for (key, value) in [
        ("product", "Porter"),
        ("version", env!("CARGO_PKG_VERSION")),
        ("platform", "Rust"),
        ("information", "https://github.com/porter-broker/porter"),
        ("cluster_name", "porter"),
    ] {
        properties.insert(key.into(), AMQPValue::LongString(value.into()));
    }
    let version = ProtocolVersion::amqp_0_9_1();
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: version.major,
        version_minor: version.minor,
        server_properties: properties,
        mechanisms: LongString::from("PLAIN AMQPLAIN"),
        locales: LongString::from("en_US"),
    }))
}

fn client_capabilities(properties: &FieldTable) -> Capabilities {
    let mut caps = Capabilities::default();
    if let Some(AMQPValue::FieldTable(table)) = properties.inner().get("capabilities") {
        let flag = |name: &str| matches!(table.inner().get(name), Some(AMQPValue::Boolean(true)));
        caps.consumer_cancel_notify = flag("consumer_cancel_notify");
        caps.connection_blocked = flag("connection.blocked");
    }
    caps
}

struct Connection {
    session: Session,
    channels: HashMap<u16, Channel>,
    peer: SocketAddr,
    heartbeat: Duration,
    channel_max: u16,
    last_read: Instant,
    last_write: Instant,
    /// A resource alarm is on and this connection publishes: its frames are not read.
    blocked: bool,
    has_published: bool,
}

impl Connection {
    /// Ends every channel (consumers cancelled, unacked messages requeued) and deletes the
    /// connection's exclusive queues. Idempotent.
    async fn release(&mut self) {
        for (_, mut channel) in self.channels.drain() {
            channel.cleanup(&self.session.replies);
        }
        self.session.vhost.release_owner(self.session.owner).await;
    }

    async fn serve(
        &mut self,
        frames: &mut Frames,
        writer: &mut OwnedWriteHalf,
        mut deliveries: mpsc::Receiver<ConsumerEvent>,
        mut confirms: mpsc::UnboundedReceiver<ConfirmResult>,
        ctx: &Context,
        shutdown: CancellationToken,
    ) -> Result<(), AmqpError> {
        let channel_max = self.channel_max;
        let mut alarms = ctx.broker.alarms();
        let tick = if self.heartbeat.is_zero() {
            Duration::from_secs(3600)
        } else {
            (self.heartbeat / 2).max(Duration::from_millis(500))
        };
        let mut heartbeat = tokio::time::interval(tick);
        loop {
            let reading = !self.blocked && !confirms_backlogged(&self.session);
            let event = tokio::select! {
                frame = frames.next(), if reading => Event::Frame(frame),
                Some(event) = deliveries.recv() => Event::Consumer(event),
                Some(confirm) = confirms.recv() => Event::Confirm(confirm),
                _ = heartbeat.tick() => {
                    if !self.heartbeat.is_zero() {
                        if self.last_read.elapsed() > self.heartbeat * 2 && reading {
                            tracing::warn!(peer = %self.peer, "amqp: missed heartbeats; closing");
                            return Err(AmqpError { code: 0, text: String::new(), connection: true, class_id: 0, method_id: 0 });
                        }
                        if self.last_write.elapsed() >= tick {
                            encode(&AMQPFrame::Heartbeat, &mut self.session.out);
                        }
                    }
                    Event::Idle
                }
                Ok(()) = alarms.changed() => {
                    let state = *alarms.borrow_and_update();
                    self.on_alarm(state.any(), state.reason());
                    Event::Idle
                }
                _ = shutdown.cancelled() => {
                    self.flush(writer).await?;
                    return Err(AmqpError::connection(CONNECTION_FORCED, "broker shutdown"));
                }
            };
            // Handle this event and whatever else is already waiting (buffered frames,
            // deliveries, confirms), then write once: one syscall for many frames, and acks
            // coalesced per queue.
            let mut next = Some(event);
            let mut handled = 0;
            while let Some(event) = next.take() {
                if self.handle(event, frames, channel_max, &alarms).await? {
                    self.flush_acks();
                    self.release().await;
                    encode_method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                        &mut self.session.out,
                    );
                    self.flush(writer).await?;
                    return Ok(());
                }
                handled += 1;
                if handled >= EVENTS_PER_WRITE_MAX || self.session.out.len() >= WRITE_BUFFER_BYTES {
                    break;
                }
                next = if let Ok(event) = deliveries.try_recv() {
                    Some(Event::Consumer(event))
                } else if let Ok(confirm) = confirms.try_recv() {
                    Some(Event::Confirm(confirm))
                } else if !self.blocked && !confirms_backlogged(&self.session) {
                    frames.next().now_or_never().map(Event::Frame)
                } else {
                    None
                };
            }
            self.flush_acks();
            self.flush(writer).await?;
        }
    }

    /// One event; `true` when the client closed the connection.
    async fn handle(
        &mut self,
        event: Event,
        _frames: &mut Frames,
        channel_max: u16,
        alarms: &tokio::sync::watch::Receiver<porter_core::alarm::AlarmState>,
    ) -> Result<bool, AmqpError> {
        match event {
            Event::Frame(frame) => {
                self.last_read = Instant::now();
                match frame {
                    Some(Ok(frame)) => self.on_frame(frame, channel_max, alarms).await,
                    Some(Err(FrameError::Io(_))) | None => Err(AmqpError {
                        code: 0,
                        text: String::new(),
                        connection: true,
                        class_id: 0,
                        method_id: 0,
                    }),
                    Some(Err(e)) => Err(AmqpError::from_frame(&e)),
                }
            }
            Event::Consumer(event) => {
                self.on_consumer_event(event);
                Ok(false)
            }
            Event::Confirm(confirm) => {
                self.on_confirm(confirm);
                Ok(false)
            }
            Event::Idle => Ok(false),
        }
    }

    /// Applies the acks the channels gathered during this batch of events.
    fn flush_acks(&mut self) {
        for channel in self.channels.values_mut() {
            channel.flush_acks();
        }
    }

    async fn flush(&mut self, writer: &mut OwnedWriteHalf) -> Result<(), AmqpError> {
        if self.session.out.is_empty() {
            return Ok(());
        }
        let result = writer.write_all(&self.session.out).await;
        self.session.out.clear();
        self.last_write = Instant::now();
        result.map_err(|_| AmqpError {
            code: 0,
            text: String::new(),
            connection: true,
            class_id: 0,
            method_id: 0,
        })
    }

    fn on_alarm(&mut self, raised: bool, reason: &str) {
        if raised == self.blocked {
            return;
        }
        if raised && !self.has_published {
            return;
        }
        self.blocked = raised;
        if self.session.capabilities.connection_blocked {
            let method = if raised {
                connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: reason.into(),
                })
            } else {
                connection::AMQPMethod::Unblocked(connection::Unblocked {})
            };
            encode_method(0, AMQPClass::Connection(method), &mut self.session.out);
        }
    }

    /// Returns `true` when the connection is done (client sent connection.close).
    async fn on_frame(
        &mut self,
        frame: Frame,
        channel_max: u16,
        alarms: &tokio::sync::watch::Receiver<porter_core::alarm::AlarmState>,
    ) -> Result<bool, AmqpError> {
        let channel_id = match &frame {
            Frame::Method(c, _)
            | Frame::Header(c, _)
            | Frame::Body(c, _)
            | Frame::Heartbeat(c)
            | Frame::QosPrefetchSize(c) => *c,
        };
        if channel_id == 0 {
            return self.on_connection_frame(frame);
        }
        if let Frame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Open(_))) = &frame {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.channels.entry(channel_id)
            {
                if channel_id > channel_max {
                    return Err(AmqpError::connection(
                        NOT_ALLOWED,
                        format!(
                            "channel {channel_id} is above the negotiated channel_max {channel_max}"
                        ),
                    )
                    .on(20, 10));
                }
                slot.insert(Channel::new(channel_id));
                self.session.method(
                    channel_id,
                    AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
                );
                return Ok(false);
            }
        }
        if let Frame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Publish(_))) = &frame {
            // A connection that publishes during an alarm is blocked from here on (RabbitMQ
            // blocks publishers, not consumers, so consumers can drain the backlog).
            self.has_published = true;
            let alarm = *alarms.borrow();
            if alarm.any() && !self.blocked {
                self.on_alarm(true, alarm.reason());
            }
        }
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Err(AmqpError::connection(
                CHANNEL_ERROR,
                format!("expected 'channel.open' on channel {channel_id}"),
            ));
        };
        if ch.closing {
            match frame {
                Frame::Method(_, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
                    self.channels.remove(&channel_id);
                }
                Frame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                    self.session.method(
                        channel_id,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                }
                _ => {}
            }
            return Ok(false);
        }
        let result = match frame {
            Frame::Method(_, method) => {
                if ch.expects_content() {
                    Err(AmqpError::connection(
                        crate::error::UNEXPECTED_FRAME,
                        format!("method frame on channel {channel_id} in the middle of content"),
                    ))
                } else {
                    match dispatch(ch, &mut self.session, method).await {
                        Ok(After::Closed) => {
                            self.channels.remove(&channel_id);
                            return Ok(false);
                        }
                        Ok(After::Continue) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            }
            Frame::Header(_, header) => {
                match ch.on_header(header, self.session.config.message_bytes_max) {
                    Ok(Some((publish, properties, body))) => {
                        publish_whole(ch, &mut self.session, publish, properties, body).await
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Frame::Body(_, bytes) => match ch.on_body(&bytes) {
                Ok(Some((publish, properties, body))) => {
                    publish_whole(ch, &mut self.session, publish, properties, body).await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Frame::Heartbeat(_) => Err(AmqpError::connection(
                crate::error::UNEXPECTED_FRAME,
                format!("heartbeat frame on channel {channel_id}"),
            )),
            Frame::QosPrefetchSize(_) => Err(AmqpError::connection(
                crate::error::NOT_IMPLEMENTED,
                "prefetch_size!=0",
            )
            .on(60, 10)),
        };
        match result {
            Ok(()) => Ok(false),
            Err(e) if e.connection => Err(e),
            Err(e) => {
                tracing::info!(peer = %self.peer, channel = channel_id, code = e.code, text = %e.text, "amqp: channel error");
                let ch = self.channels.get_mut(&channel_id).expect("checked above");
                ch.cleanup(&self.session.replies);
                ch.closing = true;
                self.session.method(
                    channel_id,
                    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                        reply_code: e.code,
                        reply_text: truncated(&e.text).into(),
                        class_id: e.class_id,
                        method_id: e.method_id,
                    })),
                );
                Ok(false)
            }
        }
    }

    fn on_connection_frame(&mut self, frame: Frame) -> Result<bool, AmqpError> {
        match frame {
            Frame::Heartbeat(_) => Ok(false),
            Frame::Method(_, AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
                tracing::debug!(peer = %self.peer, code = close.reply_code, text = %close.reply_text, "amqp: client closed the connection");
                Ok(true)
            }
            Frame::Method(_, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => Ok(true),
            Frame::Method(_, AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_))) => {
                encode_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                    &mut self.session.out,
                );
                Ok(false)
            }
            Frame::Method(_, method) => Err(AmqpError::connection(
                crate::error::COMMAND_INVALID,
                format!(
                    "method {}.{} is not allowed on channel 0",
                    method.get_amqp_class_id(),
                    method.get_amqp_method_id()
                ),
            )
            .on(method.get_amqp_class_id(), method.get_amqp_method_id())),
            Frame::QosPrefetchSize(_) => Err(AmqpError::connection(
                crate::error::COMMAND_INVALID,
                "basic.qos on channel 0",
            )),
            Frame::Header(..) | Frame::Body(..) => Err(AmqpError::connection(
                crate::error::UNEXPECTED_FRAME,
                "content frame on channel 0",
            )),
        }
    }

    fn on_consumer_event(&mut self, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Deliver(delivery) => {
                let tag = delivery.consumer_tag.clone().unwrap_or_else(|| "".into());
                let Some((channel_id, client_tag)) = split_internal_tag(&tag) else {
                    return;
                };
                match self.channels.get_mut(&channel_id) {
                    Some(ch) if !ch.closing && ch.has_consumer(client_tag) => {
                        ch.deliver(&mut self.session, client_tag, delivery)
                    }
                    // The consumer or channel is gone: give an acked-mode message back.
                    _ => {
                        if let Some(queue) = self.find_queue(&delivery.queue) {
                            let _ = queue.nack(&[delivery.queue_tag], true);
                        }
                    }
                }
            }
            ConsumerEvent::Cancelled { consumer_tag } => {
                let Some((channel_id, client_tag)) = split_internal_tag(&consumer_tag) else {
                    return;
                };
                let Some(ch) = self.channels.get_mut(&channel_id) else {
                    return;
                };
                if ch.consumers.remove(client_tag).is_some()
                    && self.session.capabilities.consumer_cancel_notify
                {
                    self.session.method(
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

    fn find_queue(&self, name: &str) -> Option<Arc<porter_core::queue::Queue>> {
        self.session.vhost.queue(name, self.session.owner).ok()
    }

    fn on_confirm(&mut self, confirm: ConfirmResult) {
        if !self.channels.contains_key(&confirm.channel) {
            return;
        }
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
        self.session
            .method(confirm.channel, AMQPClass::Basic(method));
    }
}

async fn publish_whole(
    ch: &mut Channel,
    session: &mut Session,
    publish: basic::Publish,
    properties: amq_protocol::protocol::basic::AMQPProperties,
    body: bytes::Bytes,
) -> Result<(), AmqpError> {
    let message = message_of(&publish, &properties, body, session)?;
    on_publish(ch, session, publish, message).await
}
