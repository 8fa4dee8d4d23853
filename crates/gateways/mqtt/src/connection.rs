//! One MQTT connection: CONNECT (within the handshake deadline), then the event loop over
//! packets from the client, deliveries from the session's queues and acknowledgements whose
//! publishes committed, until the client leaves, breaks a rule, goes silent past its keep-alive,
//! is taken over by a newer connection with its client id, or the broker asks it to close.
//! mini-redis layering: [`PacketReader`] (frames) → `codec` (packets) → `Session` (commands) →
//! the core.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use porter_core::broker::limits::ClientConnection;
use porter_gateway_kit::deadlines::within;
use porter_gateway_kit::registry::ByteCounters;
use porter_gateway_kit::{
    CloseReason, Connection, Deadline, OutboundFrame, OutboundSender, Stream,
};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnAckProperties, ConnectReturnCode, Disconnect as DisconnectPacket,
    DisconnectProperties, DisconnectReasonCode, Packet, PingResp,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use porter_core::queue::api::ConsumerEvent;

use crate::codec::{self, DecodeError, Inbound, ProtocolRefusal, Version};
use crate::context::Context;
use crate::error::{disconnect_number, Disconnect, Refusal};
use crate::limits::{CLIENT_ID_BYTES_MAX, DELIVERIES_PER_TURN};
use crate::login::{authenticate, ScramLogin};
use crate::publish::PendingAcks;
use crate::reauth::Reauthentication;
use crate::registry::Claim;
use crate::session::{ClientLimits, Session};
use crate::will::{self, Will};

/// Bytes per outbound write (one packet may make it larger).
pub(crate) const WRITE_BYTES: usize = 64 << 10;

/// Packets handled per event-loop turn at most (what one read brought in).
const PACKETS_PER_TURN: usize = 256;

/// How long input is drained after the server's DISCONNECT, before the socket closes.
const DISCONNECT_LINGER: Duration = Duration::from_secs(2);

/// Bytes reserved for a read when the buffer is empty: an idle connection holds no more.
const READ_CHUNK: usize = 512;

/// The read half with its buffer: at most one packet (`max`) plus what arrived with it.
pub(crate) struct PacketReader<R> {
    inner: R,
    buf: BytesMut,
    counters: Arc<ByteCounters>,
    max: usize,
}

#[derive(Debug)]
enum ReadError {
    Io(std::io::Error),
    Decode(DecodeError),
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    /// Reads more bytes; 0 at end of stream. Cancel-safe.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        let n = self.inner.read_buf(&mut self.buf).await?;
        self.counters.count_in(n as u64);
        Ok(n)
    }

    /// The next packet if a whole one is buffered already (no read).
    fn buffered(&mut self, version: Version) -> Result<Option<Inbound>, ReadError> {
        let packet = codec::decode(&mut self.buf, version, self.max).map_err(ReadError::Decode)?;
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        Ok(packet)
    }

    /// The next packet, `None` at end of stream. Cancel-safe: what was read stays buffered.
    async fn next(&mut self, version: Version) -> Result<Option<Inbound>, ReadError> {
        loop {
            if let Some(packet) =
                codec::decode(&mut self.buf, version, self.max).map_err(ReadError::Decode)?
            {
                if self.buf.is_empty() {
                    self.buf = BytesMut::new();
                }
                return Ok(Some(packet));
            }
            if self.read_more().await.map_err(ReadError::Io)? == 0 {
                return Ok(None);
            }
        }
    }
}

/// How the event loop ended.
enum Ending {
    /// DISCONNECT from the client; `true` asks for the will (MQTT 5 reason 0x04).
    ClientDisconnect { will: bool },
    /// The client went away (end of stream, broken socket).
    Gone(String),
    /// The server ends it for a reason (MQTT 5: told with DISCONNECT).
    Server(Disconnect),
    /// The kit asked (shutdown, management close).
    Asked(CloseReason),
    /// A newer connection with the same client id.
    TakenOver,
    /// Nothing from the client for 1.5 × its keep-alive.
    KeepAlive(Duration),
    /// The outbound writer ended (write stall, broken socket).
    WriterGone,
}

