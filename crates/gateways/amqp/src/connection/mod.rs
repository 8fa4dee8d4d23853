//! One client connection, and the only module that touches its stream: the protocol header,
//! the `start / tune / open` negotiation ([`handshake`]), both within the kit's handshake
//! deadline, then the event loop: frames from the client, deliveries from queues, confirms
//! from the confirmer tasks, heartbeats, resource alarms, and the kit's close requests. The
//! loop hands frames and events to the commands ([`Channels`]), which answer into one [`Out`];
//! once per burst of events it hands that out to the kit's outbound queue (charged to the
//! connection's memory share until written, under the write-stall deadline), so writes keep
//! the order decisions were made in.
//!
//! Whole publishes of a burst go to the core together at its end (see
//! [`crate::commands::publish`]).
//!
//! Memory: content bodies being assembled or batched and encoded bytes not yet written are charged to the
//! connection's share of the listener's budget; over its share the connection stops reading
//! frames and taking deliveries until writes catch up.

mod handshake;
mod protocol_header;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, connection, AMQPClass};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use porter_core::alarm::AlarmState;
use porter_core::queue::api::ConsumerEvent;
use porter_core::Broker;
use porter_gateway_kit::auth::StaticUsers;
use porter_gateway_kit::budget::Charge;
use porter_gateway_kit::deadlines::within;
use porter_gateway_kit::outbound::{outbound, OutboundFrame, OutboundSender, WriterGone};
use porter_gateway_kit::registry::ByteCounters;
use porter_gateway_kit::{CloseReason, ClosedBy, Connection, Deadline, Stream};
use tokio::io::{AsyncRead, ReadBuf, ReadHalf};
use tokio::sync::watch;
use tokio_util::codec::FramedRead;

use crate::commands::{Channels, Flow};
use crate::config::{AmqpConfig, FRAME_MIN_SIZE};
use crate::error::{AmqpError, CONNECTION_FORCED};
use crate::frame::{Frame, FrameCodec, FrameError};
use crate::limits::{
    CLOSE_OK_TIMEOUT, EVENTS_PER_WRITE_MAX, READ_BUFFER_BYTES, WRITE_BUFFER_BYTES,
};
use crate::out::Out;
use crate::reply_to::ReplyRegistry;
use crate::session::{ConfirmResult, SessionFeeds};
use handshake::{handshake, Negotiated};
use protocol_header::{read_protocol_header, Heard};

pub use protocol_header::PROTOCOL_HEADER;

pub struct Context {
    pub broker: Arc<Broker>,
    pub config: Arc<AmqpConfig>,
    pub replies: Arc<ReplyRegistry>,
    /// The configured users: the authenticator when the listener has none.
    pub users: StaticUsers,
}

type Frames<S> = FramedRead<Counted<ReadHalf<S>>, FrameCodec>;

/// What the connection's loop reacts to. One lives on the stack at a time, so the size of the
/// frame variant costs nothing worth a heap allocation per frame.
#[allow(clippy::large_enum_variant)]
enum Event {
    Frame(Option<Result<Frame, FrameError>>),
    Consumer(ConsumerEvent),
    Confirm(ConfirmResult),
    /// A timer, alarm or budget wake-up, already handled.
    Idle,
}

/// What [`ConnectionLoop::handle`] did with an event.
#[allow(clippy::large_enum_variant)] // one at a time, on the stack
enum Handled {
    Done(Result<Flow, Ending>),
    /// A frame for the commands.
    Frame(Frame),
}

