//! One client connection, and the only module that touches its socket: the protocol header, the
//! `start / tune / open` negotiation ([`handshake`]), then the event loop: frames from the
//! client, deliveries from queues, confirms from the confirmer tasks, heartbeats, resource
//! alarms. The loop hands frames and events to the commands ([`Channels`]), which answer into
//! one [`Out`]; it writes that out once per burst of events, so writes keep the order decisions
//! were made in.

mod handshake;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, connection, AMQPClass};
use futures::{FutureExt, StreamExt};
use porter_core::alarm::AlarmState;
use porter_core::queue::api::ConsumerEvent;
use porter_core::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::commands::{Channels, Flow};
use crate::config::{AmqpConfig, FRAME_MIN_SIZE};
use crate::error::{AmqpError, CONNECTION_FORCED};
use crate::frame::{Frame, FrameCodec, FrameError};
use crate::out::Out;
use crate::reply_to::ReplyRegistry;
use crate::session::{ConfirmResult, SessionFeeds};
use handshake::{handshake, Negotiated};

/// Time allowed for the protocol header and negotiation (RabbitMQ: `handshake_timeout`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the client's `close-ok`.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(2);
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

pub struct Context {
    pub broker: Arc<Broker>,
    pub config: Arc<AmqpConfig>,
    pub replies: Arc<ReplyRegistry>,
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
    let negotiated = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(&mut frames, &mut writer, peer, &ctx),
    )
    .await
    {
        Ok(Ok(negotiated)) => negotiated,
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
        feeds,
        frame_max,
        heartbeat,
        channel_max,
    } = negotiated;
    let mut conn = Connection {
        channels: Channels::new(session, channel_max),
        out: Out::new(frame_max),
        peer,
        heartbeat: Duration::from_secs(u64::from(heartbeat)),
        last_read: Instant::now(),
        last_write: Instant::now(),
        blocked: false,
        has_published: false,
    };
    let outcome = conn
        .serve(&mut frames, &mut writer, feeds, &ctx, shutdown)
        .await;
    if let Err(error) = &outcome {
        if error.code != 0 {
            tracing::warn!(%peer, code = error.code, text = %error.text, "amqp: closing connection");
            close_connection(&mut frames, &mut writer, error).await;
        }
    }
    conn.channels.release().await;
}

/// Sends `connection.close` and waits briefly for `close-ok`.
async fn close_connection(frames: &mut Frames, writer: &mut OwnedWriteHalf, error: &AmqpError) {
    let mut out = Out::new(FRAME_MIN_SIZE);
    out.connection_close(error);
    if writer.write_all(out.as_bytes()).await.is_err() {
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

/// The socket is gone (or must be dropped without a goodbye): code 0, nothing is sent.
fn gone() -> AmqpError {
    AmqpError {
        code: 0,
        text: String::new(),
        connection: true,
        class_id: 0,
        method_id: 0,
    }
}

struct Connection {
    channels: Channels,
    /// What to write when the current burst of events is handled.
    out: Out,
    peer: SocketAddr,
    heartbeat: Duration,
    last_read: Instant,
    last_write: Instant,
    /// A resource alarm is on and this connection publishes: its frames are not read.
    blocked: bool,
    has_published: bool,
}

impl Connection {
    /// Whether frames are read: not while blocked by an alarm or past the confirm backlog.
    fn reading(&self) -> bool {
        !self.blocked && !self.channels.session.confirms_backlogged()
    }

    async fn serve(
        &mut self,
        frames: &mut Frames,
        writer: &mut OwnedWriteHalf,
        feeds: SessionFeeds,
        ctx: &Context,
        shutdown: CancellationToken,
    ) -> Result<(), AmqpError> {
        let SessionFeeds {
            mut deliveries,
            mut confirms,
        } = feeds;
        let mut alarms = ctx.broker.alarms();
        let tick = if self.heartbeat.is_zero() {
            Duration::from_secs(3600)
        } else {
            (self.heartbeat / 2).max(Duration::from_millis(500))
        };
        let mut heartbeat = tokio::time::interval(tick);
        loop {
            let reading = self.reading();
            let event = tokio::select! {
                frame = frames.next(), if reading => Event::Frame(frame),
                Some(event) = deliveries.recv() => Event::Consumer(event),
                Some(confirm) = confirms.recv() => Event::Confirm(confirm),
                _ = heartbeat.tick() => {
                    if !self.heartbeat.is_zero() {
                        if self.last_read.elapsed() > self.heartbeat * 2 && reading {
                            tracing::warn!(peer = %self.peer, "amqp: missed heartbeats; closing");
                            return Err(gone());
                        }
                        if self.last_write.elapsed() >= tick {
                            self.out.heartbeat();
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
                if self.handle(event, &alarms).await? == Flow::ClientClosed {
                    self.channels.flush_acks();
                    self.channels.release().await;
                    self.out.method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    self.flush(writer).await?;
                    return Ok(());
                }
                handled += 1;
                if handled >= EVENTS_PER_WRITE_MAX || self.out.len() >= WRITE_BUFFER_BYTES {
                    break;
                }
                next = if let Ok(event) = deliveries.try_recv() {
                    Some(Event::Consumer(event))
                } else if let Ok(confirm) = confirms.try_recv() {
                    Some(Event::Confirm(confirm))
                } else if self.reading() {
                    frames.next().now_or_never().map(Event::Frame)
                } else {
                    None
                };
            }
            self.channels.flush_acks();
            self.flush(writer).await?;
        }
    }

    /// One event, handed to the commands.
    async fn handle(
        &mut self,
        event: Event,
        alarms: &watch::Receiver<AlarmState>,
    ) -> Result<Flow, AmqpError> {
        match event {
            Event::Frame(frame) => {
                self.last_read = Instant::now();
                match frame {
                    Some(Ok(frame)) => {
                        if let Frame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Publish(_))) =
                            &frame
                        {
                            self.on_publish(alarms);
                        }
                        self.channels.on_frame(frame, &mut self.out).await
                    }
                    Some(Err(FrameError::Io(_))) | None => Err(gone()),
                    Some(Err(e)) => Err(AmqpError::from_frame(&e)),
                }
            }
            Event::Consumer(event) => {
                self.channels.on_consumer_event(event, &mut self.out);
                Ok(Flow::Continue)
            }
            Event::Confirm(confirm) => {
                self.channels.on_confirm(confirm, &mut self.out);
                Ok(Flow::Continue)
            }
            Event::Idle => Ok(Flow::Continue),
        }
    }

    /// A connection that publishes during an alarm is blocked from here on (RabbitMQ blocks
    /// publishers, not consumers, so consumers can drain the backlog).
    fn on_publish(&mut self, alarms: &watch::Receiver<AlarmState>) {
        self.has_published = true;
        let alarm = *alarms.borrow();
        if alarm.any() && !self.blocked {
            self.on_alarm(true, alarm.reason());
        }
    }

    async fn flush(&mut self, writer: &mut OwnedWriteHalf) -> Result<(), AmqpError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = writer.write_all(self.out.as_bytes()).await;
        self.out.clear();
        self.last_write = Instant::now();
        result.map_err(|_| gone())
    }

    fn on_alarm(&mut self, raised: bool, reason: &str) {
        if raised == self.blocked {
            return;
        }
        if raised && !self.has_published {
            return;
        }
        self.blocked = raised;
        if self.channels.session.capabilities.connection_blocked {
            let method = if raised {
                connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: reason.into(),
                })
            } else {
                connection::AMQPMethod::Unblocked(connection::Unblocked {})
            };
            self.out.method(0, AMQPClass::Connection(method));
        }
    }
}
