//! The only module doing I/O: one STOMP connection over any [`Stream`] (TCP from the kit's
//! listener, or a WebSocket the HTTP gateway adapts). CONNECT / STOMP within the handshake
//! deadline (version negotiation, login, heart-beats), then an event loop over client frames,
//! queue deliveries, Kafka records, heart-beat timers and the kit's close requests. Answers
//! are gathered ([`crate::limits::EVENTS_PER_WRITE_MAX`], [`crate::limits::WRITE_BUFFER_BYTES`])
//! and written under the write-stall deadline, so a client that stops reading is closed rather
//! than buffered for. Any protocol error is an ERROR frame (with `message` and a body that
//! explains), a log line, and the end of the connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use porter_core::broker::limits::ClientConnection;
use porter_core::publish::PUBLISH_BATCH_MAX;
use porter_core::queue::api::ConsumerEvent;
use porter_gateway_kit::deadlines::within;
use porter_gateway_kit::sniff::http_bad_request;
use porter_gateway_kit::{
    sniff, Charge, CloseReason, Connection, Deadline, IdleTimer, LazyBufReader, Stream,
    WireProtocol, WrongProtocol,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::commands::{self, send};
use crate::error::StompError;
use crate::frame::{decode, encode, Command, Decoded, Frame, FrameError};
use crate::kafka::KafkaRecord;
use crate::limits::{
    EVENTS_PER_WRITE_MAX, HEARTBEAT_GRACE_FACTOR, HEARTBEAT_MAX, LINGER, LINGER_BYTES_MAX,
    READ_BUFFER_BYTES, WRITE_BUFFER_BYTES,
};
use crate::session::{Context, Session, Version};

/// How the connection ended, before it is reported.
enum End {
    Closed(CloseReason),
    /// Answer with ERROR, then close.
    Error(StompError, Option<String>),
    /// The broker asked the connection to close (shutdown, a management close): ERROR as
    /// STOMP's goodbye, and the close keeps its reason.
    Goodbye(CloseReason),
}

impl From<std::io::Error> for End {
    fn from(e: std::io::Error) -> Self {
        End::Closed(CloseReason::peer(format!("i/o error: {e}")))
    }
}

struct Io<S: AsyncRead + AsyncWrite> {
    reader: LazyBufReader<tokio::io::ReadHalf<S>>,
    writer: tokio::io::WriteHalf<S>,
    buf: BytesMut,
    /// What `buf` holds of a partial frame, charged to the connection's budget.
    charge: Option<Charge>,
    escapes: bool,
    write_stall: Duration,
}

impl<S: AsyncRead + AsyncWrite + Send> Io<S> {
    /// Reads more bytes into `buf`; 0 at end of stream. Cancel-safe: bytes are consumed
    /// from the reader only when copied, and a charge waited for is released if dropped.
    ///
    /// A partial frame in `buf` is charged to the connection's share of the listener's memory
    /// budget before more bytes are read: many clients each sending a large frame slowly then
    /// wait for each other instead of holding `connections_max × frame_bytes_max`. An empty
    /// buffer (an idle connection) is charged nothing.
    async fn fill(&mut self, conn: &Connection) -> std::io::Result<usize> {
        if !self.buf.is_empty() {
            let want = (self.buf.len() + READ_BUFFER_BYTES) as u64;
            let held = self.charge.as_ref().map_or(0, Charge::bytes);
            if want > held {
                let more = conn.budget().charge(want - held).await;
                match &mut self.charge {
                    Some(charge) => charge.merge(more),
                    None => self.charge = Some(more),
                }
            }
        }
        let chunk = self.reader.fill_buf().await?;
        let n = chunk.len();
        self.buf.extend_from_slice(chunk);
        self.reader.consume(n);
        Ok(n)
    }

    async fn write(&mut self, frames: &[Frame], conn: &Connection) -> Result<(), End> {
        if frames.is_empty() {
            return Ok(());
        }
        let mut bytes = BytesMut::new();
        for f in frames {
            encode(f, &mut bytes, self.escapes);
        }
        self.write_bytes(&bytes, conn).await
    }

    async fn write_bytes(&mut self, bytes: &[u8], conn: &Connection) -> Result<(), End> {
        let write = async {
            self.writer.write_all(bytes).await?;
            self.writer.flush().await
        };
        // A client that stopped reading must not hold up the broker's shutdown or a
        // management close: those end the write too.
        let written = tokio::select! {
            written = within(Deadline::WriteStall, self.write_stall, write) => written,
            reason = conn.closing() => Err(reason),
        };
        match written {
            Ok(Ok(())) => {
                conn.counters().count_out(bytes.len() as u64);
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(reason) => Err(End::Closed(reason)),
        }
    }

    /// The ERROR frame for `error`, written as well as the peer lets us, then the close.
    async fn fail(
        &mut self,
        error: StompError,
        receipt: Option<String>,
        conn: &Connection,
    ) -> CloseReason {
        let text = error.to_string();
        let mut frame = Frame::new(Command::Error)
            .with("message", error.message())
            .with("content-type", "text/plain");
        if let Some(r) = receipt {
            frame.push("receipt-id", r);
        }
        frame.body = bytes::Bytes::from(text.clone());
        let peer = conn.peer();
        if error.is_client_error() {
            tracing::info!(%peer, message = error.message(), error = %text, "stomp protocol error: ERROR sent, closing");
        } else {
            tracing::warn!(%peer, message = error.message(), error = %text, "stomp error: ERROR sent, closing");
        }
        let _ = self.write(std::slice::from_ref(&frame), conn).await;
        self.linger().await;
        match error {
            StompError::Limit(_)
            | StompError::Frame(FrameError::FrameTooLarge(_))
            | StompError::Frame(FrameError::TooManyHeaders(_))
            | StompError::Frame(FrameError::LineTooLong(_)) => CloseReason::limit(0, text),
            _ => CloseReason::protocol(0, text),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Send> Io<S> {
    /// STOMP's goodbye when the broker closes a connection: an ERROR frame naming why.
    async fn goodbye(&mut self, reason: CloseReason, conn: &Connection) -> CloseReason {
        let mut frame = Frame::new(Command::Error)
            .with("message", "connection closed by the broker")
            .with("content-type", "text/plain");
        frame.body = bytes::Bytes::from(reason.to_string());
        // The close was asked for, so a write now ends at once: give the goodbye its own
        // short deadline instead.
        let mut bytes = BytesMut::new();
        encode(&frame, &mut bytes, self.escapes);
        let written = tokio::time::timeout(LINGER, async {
            self.writer.write_all(&bytes).await?;
            self.writer.flush().await
        })
        .await;
        if matches!(written, Ok(Ok(()))) {
            conn.counters().count_out(bytes.len() as u64);
        }
        self.linger().await;
        reason
    }

    /// Ends our side (FIN after the last frame), then reads and drops what the client still
    /// sends, a bounded while: closing a socket with unread bytes would reset it, and the
    /// client could lose the ERROR frame it has not read yet.
    async fn linger(&mut self) {
        let _ = tokio::time::timeout(LINGER, self.writer.shutdown()).await;
        self.buf = BytesMut::new();
        let drain = async {
            let mut dropped = 0;
            while dropped < LINGER_BYTES_MAX {
                match self.reader.fill_buf().await {
                    Ok([]) | Err(_) => break,
                    Ok(chunk) => {
                        let n = chunk.len();
                        self.reader.consume(n);
                        dropped += n;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// What CONNECT settled.
struct Connected {
    version: Version,
    user: String,
    vhost: porter_core::VirtualHost,
    /// Counted against the vhost's and the user's `max-connections` while the session lives.
    slot: ClientConnection,
    /// Beats we send, and the silence after which the client is gone.
    send_every: Option<Duration>,
    silent_after: Option<Duration>,
}

pub async fn run<S: Stream>(stream: S, conn: &Connection, ctx: Arc<Context>) -> CloseReason {
    let (reader, writer) = tokio::io::split(stream);
    let mut io = Io {
        reader: LazyBufReader::with_capacity(READ_BUFFER_BYTES, reader),
        writer,
        buf: BytesMut::new(),
        charge: None,
        escapes: false,
        write_stall: ctx.config.write_stall,
    };
    let connected = match within(
        Deadline::Handshake,
        ctx.config.handshake_timeout,
        handshake(&mut io, conn, &ctx),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(End::Closed(reason))) => return reason,
        Ok(Err(End::Error(e, receipt))) => return io.fail(e, receipt, conn).await,
        Ok(Err(End::Goodbye(reason))) => return io.goodbye(reason, conn).await,
        Err(reason) => {
            let e = StompError::protocol(
                "handshake timeout",
                format!("no CONNECT frame within {:?}", ctx.config.handshake_timeout),
            );
            io.fail(e, None, conn).await;
            return reason;
        }
    };
    io.escapes = connected.version.escapes();
    let _slot = connected.slot;
    let mut session = Session::new(
        ctx.clone(),
        connected.vhost,
        connected.version,
        connected.user,
        conn.close_token(),
    );
    session.permissions_checked = conn
        .authenticator()
        .or(ctx.authenticator.as_deref())
        .is_some_and(|a| a.enforces_permissions());
    let end = serve(
        &mut io,
        conn,
        &mut session,
        connected.send_every,
        connected.silent_after,
    )
    .await;
    session.close().await;
    match end {
        End::Closed(reason) => reason,
        End::Error(e, receipt) => io.fail(e, receipt, conn).await,
        End::Goodbye(reason) => io.goodbye(reason, conn).await,
    }
}

async fn handshake<S: AsyncRead + AsyncWrite + Send>(
    io: &mut Io<S>,
    conn: &Connection,
    ctx: &Context,
) -> Result<Connected, End> {
    let limits = ctx.config.frame_limits();
    let mut first_read = true;
    let frame = loop {
        if first_read && !io.buf.is_empty() {
            first_read = false;
            other_protocol(io, conn).await?;
        }
        match decode(&mut io.buf, &limits, false) {
            Ok(Some(Decoded::Heartbeat)) => continue,
            Ok(Some(Decoded::Frame(f))) => break f,
            Ok(None) => {}
            Err(e) => return Err(End::Error(e.into(), None)),
        }
        let n = io.fill(conn).await?;
        conn.counters().count_in(n as u64);
        if n == 0 {
            return Err(End::Closed(CloseReason::peer(
                "end of stream before CONNECT",
            )));
        }
    };
    let receipt = frame.header("receipt").map(str::to_string);
    let refuse = |e: StompError| End::Error(e, receipt.clone());
    if !matches!(frame.command, Command::Connect | Command::Stomp) {
        return Err(refuse(StompError::protocol(
            "expected CONNECT",
            format!(
                "the first frame must be CONNECT or STOMP, not {}",
                frame.command.as_str()
            ),
        )));
    }
    let Some(version) = Version::negotiate(frame.header("accept-version")) else {
        return Err(refuse(StompError::protocol(
            "version not supported",
            "Supported protocol versions are 1.0,1.1,1.2",
        )));
    };
    let user = login(&frame, conn, ctx).await.map_err(refuse)?;
    conn.set_user(user.clone());
    // RabbitMQ reads the virtual host from `host`; clients often send a host name there, so
    // a host that is not a virtual host means the default one.
    let vhost = frame
        .header("host")
        .and_then(|h| ctx.broker.vhost(h).ok())
        .map_or_else(|| ctx.broker.vhost("/"), Ok)
        .map_err(|e| refuse(e.into()))?;
    let slot = ctx
        .broker
        .open_client_connection(&user, vhost.name())
        .map_err(|e| {
            tracing::warn!(peer = %conn.peer(), user = %user, vhost = %vhost.name(), error = %e, "stomp: connection limit");
            refuse(StompError::protocol(
                "access refused",
                format!("access to vhost '{}' refused for user '{user}': {e}", vhost.name()),
            ))
        })?;
    let (client_send, client_want) = heart_beat(frame.header("heart-beat"));
    let min = ctx.config.heartbeat_min.as_millis() as u64;
    // A client's numbers are clamped: `u64::MAX` ms would overflow the timers.
    let max = HEARTBEAT_MAX.as_millis() as u64;
    let (client_send, client_want) = (client_send.min(max), client_want.min(max));
    // We send as often as the client wants and expect beats as often as it offers (never
    // faster than the minimum); both sides then compute the same intervals from the header.
    let send_ms = if client_want == 0 {
        0
    } else {
        client_want.max(min)
    };
    let want_ms = if client_send == 0 {
        0
    } else {
        client_send.max(min)
    };
    let mut connected = Frame::new(Command::Connected)
        .with("version", version.as_str())
        .with("heart-beat", format!("{send_ms},{want_ms}"))
        .with("server", concat!("Porter/", env!("CARGO_PKG_VERSION")))
        .with("session", format!("session-{}", conn.id().0));
    if version == Version::V1_0 {
        connected.headers.retain(|(k, _)| k != "version");
    }
    io.write(&[connected], conn).await?;
    Ok(Connected {
        version,
        user,
        vhost,
        slot,
        send_every: (send_ms > 0).then(|| Duration::from_millis(send_ms)),
        silent_after: (want_ms > 0)
            .then(|| Duration::from_millis(want_ms * u64::from(HEARTBEAT_GRACE_FACTOR))),
    })
}

/// A client speaking another protocol (a Kafka or AMQP client on the wrong port, a browser)
/// is told so in the log line, at once, rather than at the handshake deadline; HTTP clients
/// get a 400 they can show.
async fn other_protocol<S: AsyncRead + AsyncWrite + Send>(
    io: &mut Io<S>,
    conn: &Connection,
) -> Result<(), End> {
    let found = match sniff(&io.buf) {
        None | Some(WireProtocol::Stomp) => return Ok(()),
        Some(found) => found,
    };
    if found == WireProtocol::Http {
        let _ = io.write_bytes(&http_bad_request("STOMP"), conn).await;
    }
    let info = conn.info();
    let why = WrongProtocol {
        found,
        listener: "STOMP",
        local: info.local,
        peer: info.peer,
    };
    Err(End::Closed(CloseReason::protocol(0, why.to_string())))
}

/// `heart-beat: cx,cy`; absent or malformed is `0,0` (none).
fn heart_beat(text: Option<&str>) -> (u64, u64) {
    text.and_then(|t| t.split_once(','))
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .unwrap_or((0, 0))
}

/// `login` / `passcode` checked by the listener's authenticator, else the protocol's own;
/// no `login` logs in as the user the client's certificate names (mutual TLS, RabbitMQ's
/// `ssl_cert_login`), else as the configured default user (RabbitMQ's `default_user`), which
/// the store still checks: `guest`, loopback-only by default, is no way in from elsewhere.
/// With neither authenticator (a test harness), any login is taken as given.
async fn login(frame: &Frame, conn: &Connection, ctx: &Context) -> Result<String, StompError> {
    let denied = || StompError::protocol("access refused", "bad login or passcode");
    let auth = conn.authenticator().or(ctx.authenticator.as_deref());
    let outcome = match (frame.header("login"), conn.client_login(), auth) {
        (Some(user), _, None) => return Ok(user.to_string()),
        (Some(user), _, Some(auth)) => {
            let credentials = porter_gateway_kit::auth::Credentials {
                mechanism: "PLAIN",
                user,
                secret: frame.header("passcode").unwrap_or("").as_bytes(),
                peer: conn.peer(),
            };
            auth.authenticate(credentials).await
        }
        (None, Some(user), Some(auth)) => auth.authenticate_certificate(user, conn.peer()).await,
        (None, None, Some(auth)) => {
            let user = ctx.config.default_user.as_deref().ok_or_else(denied)?;
            auth.authenticate_default_user(user, conn.peer()).await
        }
        (None, _, None) => return ctx.config.default_user.clone().ok_or_else(denied),
    };
    match outcome {
        Ok(principal) => Ok(principal.user),
        Err(e) => {
            if e.is_throttled() {
                tracing::debug!(peer = %conn.peer(), error = %e, "stomp login refused");
            } else {
                tracing::info!(peer = %conn.peer(), error = %e, "stomp login refused");
            }
            Err(denied())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve<S: AsyncRead + AsyncWrite + Send>(
    io: &mut Io<S>,
    conn: &Connection,
    session: &mut Session,
    send_every: Option<Duration>,
    silent_after: Option<Duration>,
) -> End {
    let limits = session.ctx.config.frame_limits();
    let mut beat = tokio::time::interval(send_every.unwrap_or(Duration::from_secs(86_400)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.reset();
    let mut wrote = false;
    let mut silence = IdleTimer::new(silent_after);
    let mut kafka: Option<mpsc::Receiver<KafkaRecord>> = None;
    let mut deliveries: Option<mpsc::Receiver<ConsumerEvent>> = None;
    loop {
        // Every whole frame read so far. Consecutive SENDs go to the core as one burst (one
        // append per destination queue), before the next frame of another kind is handled;
        // a burst holds only frames already read, so no more than the read buffer did.
        let mut burst: Vec<Frame> = Vec::new();
        loop {
            let (frame, undecodable) = match decode(&mut io.buf, &limits, io.escapes) {
                Ok(Some(Decoded::Heartbeat)) => continue,
                Ok(Some(Decoded::Frame(f))) => (Some(f), None),
                Ok(None) => (None, None),
                Err(e) => (None, Some(e)),
            };
            if let Some(f) = frame.as_ref() {
                if send::batchable(f) && burst.len() < PUBLISH_BATCH_MAX {
                    burst.extend(frame);
                    continue;
                }
            }
            if !burst.is_empty() {
                if let Err((e, receipt)) =
                    send::send_burst(session, std::mem::take(&mut burst)).await
                {
                    let _ = io.write(&std::mem::take(&mut session.out), conn).await;
                    return End::Error(e, receipt);
                }
            }
            if let Some(e) = undecodable {
                let _ = io.write(&std::mem::take(&mut session.out), conn).await;
                return End::Error(e.into(), None);
            }
            let Some(frame) = frame else { break };
            if send::batchable(&frame) {
                // The burst was full: this one starts the next.
                burst.push(frame);
                continue;
            }
            let receipt = frame.header("receipt").map(str::to_string);
            if let Err(e) = commands::handle(session, frame).await {
                let _ = io.write(&std::mem::take(&mut session.out), conn).await;
                return End::Error(e, receipt);
            }
            if session.disconnecting {
                let _ = io.write(&std::mem::take(&mut session.out), conn).await;
                io.linger().await;
                return End::Closed(CloseReason::peer("DISCONNECT"));
            }
            if session.out.len() >= EVENTS_PER_WRITE_MAX {
                if let Err(end) = io.write(&std::mem::take(&mut session.out), conn).await {
                    return end;
                }
                wrote = true;
            }
        }
        if !session.out.is_empty() {
            if let Err(end) = io.write(&std::mem::take(&mut session.out), conn).await {
                return end;
            }
            wrote = true;
        }
        if io.buf.is_empty() {
            // Hold no read buffer, and no charge, while idle.
            if io.buf.capacity() > 0 {
                io.buf = BytesMut::new();
            }
            io.charge = None;
        } else if let Some(charge) = &mut io.charge {
            charge.shrink_to((io.buf.len() + READ_BUFFER_BYTES) as u64);
        }
        // A subscription may have made a feed while the frames above were handled.
        if kafka.is_none() {
            kafka = session.take_kafka_receiver();
        }
        if deliveries.is_none() {
            deliveries = session.take_delivery_receiver();
        }
        // Not biased: a client that keeps sending must still get its deliveries and beats.
        tokio::select! {
            reason = conn.closing() => {
                return End::Goodbye(reason);
            }
            read = io.fill(conn) => match read {
                Ok(0) => return End::Closed(CloseReason::peer("end of stream")),
                Ok(n) => {
                    conn.counters().count_in(n as u64);
                    silence.touch();
                }
                Err(e) => return e.into(),
            },
            Some(event) = next(&mut deliveries) => {
                session.on_consumer_event(event);
                gather(session, &mut deliveries, &mut kafka);
            }
            Some(record) = next(&mut kafka) => {
                session.on_kafka_record(record);
                gather(session, &mut deliveries, &mut kafka);
            }
            _ = beat.tick(), if send_every.is_some() => {
                if !wrote {
                    if let Err(end) = io.write_bytes(b"\n", conn).await {
                        return end;
                    }
                }
                wrote = false;
            }
            _ = silence.expired() => {
                let limit = silent_after.unwrap_or_default();
                tracing::info!(peer = %conn.peer(), ?limit, "stomp client sent no heart-beat in time; closing");
                return End::Closed(CloseReason::deadline(Deadline::Heartbeat, limit));
            }
        }
    }
}

/// The next item of a feed, once there is one; never before.
async fn next<T>(feed: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match feed {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// More deliveries that are ready, up to one write's worth.
fn gather(
    session: &mut Session,
    deliveries: &mut Option<mpsc::Receiver<ConsumerEvent>>,
    kafka: &mut Option<mpsc::Receiver<KafkaRecord>>,
) {
    let mut bytes: usize = session.out.iter().map(Frame::size).sum();
    while session.out.len() < EVENTS_PER_WRITE_MAX && bytes < WRITE_BUFFER_BYTES {
        let before = session.out.len();
        if let Some(event) = deliveries.as_mut().and_then(|d| d.try_recv().ok()) {
            session.on_consumer_event(event);
        } else if let Some(record) = kafka.as_mut().and_then(|k| k.try_recv().ok()) {
            session.on_kafka_record(record);
        } else {
            break;
        }
        bytes += session.out[before..].iter().map(Frame::size).sum::<usize>();
    }
}