/// How the event loop ended.
enum Ending {
    /// The client sent `connection.close` and got its `close-ok`.
    ClientClosed,
    /// The stream ended or broke; nothing more can be sent.
    Gone(&'static str),
    /// The client's first bytes were no AMQP 0-9-1 header; ours was sent back.
    WrongHeader(String),
    /// A connection error: `connection.close` with it, then wait for `close-ok`.
    Error(AmqpError),
    /// The kit asked the connection to close (shutdown, management): 320 goodbye.
    Asked(CloseReason),
    /// The kit's writer ended (write stall, broken socket): its reason.
    WriterEnded,
    /// No frame for two heartbeat intervals.
    Heartbeat(Duration),
}

/// Serves one accepted stream until it ends; returns why (the kit's listener logs it).
pub async fn run<S: Stream>(stream: S, conn: &Connection, ctx: Arc<Context>) -> CloseReason {
    let (reader, write_half) = tokio::io::split(stream);
    let (sender, writer) = outbound(write_half, conn.outbound_limits(), Some(conn.counters()));
    let mut writer = tokio::spawn(writer.run());
    let mut frames = FramedRead::new(
        Counted {
            inner: reader,
            counters: conn.counters(),
        },
        FrameCodec {
            frame_max: ctx.config.frame_max.max(FRAME_MIN_SIZE),
        },
    );
    let opened = within(
        Deadline::Handshake,
        conn.deadlines().handshake,
        open(&mut frames, &sender, conn, &ctx),
    )
    .await;
    let ending = match opened {
        Err(deadline) => {
            drop(sender);
            let _ = writer.await;
            return deadline;
        }
        Ok(Err(ending)) => ending,
        Ok(Ok(mut negotiated)) => {
            conn.set_user(negotiated.session.user.clone());
            negotiated.session.operations = conn.operations();
            let mut served = ConnectionLoop {
                channels: Channels::new(negotiated.session, negotiated.channel_max),
                out: Out::new(negotiated.frame_max),
                conn,
                heartbeat: Duration::from_secs(u64::from(negotiated.heartbeat)),
                last_read: Instant::now(),
                last_write: Instant::now(),
                blocked: false,
                has_published: false,
                bodies: conn.budget().empty(),
            };
            let ending = served
                .serve(&mut frames, &sender, negotiated.feeds, &ctx)
                .await;
            served.channels.release().await;
            ending
        }
    };
    let reason = match ending {
        Ending::ClientClosed => CloseReason::peer("client closed the connection"),
        Ending::Gone(why) => CloseReason::peer(why),
        Ending::WrongHeader(why) => CloseReason::protocol(0, why),
        Ending::Heartbeat(limit) => CloseReason::deadline(Deadline::Heartbeat, limit),
        Ending::Error(error) => {
            goodbye(&mut frames, &sender, &error).await;
            CloseReason::protocol(u32::from(error.code), error.text)
        }
        Ending::Asked(reason) => {
            let error = AmqpError::connection(CONNECTION_FORCED, asked_text(&reason));
            goodbye(&mut frames, &sender, &error).await;
            reason.with_code(u32::from(CONNECTION_FORCED))
        }
        Ending::WriterEnded => CloseReason::peer("connection closed"),
    };
    // Dropping the last sender lets the writer finish what is queued, then shut down.
    drop(sender);
    match (&mut writer).await {
        Ok((_, Err(written))) if !reason.is_error() => written,
        _ => reason,
    }
}

/// The protocol header and the negotiation.
async fn open<S: Stream>(
    frames: &mut Frames<S>,
    sender: &OutboundSender,
    conn: &Connection,
    ctx: &Context,
) -> Result<Negotiated, Ending> {
    match read_protocol_header(frames.get_mut(), conn.info().local, conn.peer()).await {
        Heard::Ours { pipelined } => frames.read_buffer_mut().extend_from_slice(&pipelined),
        Heard::Other { why } => {
            let _ = sender
                .send(OutboundFrame {
                    bytes: Bytes::from_static(PROTOCOL_HEADER),
                    charge: None,
                })
                .await;
            return Err(Ending::WrongHeader(why));
        }
        Heard::Gone => return Err(Ending::Gone("no protocol header")),
    }
    handshake(
        frames,
        sender,
        conn.peer(),
        conn.authenticator(),
        conn.client_login(),
        ctx,
    )
    .await
    .map_err(|error| match error {
        Some(error) => Ending::Error(error),
        None => Ending::Gone("handshake abandoned"),
    })
}

/// The next frame, as `frames.next()`, but the read buffer is held only while bytes arrive:
/// when the socket has nothing more and every buffered byte was decoded, the buffer is freed
/// (an idle connection holds none, and one that once read a `frame_max` frame does not keep
/// that much), and it is allocated again, at [`READ_BUFFER_BYTES`], when a read is asked for.
/// Cancel-safe, as `FramedRead` is.
async fn next_frame<S: Stream>(frames: &mut Frames<S>) -> Option<Result<Frame, FrameError>> {
    std::future::poll_fn(|cx| {
        if frames.read_buffer().capacity() == 0 {
            frames.read_buffer_mut().reserve(READ_BUFFER_BYTES);
        }
        let polled = frames.poll_next_unpin(cx);
        if polled.is_pending() && frames.read_buffer().is_empty() {
            *frames.read_buffer_mut() = BytesMut::new();
        }
        polled
    })
    .await
}

/// Queues what `out` holds for writing, with `charge` (if any) released once written.
async fn send(
    sender: &OutboundSender,
    out: &mut Out,
    charge: Option<Charge>,
) -> Result<(), WriterGone> {
    if out.is_empty() {
        return Ok(());
    }
    sender
        .send(OutboundFrame {
            bytes: Bytes::from(out.take_bytes()),
            charge,
        })
        .await
}

/// Sends `connection.close` and waits briefly for `close-ok`.
async fn goodbye<S: Stream>(frames: &mut Frames<S>, sender: &OutboundSender, error: &AmqpError) {
    let mut out = Out::new(FRAME_MIN_SIZE);
    out.connection_close(error);
    if send(sender, &mut out, None).await.is_err() {
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

/// The `connection.close` text for a close the kit asked for.
fn asked_text(reason: &CloseReason) -> String {
    match reason.by {
        ClosedBy::Shutdown => "broker shutdown".to_string(),
        _ => reason.text.to_string(),
    }
}

/// The read half, counting bytes into the connection's registry entry.
struct Counted<R> {
    inner: R,
    counters: Arc<ByteCounters>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.counters.count_in(read as u64);
        }
        polled
    }
}

struct ConnectionLoop<'c> {
    channels: Channels,
    /// What to write when the current burst of events is handled.
    out: Out,
    conn: &'c Connection,
    heartbeat: Duration,
    last_read: Instant,
    last_write: Instant,
    /// A resource alarm is on and this connection publishes: its frames are not read.
    blocked: bool,
    has_published: bool,
    /// The content bodies the channels are assembling, against the connection's share.
    bodies: Charge,
}

