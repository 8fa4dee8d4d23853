//! One client connection, three tasks:
//! - the reader turns socket bytes into size-checked, decoded requests. Before reading a frame's
//!   body it charges the frame's bytes to the connection's memory share; when the share is used
//!   up it waits, so the socket is not read (backpressure on a client that does not read its
//!   answers, never more memory). It hands requests over a channel of capacity = the in-flight
//!   limit.
//! - the event loop (this task) runs each request's ordered stage, keeps the rest in request
//!   order, encodes each answer, re-charges it at its encoded size and queues it for writing.
//!   A Fetch answer's records are not in memory: it is queued as a spliced frame of its encoded
//!   bytes and file regions (see `crate::fetch_frame`), charged for the bytes it holds. So
//!   a Fetch needs no reservation of its response size, and may return all the client asks
//!   for (up to `fetch_response_bytes_max`) whatever the connection's share.
//! - the writer (the kit's outbound queue) writes answers in order, streaming file regions in
//!   bounded chunks; a write that makes no progress for the write-stall deadline ends the
//!   connection, releasing what it held. A client that pipelines fetches and never reads holds
//!   at most `outbound_frames_max` queued answers of a few hundred bytes each, and then
//!   `inflight_requests_max` requests, before its socket is no longer read.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::ApiKey;
use porter_gateway_kit::budget::{Charge, ConnectionBudget};
use porter_gateway_kit::outbound::{outbound, OutboundFrame, OutboundSender, WriterGone};
use porter_gateway_kit::registry::ByteCounters;
use porter_gateway_kit::sniff::{http_bad_request, SNIFF_BYTES};
use porter_gateway_kit::spliced::SplicedFrame;
use porter_gateway_kit::LazyBufReader;
use porter_gateway_kit::{sniff, WireProtocol, WrongProtocol};
use porter_gateway_kit::{CloseReason, Connection, Deadline, IdleTimer, Stream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::api::{self, api_versions, Caller, Context};
use crate::fetch_frame::encode_fetch;
use crate::frame::{decode_request, encode_response, FrameError, Request, ResponseKind};
use crate::limits::READ_BUFFER_BYTES;
use crate::sasl::{Admission, Sasl};

/// What the reader hands to the event loop. The decoded request is boxed: tokio's channel
/// allocates its slots 32 at a time up front, so an unboxed request (over 300 bytes) made every
/// connection, idle or not, hold 10 KiB of empty slots.
enum Inbound {
    Request {
        decoded: Box<Result<Request, FrameError>>,
        /// The frame's bytes against the connection's share, held until the answer is
        /// encoded (then re-sized to the answer's bytes in memory, held until written).
        charge: Charge,
    },
    /// The stream broke the framing rules; the connection must close.
    Invalid(String),
    /// The connection's first bytes speak another protocol; the connection must close.
    Foreign(WireProtocol),
}

/// A request's position in the response queue.
struct Answer {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: Option<ResponseKind>,
    charge: Charge,
}

/// An encoded answer: in memory whole, or bytes around file regions.
enum Outgoing {
    Frame(OutboundFrame),
    Spliced(SplicedFrame),
}

impl Outgoing {
    async fn send(self, out: &OutboundSender) -> Result<(), WriterGone> {
        match self {
            Outgoing::Frame(frame) => out.send(frame).await,
            Outgoing::Spliced(frame) => out.send_spliced(frame).await,
        }
    }
}

/// An API's name for `/metrics` (`Produce`, `Fetch`, ...): kafka-protocol's names, made once.
fn api_name(api_key: ApiKey) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..API_KEYS_NAMED)
            .map(|key| match ApiKey::try_from(key) {
                // Leaked once per API key: a bounded table of static names.
                Ok(api) => &*Box::leak(format!("{api:?}").into_boxed_str()),
                Err(_) => "unknown",
            })
            .collect()
    });
    usize::try_from(api_key as i16)
        .ok()
        .and_then(|i| names.get(i).copied())
        .unwrap_or("unknown")
}

/// How long a connection stays open after its failed authentication was answered (Kafka's
/// `connection.failed.authentication.delay.ms` default).
const FAILED_AUTHENTICATION_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Resolves at `at`; never without one (the select arm is disabled then anyway).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// API keys below this get names (Kafka's are 0..~80).
const API_KEYS_NAMED: i16 = 128;