/// A connection that completed CONNECT.
struct Connected {
    session: Session,
    claim: Claim,
    will: Option<Will>,
    keep_alive: Option<Duration>,
    /// Counted against the vhost's and the user's `max-connections` while the connection lives.
    slot: ClientConnection,
}

/// Serves one stream until it ends; returns why (the kit's listener logs it).
pub(crate) async fn run<S: Stream>(stream: S, conn: &Connection, ctx: Arc<Context>) -> CloseReason {
    let (read_half, write_half) = tokio::io::split(stream);
    let (sender, writer) =
        porter_gateway_kit::outbound(write_half, conn.outbound_limits(), Some(conn.counters()));
    let mut writer = tokio::spawn(writer.run());
    let mut reader = PacketReader {
        inner: read_half,
        buf: BytesMut::new(),
        counters: conn.counters(),
        max: ctx.config.packet_bytes_max,
    };
    let connected = within(
        Deadline::Handshake,
        conn.deadlines().handshake,
        Box::pin(connect(&mut reader, &sender, conn, &ctx)),
    )
    .await;
    let reason = match connected {
        Err(deadline) => deadline,
        Ok(Err(reason)) => reason,
        Ok(Ok(connected)) => serve(connected, &mut reader, &sender, conn, &ctx).await,
    };
    drop(sender);
    match (&mut writer).await {
        Ok((_, Err(written))) if !reason.is_error() => written,
        _ => reason,
    }
}

/// Encodes `packets` for `version` and queues them in writes of about [`WRITE_BYTES`]. A full
/// outbound queue makes this wait, and the event loop with it: a client that does not read
/// stops its deliveries (the queue keeps them) instead of growing a buffer.
async fn flush(sender: &OutboundSender, packets: &mut Vec<Packet>, version: Version) -> bool {
    let mut bytes = BytesMut::new();
    for packet in packets.drain(..) {
        codec::encode(&packet, version, &mut bytes);
        if bytes.len() >= WRITE_BYTES {
            let frame = OutboundFrame {
                bytes: bytes.split().freeze(),
                charge: None,
            };
            if sender.send(frame).await.is_err() {
                return false;
            }
        }
    }
    if bytes.is_empty() {
        return true;
    }
    let frame = OutboundFrame {
        bytes: bytes.freeze(),
        charge: None,
    };
    sender.send(frame).await.is_ok()
}