impl ConnectionLoop<'_> {
    /// Whether frames are read: not while blocked by an alarm or past the confirm backlog.
    fn reading(&self) -> bool {
        !self.blocked && !self.channels.session.confirms_backlogged()
    }

    /// Whether the connection holds less than its share of the budget (so it may read frames
    /// and take deliveries).
    fn has_room(&self) -> bool {
        self.conn.budget().has_room(1)
    }

    async fn serve<S: Stream>(
        &mut self,
        frames: &mut Frames<S>,
        sender: &OutboundSender,
        feeds: SessionFeeds,
        ctx: &Context,
    ) -> Ending {
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
        let conn = self.conn;
        let mut describe = conn.describe_requests();
        loop {
            let reading = self.reading();
            let room = self.has_room();
            let event = tokio::select! {
                frame = next_frame(frames), if reading && room => Event::Frame(frame),
                Some(event) = deliveries.recv(), if room => Event::Consumer(event),
                Some(confirm) = confirms.recv() => Event::Confirm(confirm),
                _ = conn.budget().charge(1), if !room => Event::Idle,
                _ = heartbeat.tick() => {
                    if !self.heartbeat.is_zero() {
                        if self.last_read.elapsed() > self.heartbeat * 2 && reading && room {
                            return Ending::Heartbeat(self.heartbeat * 2);
                        }
                        if self.last_write.elapsed() >= tick {
                            self.out.heartbeat();
                        }
                    }
                    Event::Idle
                }
                Some(reply) = describe.recv() => {
                    let _ = reply.send(self.channels.describe());
                    Event::Idle
                }
                Ok(()) = alarms.changed() => {
                    let state = *alarms.borrow_and_update();
                    self.on_alarm(state.any(), state.reason());
                    Event::Idle
                }
                reason = conn.closing() => {
                    if self.flush(sender).await.is_err() {
                        return Ending::WriterEnded;
                    }
                    return Ending::Asked(reason);
                }
                _ = sender.closed() => return Ending::WriterEnded,
            };
            // Handle this event and whatever else is already waiting (buffered frames,
            // deliveries, confirms), then write once: one write for many frames, and acks
            // coalesced per queue.
            let mut next = Some(event);
            let mut handled = 0;
            while let Some(event) = next.take() {
                let flow = match self.handle(event, &alarms) {
                    Handled::Done(flow) => flow,
                    // Awaited here, not inside `handle`: an async fn keeps its by-value
                    // arguments for as long as it lives, so each level would add a copy of the
                    // frame to every connection's task, idle or not (issue 14).
                    Handled::Frame(frame) => {
                        let flow = self.channels.on_frame(frame, &mut self.out).await;
                        self.charge_bodies();
                        flow.map_err(Ending::Error)
                    }
                };
                match flow {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::ClientClosed) => {
                        // connection.close already sent the batched publishes on.
                        self.channels.flush_acks();
                        self.channels.release().await;
                        self.out.method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                connection::CloseOk {},
                            )),
                        );
                        let _ = self.flush(sender).await;
                        return Ending::ClientClosed;
                    }
                    Err(ending) => {
                        // What was read and decided before the error still takes effect and
                        // goes out, in order.
                        let _ = self.channels.end_burst(&mut self.out).await;
                        let _ = self.flush(sender).await;
                        return ending;
                    }
                }
                handled += 1;
                if handled >= EVENTS_PER_WRITE_MAX || self.out.len() >= WRITE_BUFFER_BYTES {
                    break;
                }
                let room = self.has_room();
                next = if let Some(event) = deliveries.try_recv().ok().filter(|_| room) {
                    Some(Event::Consumer(event))
                } else if let Ok(confirm) = confirms.try_recv() {
                    Some(Event::Confirm(confirm))
                } else if self.reading() && room {
                    frames.next().now_or_never().map(Event::Frame)
                } else {
                    None
                };
            }
            let published = self.channels.end_burst(&mut self.out).await;
            self.charge_bodies();
            if self.flush(sender).await.is_err() {
                return Ending::WriterEnded;
            }
            if let Err(error) = published {
                return Ending::Error(error);
            }
        }
    }

    /// One event: consumer events, confirms and timers are handled here; a frame is handed back
    /// for the caller to give to the commands.
    fn handle(&mut self, event: Event, alarms: &watch::Receiver<AlarmState>) -> Handled {
        let flow = match event {
            Event::Frame(frame) => {
                self.last_read = Instant::now();
                match frame {
                    Some(Ok(frame)) => {
                        if let Frame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Publish(_))) =
                            &frame
                        {
                            self.on_publish(alarms);
                        }
                        return Handled::Frame(frame);
                    }
                    Some(Err(FrameError::Io(_))) | None => Err(Ending::Gone("end of stream")),
                    Some(Err(e)) => Err(Ending::Error(AmqpError::from_frame(&e))),
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
        };
        Handled::Done(flow)
    }

    /// Keeps the bodies' charge equal to the bytes the channels hold in unfinished contents.
    fn charge_bodies(&mut self) {
        let held = self.channels.content_bytes();
        let charged = self.bodies.bytes();
        if held > charged {
            self.bodies.grow_now(held - charged);
        } else if held < charged {
            self.bodies.shrink_to(held);
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

    /// Hands the burst's bytes to the writer, charged to the connection until written.
    async fn flush(&mut self, sender: &OutboundSender) -> Result<(), WriterGone> {
        if self.out.is_empty() {
            return Ok(());
        }
        let charge = self.conn.budget().charge_now(self.out.len() as u64);
        self.last_write = Instant::now();
        send(sender, &mut self.out, Some(charge)).await
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