/// Serves one connection until it ends; returns why.
pub async fn run<S: Stream>(stream: S, conn: &Connection, ctx: Arc<Context>) -> CloseReason {
    let peer = conn.peer();
    let (read_half, write_half) = tokio::io::split(stream);
    let (out, writer) = outbound(write_half, conn.outbound_limits(), Some(conn.counters()));
    let mut writer = tokio::spawn(writer.run());
    let inflight_max = ctx.config.inflight_requests_max.max(1);
    let (tx, mut rx) = mpsc::channel(inflight_max);
    let reader = tokio::spawn(read_requests(
        read_half,
        tx,
        ctx.config.request_bytes_max,
        conn.budget().clone(),
        conn.counters(),
    ));
    let mut pending = FuturesOrdered::new();
    let operations = conn.operations();
    let mut idle = IdleTimer::new(conn.deadlines().idle);
    let mut reading = true;
    let mut reason: Option<CloseReason> = None;
    let mut writer_gone = false;
    let mut linger = false;
    let mut sasl = Sasl::new(
        ctx.config.sasl_mechanisms.clone(),
        ctx.config.reauth_ms,
        peer,
    )
    .with_certificate(&ctx.broker, conn.client_login());
    if let Some(principal) = sasl.principal() {
        conn.set_user(principal.user.clone());
    }
    let mut authenticating = (!ctx.config.sasl_mechanisms.is_empty())
        .then(|| tokio::time::Instant::now() + conn.deadlines().handshake);
    loop {
        tokio::select! {
            biased;
            Some(answer) = pending.next(), if !pending.is_empty() => {
                idle.touch();
                match encode_answer(answer) {
                    Ok(None) => {}
                    Ok(Some(frame)) => {
                        if frame.send(&out).await.is_err() {
                            writer_gone = true;
                            break;
                        }
                    }
                    Err(bug) => {
                        reason.get_or_insert(bug);
                        break;
                    }
                }
            }
            _ = out.closed() => {
                writer_gone = true;
                break;
            }
            inbound = rx.recv(), if reading && pending.len() < inflight_max => {
                idle.touch();
                match inbound {
                    Some(Inbound::Request { decoded, charge }) => match *decoded {
                        Ok(request) => {
                            let (api_key, version) = (request.api_key, request.version);
                            let correlation_id = request.header.correlation_id;
                            let started = Instant::now();
                            let rest = match sasl.admit(&ctx.broker, request).await {
                                Admission::Handle(request) => {
                                    let caller = Caller { peer, principal: sasl.principal() };
                                    Some(api::handle(&ctx, *request, caller).await)
                                }
                                Admission::Answer { response, close } => {
                                    if let Some(close) = close {
                                        reason.get_or_insert(close);
                                        reading = false;
                                        linger = true;
                                    } else if let Some(user) = sasl.principal() {
                                        conn.set_user(user.user.clone());
                                        authenticating = None;
                                    }
                                    Some(futures::future::ready(Some(response)).boxed())
                                }
                                Admission::Refuse(why) => {
                                    reason.get_or_insert(why);
                                    reading = false;
                                    None
                                }
                            };
                            if let Some(rest) = rest {
                                let operations = operations.clone();
                                pending.push_back(
                                    rest.map(move |response| {
                                        // Until the answer is ready (a produce's commit, a fetch's wait).
                                        operations.record(api_name(api_key), started.elapsed());
                                        Answer { api_key, version, correlation_id, response, charge }
                                    })
                                    .boxed(),
                                );
                            }
                        }
                        Err(FrameError::UnsupportedVersion { api_key: ApiKey::ApiVersions, version, correlation_id }) => {
                            // KIP-511: answer in v0 so the client learns what we speak.
                            tracing::info!(%peer, version, "ApiVersions with unsupported version; answering v0");
                            let response = Some(ResponseKind::ApiVersions(api_versions::unsupported_version()));
                            pending.push_back(
                                futures::future::ready(Answer { api_key: ApiKey::ApiVersions, version: 0, correlation_id, response, charge }).boxed(),
                            );
                        }
                        Err(e) => {
                            reason.get_or_insert(CloseReason::protocol(0, format!("bad request: {e}")));
                            reading = false;
                        }
                    },
                    Some(Inbound::Invalid(why)) => {
                        reason.get_or_insert(CloseReason::protocol(0, format!("bad framing: {why}")));
                        reading = false;
                    }
                    Some(Inbound::Foreign(found)) => {
                        // Kafka has no way to say "wrong protocol"; a browser or curl user gets a
                        // page saying which port this is. Others are told by the log line.
                        if found == WireProtocol::Http {
                            let page = OutboundFrame { bytes: http_bad_request("Kafka"), charge: None };
                            if out.send(page).await.is_err() {
                                writer_gone = true;
                            }
                        }
                        let local = conn.info().local;
                        let line = WrongProtocol { found, listener: "Kafka", local, peer };
                        reason.get_or_insert(CloseReason::protocol(0, line.to_string()));
                        reading = false;
                        if writer_gone {
                            break;
                        }
                    }
                    None => {
                        reason.get_or_insert(CloseReason::peer("end of stream"));
                        reading = false;
                    }
                }
            }
            closing = conn.closing(), if reading => {
                reason.get_or_insert(closing);
                reading = false;
            }
            expired = idle.expired(), if reading && pending.is_empty() => {
                reason.get_or_insert(expired);
                reading = false;
            }
            // A SASL listener's client must authenticate within the handshake deadline.
            _ = sleep_until(authenticating), if reading && authenticating.is_some() => {
                let limit = conn.deadlines().handshake;
                reason.get_or_insert(CloseReason::deadline(Deadline::Handshake, limit));
                reading = false;
            }
        }
        if !reading && pending.is_empty() {
            break;
        }
    }
    reader.abort();
    if linger && !writer_gone {
        // Kafka's connection.failed.authentication.delay.ms: the client reads why it failed
        // before the connection ends, and a client retrying in a loop is slowed.
        tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
    }
    // Dropping the last sender lets the writer finish what is queued, then shut down.
    drop(out);
    if writer_gone {
        // The writer already ended (a stall or a broken socket): its reason is the one.
        let ended = (&mut writer).await;
        return match ended {
            Ok((_, Err(written))) => written,
            _ => reason.unwrap_or_else(|| CloseReason::peer("connection closed")),
        };
    }
    let written = (&mut writer).await;
    match written {
        Ok((_, Err(written))) => reason.filter(|r| r.is_error()).unwrap_or(written),
        _ => reason.unwrap_or_else(|| CloseReason::peer("end of stream")),
    }
}