/// Reads CONNECT, authenticates, claims the client id, opens the session, answers CONNACK.
async fn connect<R: AsyncRead + Unpin>(
    reader: &mut PacketReader<R>,
    sender: &OutboundSender,
    conn: &Connection,
    ctx: &Arc<Context>,
) -> Result<Connected, CloseReason> {
    let version = loop {
        match codec::packet_len(&reader.buf, reader.max) {
            Ok(Some(len)) if reader.buf.len() >= len => {
                break codec::connect_version(&reader.buf[..len])
            }
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        match reader.read_more().await {
            Ok(0) | Err(_) => return Err(CloseReason::peer("closed before CONNECT")),
            Ok(_) => {}
        }
    };
    let version = match version {
        Ok(version) => version,
        Err(DecodeError::Protocol(ProtocolRefusal::Level(level))) => {
            // 3.1.1 §3.1.2.2: CONNACK 0x01 for a level the server does not support.
            let _ = sender
                .send(OutboundFrame {
                    bytes: Bytes::from_static(&[0x20, 0x02, 0x00, 0x01]),
                    charge: None,
                })
                .await;
            return Err(CloseReason::protocol(
                1,
                format!("unsupported MQTT protocol level {level}"),
            ));
        }
        Err(e) => return Err(CloseReason::protocol(0x81, e.to_string())),
    };
    let (connect, last_will, login) = match reader.next(version).await {
        Ok(Some(Inbound::Packet(Packet::Connect(c, w, l)))) => (c, w, l),
        Ok(_) => {
            return Err(CloseReason::protocol(
                0x82,
                "the first packet is not CONNECT",
            ))
        }
        Err(ReadError::Io(e)) => return Err(CloseReason::peer(e.to_string())),
        Err(ReadError::Decode(e)) => {
            let refusal = Refusal::new(ConnectReturnCode::MalformedPacket, e.to_string());
            return Err(refuse(sender, version, refusal).await);
        }
    };
    let props = connect.properties.clone().unwrap_or_default();
    let refused = |code, reason: String| Refusal::new(code, reason);
    // Checks before anything changes: protocol rules, then credentials.
    let mut client_id = connect.client_id.clone();
    let mut assigned = None;
    if client_id.is_empty() {
        if version == Version::V311 && !connect.clean_start {
            let refusal = refused(
                ConnectReturnCode::ClientIdentifierNotValid,
                "an empty client id needs clean session".into(),
            );
            return Err(refuse(sender, version, refusal).await);
        }
        client_id = format!("porter-{}", uuid::Uuid::new_v4().simple());
        assigned = Some(client_id.clone());
    }
    if client_id.len() > CLIENT_ID_BYTES_MAX {
        let refusal = refused(
            ConnectReturnCode::ClientIdentifierNotValid,
            format!("client id over {CLIENT_ID_BYTES_MAX} bytes"),
        );
        return Err(refuse(sender, version, refusal).await);
    }
    let (user, scram_reply) = match props.authentication_method.as_deref() {
        Some(method) => {
            let data = props.authentication_data.as_deref();
            let (scram, challenge) = match ScramLogin::start(conn, ctx, method, data) {
                Ok(started) => started,
                Err(refusal) => return Err(refuse(sender, version, refusal).await),
            };
            let frame = OutboundFrame {
                bytes: challenge,
                charge: None,
            };
            if sender.send(frame).await.is_err() {
                return Err(CloseReason::peer("connection closed during AUTH"));
            }
            let answer = match reader.next(version).await {
                Ok(Some(Inbound::Auth(auth))) => auth,
                Ok(_) => None,
                Err(ReadError::Io(e)) => return Err(CloseReason::peer(e.to_string())),
                Err(ReadError::Decode(_)) => None,
            };
            match scram.finish(conn, ctx, answer) {
                Ok((user, reply)) => (user, Some(reply)),
                Err(refusal) => return Err(refuse(sender, version, refusal).await),
            }
        }
        None => match authenticate(conn, ctx, login.as_ref()).await {
            Ok(user) => (user, None),
            Err(refusal) => return Err(refuse(sender, version, refusal).await),
        },
    };
    let vhost = &ctx.config.vhost;
    let slot = match ctx.vhost.open_client_connection(&user.name) {
        Ok(slot) => slot,
        Err(e) => {
            tracing::warn!(peer = %conn.peer(), user = %user.name, vhost = %vhost, error = %e, "MQTT connection limit");
            let refusal = Refusal::new(
                ConnectReturnCode::NotAuthorized,
                format!(
                    "access to vhost '{vhost}' refused for user '{}': {e}",
                    user.name
                ),
            );
            return Err(refuse(sender, version, refusal).await);
        }
    };
    let will = match last_will.map(|w| Will::from_connect(w, ctx.config.topic_levels_max)) {
        None => None,
        Some(Ok(will)) => Some(will),
        Some(Err(reason)) => {
            let refusal = refused(ConnectReturnCode::TopicNameInvalid, reason);
            return Err(refuse(sender, version, refusal).await);
        }
    };
    let requested_expiry = match version {
        Version::V5 => props.session_expiry_interval.unwrap_or(0),
        Version::V311 if connect.clean_start => 0,
        Version::V311 => u32::MAX,
    };
    let expiry = requested_expiry.min(ctx.config.session_expiry_max_secs);
    let client = ClientLimits {
        receive_max: props.receive_maximum.unwrap_or(u16::MAX).max(1),
        packet_max: props.max_packet_size,
        topic_alias_max: props.topic_alias_max.unwrap_or(0),
    };
    let max_keep_alive = ctx.config.keep_alive_max_secs;
    let (keep_alive, server_keep_alive) = match (version, connect.keep_alive) {
        (Version::V5, ka) if ka == 0 || ka > max_keep_alive => {
            (max_keep_alive, Some(max_keep_alive))
        }
        (_, ka) => (ka, None),
    };
    conn.set_user(user.name.clone());
    let (claim, _took_over) = ctx.clients.claim(&client_id).await;
    let opened = Session::open(
        ctx.clone(),
        version,
        client_id.clone(),
        connect.clean_start,
        expiry,
        client,
    )
    .await;
    let opened = match opened {
        Ok(opened) => opened,
        Err(refusal) => return Err(refuse(sender, version, refusal).await),
    };
    let scram_method = scram_reply.as_ref().map(|r| r.method.clone());
    let properties = (version == Version::V5).then(|| ConnAckProperties {
        session_expiry_interval: (expiry != requested_expiry).then_some(expiry),
        receive_max: Some(ctx.config.receive_max),
        max_packet_size: Some(ctx.config.packet_bytes_max as u32),
        assigned_client_identifier: assigned,
        topic_alias_max: Some(ctx.config.topic_alias_max),
        server_keep_alive,
        authentication_method: scram_method.clone(),
        authentication_data: scram_reply.map(|r| r.data),
        ..empty_connack_properties()
    });
    let mut opened = opened;
    opened.session.reauth = Reauthentication::new(scram_method, conn.peer());
    opened.session.user = user.name;
    opened.session.permissions_checked = user.checked;
    let mut out = vec![Packet::ConnAck(ConnAck {
        session_present: opened.present,
        code: ConnectReturnCode::Success,
        properties,
    })];
    opened.session.resend_releases(&mut out);
    if !flush(sender, &mut out, version).await {
        opened.session.close().await;
        return Err(CloseReason::peer("connection closed during CONNECT"));
    }
    tracing::debug!(%client_id, ?version, session_present = opened.present, "MQTT client connected");
    Ok(Connected {
        session: opened.session,
        claim,
        will,
        keep_alive: (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500)),
        slot,
    })
}