/// Encodes an answer and re-charges it at its encoded size in memory (the request's bytes are
/// freed by now; the response's are held until written). `Err` only for a bug: our own
/// response did not encode.
fn encode_answer(answer: Answer) -> Result<Option<Outgoing>, CloseReason> {
    let Answer {
        api_key,
        version,
        correlation_id,
        response,
        mut charge,
    } = answer;
    let Some(response) = response else {
        return Ok(None);
    };
    let failed = |e: anyhow::Error| {
        tracing::error!(api = ?api_key, version, error = %e, "response encoding failed");
        CloseReason::local(
            0,
            format!("encoding a {api_key:?} v{version} response failed"),
        )
    };
    if let ResponseKind::Fetch(answer) = &response {
        if !answer.regions.is_empty() {
            let (parts, in_memory) =
                encode_fetch(version, correlation_id, answer).map_err(failed)?;
            drop(response);
            charge.shrink_to(in_memory);
            charge.grow_now(in_memory);
            return Ok(Some(Outgoing::Spliced(SplicedFrame {
                parts,
                charge: Some(charge),
            })));
        }
    }
    let frame = encode_response(api_key, version, correlation_id, &response).map_err(failed)?;
    drop(response);
    let len = frame.len() as u64;
    charge.shrink_to(len);
    charge.grow_now(len);
    Ok(Some(Outgoing::Frame(OutboundFrame {
        bytes: frame,
        charge: Some(charge),
    })))
}