/// Sends CONNACK with the refusal and says why the connection closes.
async fn refuse(sender: &OutboundSender, version: Version, refusal: Refusal) -> CloseReason {
    let properties = (version == Version::V5).then(|| ConnAckProperties {
        reason_string: Some(refusal.reason.clone()),
        ..empty_connack_properties()
    });
    let mut out = vec![Packet::ConnAck(ConnAck {
        session_present: false,
        code: refusal.code,
        properties,
    })];
    flush(sender, &mut out, version).await;
    CloseReason::protocol(refusal.code as u32, refusal.reason)
}

fn empty_connack_properties() -> ConnAckProperties {
    ConnAckProperties {
        session_expiry_interval: None,
        receive_max: None,
        max_qos: None,
        retain_available: None,
        max_packet_size: None,
        assigned_client_identifier: None,
        topic_alias_max: None,
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: None,
        subscription_identifiers_available: None,
        shared_subscription_available: None,
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    }
}

/// The event loop, then the goodbye: DISCONNECT (MQTT 5) if the server ends it, the will if
/// the client did not leave cleanly, and the session released.
async fn serve<R: AsyncRead + Unpin>(
    connected: Connected,
    reader: &mut PacketReader<R>,
    sender: &OutboundSender,
    conn: &Connection,
    ctx: &Arc<Context>,
) -> CloseReason {
    let Connected {
        mut session,
        claim,
        will,
        keep_alive,
        slot: _slot,
    } = connected;
    let version = session.version;
    let mut deliveries = session.take_deliveries();
    let mut acks = PendingAcks::new();
    let mut out = Vec::new();
    let mut last_packet = Instant::now();
    let far = Duration::from_secs(365 * 86_400);
    let ending = loop {
        session.settle_pending();
        if !flush(sender, &mut out, version).await {
            break Ending::WriterGone;
        }
        if let Some(auth) = session.reauth.take_reply() {
            let frame = OutboundFrame {
                bytes: auth,
                charge: None,
            };
            if sender.send(frame).await.is_err() {
                break Ending::WriterGone;
            }
        }
        let deadline = last_packet + keep_alive.unwrap_or(far);
        tokio::select! {
            reason = conn.closing() => break Ending::Asked(reason),
            _ = claim.takeover.cancelled() => break Ending::TakenOver,
            read = reader.next(version) => {
                last_packet = Instant::now();
                let handled = match read {
                    Ok(Some(first)) => Box::pin(on_packets(&mut session, reader, version, first, &mut acks, &mut out)).await,
                    Ok(None) => break Ending::Gone("connection closed without DISCONNECT".into()),
                    Err(ReadError::Io(e)) => break Ending::Gone(e.to_string()),
                    Err(e) => Err(read_failure(e)),
                };
                if deliveries.is_none() {
                    deliveries = session.take_deliveries(); // the first subscription made it
                }
                match handled {
                    Ok(None) => {}
                    Ok(Some(ending)) => break ending,
                    Err(disconnect) => break Ending::Server(disconnect),
                }
            }
            Some(event) = next_delivery(&mut deliveries) => {
                on_event(&mut session, event, &mut out);
                for _ in 1..DELIVERIES_PER_TURN {
                    let Some(receiver) = deliveries.as_mut() else { break };
                    match receiver.try_recv() {
                        Ok(event) => on_event(&mut session, event, &mut out),
                        Err(_) => break,
                    }
                }
            }
            Some(ack) = acks.next(), if !acks.is_empty() => {
                let mut ack = Some(ack);
                // Every acknowledgement ready now leaves in one write.
                while let Some(packet) = ack.take() {
                    session.sending(&packet);
                    out.push(packet);
                    ack = futures::FutureExt::now_or_never(acks.next()).flatten();
                }
            }
            _ = tokio::time::sleep_until(deadline), if keep_alive.is_some() => {
                break Ending::KeepAlive(keep_alive.unwrap_or(far));
            }
        }
    };
    // Acknowledgements whose publishes committed still go out before a goodbye.
    while let Some(Some(ack)) = futures::FutureExt::now_or_never(acks.next()) {
        session.sending(&ack);
        out.push(ack);
    }
    let (reason, server_disconnect, send_will) = match ending {
        Ending::ClientDisconnect { will } => {
            (CloseReason::peer("client sent DISCONNECT"), None, will)
        }
        Ending::Gone(why) => (CloseReason::peer(why), None, true),
        Ending::WriterGone => (CloseReason::peer("connection closed"), None, true),
        Ending::KeepAlive(limit) => (CloseReason::deadline(Deadline::Idle, limit), None, true),
        Ending::TakenOver => (
            CloseReason::local(0x8E, "session taken over by a new connection"),
            Some(Disconnect::new(
                DisconnectReasonCode::SessionTakenOver,
                "session taken over",
            )),
            true,
        ),
        Ending::Asked(reason) => {
            let code = if matches!(reason.by, porter_gateway_kit::ClosedBy::Shutdown) {
                DisconnectReasonCode::ServerShuttingDown
            } else {
                DisconnectReasonCode::AdministrativeAction
            };
            let disconnect = Disconnect::new(code, reason.text.to_string());
            (
                reason.with_code(disconnect_number(code)),
                Some(disconnect),
                true,
            )
        }
        Ending::Server(disconnect) => {
            tracing::info!(client_id = %session.client_id, reason = %disconnect.reason, code = disconnect.code as u8, "closing an MQTT connection");
            (
                CloseReason::protocol(
                    disconnect_number(disconnect.code),
                    disconnect.reason.clone(),
                ),
                Some(disconnect),
                true,
            )
        }
    };
    // Only an MQTT 5 client is told why (3.1.1 has no server DISCONNECT).
    let linger = server_disconnect.is_some() && version == Version::V5;
    if let (Some(disconnect), Version::V5) = (server_disconnect, version) {
        out.push(Packet::Disconnect(DisconnectPacket {
            reason_code: disconnect.code,
            properties: Some(DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some(disconnect.reason),
                user_properties: Vec::new(),
                server_reference: None,
            }),
        }));
    }
    flush(sender, &mut out, version).await;
    // The session is let go before any linger, so a connection taking it over waits for the
    // release only, never for this goodbye.
    let (client_id, expiry) = (session.client_id.clone(), session.expiry_secs);
    let will = will.filter(|_| send_will).map(|w| {
        let delay = will::delay_of(&w, expiry);
        (w, delay)
    });
    // A delayed will goes into the session's record with its end, so a restart keeps it.
    let stored = will
        .as_ref()
        .filter(|(_, delay)| *delay > 0)
        .map(|(w, delay)| w.stored(*delay));
    let due = stored.as_ref().map(|w| w.due_ms);
    session.pending_will = stored;
    Box::pin(session.close()).await;
    if let Some((will, delay)) = will {
        will::send(ctx.clone(), client_id, will, delay, due);
    }
    drop(claim);
    if linger {
        // What the client sends before it reads the goodbye is read and dropped for a moment:
        // closing with unread input would reset the connection and could destroy the
        // DISCONNECT before the client reads it.
        let _ = tokio::time::timeout(DISCONNECT_LINGER, async {
            while let Ok(n) = reader.read_more().await {
                reader.buf.clear();
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    reason
}

/// Handles `first` and the packets already buffered behind it (at most [`PACKETS_PER_TURN`]),
/// PUBLISH runs as bursts, so what one read brought in is answered in one write and settled in
/// one queue operation.
async fn on_packets<R: AsyncRead + Unpin>(
    session: &mut Session,
    reader: &mut PacketReader<R>,
    version: Version,
    first: Inbound,
    acks: &mut PendingAcks,
    out: &mut Vec<Packet>,
) -> Result<Option<Ending>, Disconnect> {
    let mut next = Some(Ok(first));
    let mut handled = 0;
    while let Some(item) = next.take() {
        match item.map_err(read_failure)? {
            Inbound::Auth(auth) => {
                handled += 1;
                let vhost = &session.ctx.config.vhost;
                let broker = session.ctx.vhost.broker();
                session.reauth.on_auth(auth, broker, vhost, &session.user)?;
            }
            Inbound::Packet(Packet::Publish(publish)) => {
                let (burst, after) = publish_burst(reader, version, publish);
                handled += burst.len();
                session.publish_batch(burst, acks).await?;
                next = after;
            }
            Inbound::Packet(packet) => {
                handled += 1;
                if let Some(ending) = handle(session, packet, acks, out).await? {
                    return Ok(Some(ending));
                }
            }
        }
        if next.is_none() && handled < PACKETS_PER_TURN {
            next = reader.buffered(version).transpose();
        }
    }
    Ok(None)
}

/// The PUBLISH packets buffered right behind `first` (up to the core's burst size), and the
/// packet (or error) that ended the run, if one did.
fn publish_burst<R: AsyncRead + Unpin>(
    reader: &mut PacketReader<R>,
    version: Version,
    first: rumqttc::v5::mqttbytes::v5::Publish,
) -> (
    Vec<rumqttc::v5::mqttbytes::v5::Publish>,
    Option<Result<Inbound, ReadError>>,
) {
    let mut burst = vec![first];
    while burst.len() < porter_core::publish::PUBLISH_BATCH_MAX {
        match reader.buffered(version) {
            Ok(Some(Inbound::Packet(Packet::Publish(next)))) => burst.push(next),
            Ok(Some(other)) => return (burst, Some(Ok(other))),
            Ok(None) => break,
            Err(e) => return (burst, Some(Err(e))),
        }
    }
    (burst, None)
}

/// How a read that is not a packet ends the connection.
fn read_failure(error: ReadError) -> Disconnect {
    match error {
        ReadError::Decode(DecodeError::TooLarge { size, max }) => Disconnect::new(
            DisconnectReasonCode::PacketTooLarge,
            format!("packet of {size} bytes is over the maximum of {max}"),
        ),
        ReadError::Decode(e) => Disconnect::malformed(e.to_string()),
        ReadError::Io(e) => Disconnect::new(DisconnectReasonCode::UnspecifiedError, e.to_string()),
    }
}

/// The next delivery, once the session has a delivery channel (never, until then).
async fn next_delivery(
    deliveries: &mut Option<mpsc::Receiver<ConsumerEvent>>,
) -> Option<ConsumerEvent> {
    match deliveries {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// One event from the session's queues.
fn on_event(session: &mut Session, event: ConsumerEvent, out: &mut Vec<Packet>) {
    match event {
        ConsumerEvent::Deliver(delivery) => session.deliver(delivery, out),
        ConsumerEvent::Cancelled { consumer_tag } => {
            // The queue was deleted under the session (an operator, or a shared queue's
            // expiry): its subscriptions end.
            let queue = crate::session::queue_of_tag(&consumer_tag).to_string();
            session.stop_consuming(&queue);
            session.subscriptions.retain(|_, s| *s.queue != *queue);
        }
    }
}

/// One packet from the client; `Some` ends the loop.
async fn handle(
    session: &mut Session,
    packet: Packet,
    acks: &mut PendingAcks,
    out: &mut Vec<Packet>,
) -> Result<Option<Ending>, Disconnect> {
    match packet {
        Packet::Publish(publish) => session.publish_batch(vec![publish], acks).await?,
        Packet::PubAck(ack) => session.on_puback(ack.pkid, out),
        Packet::PubRec(rec) => session.on_pubrec(rec.pkid, out).await?,
        Packet::PubRel(rel) => session.on_pubrel(rel.pkid, out),
        Packet::PubComp(comp) => session.on_pubcomp(comp.pkid, out),
        Packet::Subscribe(subscribe) => session.subscribe(subscribe, out).await?,
        Packet::Unsubscribe(unsubscribe) => session.unsubscribe(unsubscribe, out).await?,
        Packet::PingReq(_) => out.push(Packet::PingResp(PingResp)),
        Packet::Disconnect(disconnect) => {
            let expiry = disconnect
                .properties
                .as_ref()
                .and_then(|p| p.session_expiry_interval);
            if let Some(expiry) = expiry {
                if session.expiry_secs == 0 && expiry > 0 {
                    return Err(Disconnect::protocol(
                        "a session without expiry cannot be given one at DISCONNECT",
                    ));
                }
                session.expiry_secs = expiry.min(session.ctx.config.session_expiry_max_secs);
            }
            let will = disconnect.reason_code == DisconnectReasonCode::DisconnectWithWillMessage;
            return Ok(Some(Ending::ClientDisconnect { will }));
        }
        Packet::Connect(..) => return Err(Disconnect::protocol("a second CONNECT")),
        other => {
            return Err(Disconnect::protocol(format!(
                "a client may not send {}",
                packet_name(&other)
            )))
        }
    }
    Ok(None)
}

fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::ConnAck(_) => "CONNACK",
        Packet::SubAck(_) => "SUBACK",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingResp(_) => "PINGRESP",
        Packet::Auth(_) => "AUTH",
        _ => "this packet",
    }
}