/// Reads `i32 size | bytes` frames. The size is checked before anything is allocated, and the
/// frame's bytes are charged to the connection's share first.
async fn read_requests<R: AsyncRead + Unpin>(
    read_half: R,
    tx: mpsc::Sender<Inbound>,
    request_bytes_max: u32,
    budget: ConnectionBudget,
    counters: Arc<ByteCounters>,
) {
    // Holds its buffer only while bytes arrive: an idle connection keeps none.
    let mut reader = LazyBufReader::with_capacity(READ_BUFFER_BYTES, read_half);
    let mut at_start = true;
    loop {
        let size = match reader.read_i32().await {
            Ok(size) => size,
            Err(_) => return, // EOF or reset between frames: a normal close
        };
        // The connection's first bytes (the size and what arrived with it): a client on the
        // wrong port is told apart here, before a size it never meant is charged or refused.
        let first = at_start.then(|| {
            let mut first = size.to_be_bytes().to_vec();
            let buffered = reader.buffer();
            first.extend_from_slice(&buffered[..buffered.len().min(SNIFF_BYTES - 4)]);
            first
        });
        at_start = false;
        if let Some(found) = first.as_deref().and_then(sniff) {
            if found != WireProtocol::Kafka {
                let _ = tx.send(Inbound::Foreign(found)).await;
                return;
            }
        }
        if size < 0 || size as u32 > request_bytes_max {
            let mut why = format!(
                "frame of {size} bytes exceeds the limit of {}",
                request_bytes_max
            );
            if let Some(first) = first {
                why.push_str(&format!(
                    "; the connection's first bytes ({}) are no Kafka request",
                    hex(&first)
                ));
            }
            let _ = tx.send(Inbound::Invalid(why)).await;
            return;
        }
        let charge = budget.charge(size as u64).await;
        // Read into spare capacity: zero-filling a large produce first would cost a pass
        // over its bytes for nothing.
        let mut buf = BytesMut::with_capacity(size as usize);
        while buf.len() < size as usize {
            let ended = match (&mut reader)
                .take((size as usize - buf.len()) as u64)
                .read_buf(&mut buf)
                .await
            {
                Ok(0) => Some("end of stream".to_string()),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = ended {
                let _ = tx
                    .send(Inbound::Invalid(format!(
                        "connection ended inside a {size}-byte frame: {why}"
                    )))
                    .await;
                return;
            }
        }
        counters.count_in(4 + size as u64);
        let decoded = Box::new(decode_request(buf.freeze()));
        if tx.send(Inbound::Request { decoded, charge }).await.is_err() {
            return;
        }
    }
}

/// `41 4d 51 50`: bytes as a log line shows them.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BufMut;
    use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use porter_core::{Broker, BrokerConfig};
    use porter_gateway_kit::{ClosedBy, Deadline, MemoryBudget, Registry};
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::KafkaConfig;

    fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("never-reads")))
            .encode(&mut buf, ApiKey::ApiVersions.request_header_version(3))
            .unwrap();
        ApiVersionsRequest::default().encode(&mut buf, 3).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.to_vec()
    }

    /// Without a socket: a client pipelines requests and never reads. The connection holds at
    /// most its share (plus the answers in flight when the share ran out), stops reading, and
    /// ends at the write-stall deadline, releasing everything.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_is_held_to_its_share_then_closed() {
        const SHARE: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        })
        .unwrap();
        let config = KafkaConfig {
            connection_memory_bytes_max: SHARE,
            write_stall_ms: 30_000,
            ..KafkaConfig::default()
        };
        let mut limits = config.listener_limits(Duration::from_secs(10));
        // Let the share, not the frame count, be what stops the connection.
        limits.outbound_frames_max = 1 << 20;
        let budget = MemoryBudget::new(&limits).unwrap();
        let registry = Registry::new("kafka", 4);
        let peer = "127.0.0.1:40000".parse().unwrap();
        let registration = registry
            .register(peer, "127.0.0.1:9092".parse().unwrap())
            .unwrap();
        let conn = Connection::new(registration, budget.connection(), Arc::new(limits));
        let account = conn.budget().clone();
        let ctx = Arc::new(Context::new(broker, config));

        let (ours, mut theirs) = tokio::io::duplex(64 << 10);
        let client = tokio::spawn(async move {
            let mut sent = 0;
            while theirs.write_all(&api_versions_frame(sent)).await.is_ok() {
                sent += 1;
            }
            sent
        });
        let served = tokio::spawn(async move {
            let reason = run(ours, &conn, ctx).await;
            (reason, conn)
        });

        tokio::time::sleep(Duration::from_secs(5)).await;
        let held = account.held_bytes();
        let read = registry.list()[0].bytes_in;
        assert!(
            held >= SHARE / 2,
            "the answers were not charged: {held} bytes held"
        );
        assert!(
            held <= SHARE + 64 * 1024,
            "{held} bytes held by a connection with a {SHARE}-byte share"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            registry.list()[0].bytes_in,
            read,
            "the connection kept reading"
        );

        let (reason, conn) = served.await.unwrap();
        assert_eq!(reason.by, ClosedBy::Deadline(Deadline::WriteStall));
        assert_eq!((account.held_bytes(), budget.used_bytes()), (0, 0));
        drop(conn);
        client.abort();
    }
}
