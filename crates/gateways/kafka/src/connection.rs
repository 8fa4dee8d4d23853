//! One client connection. A reader task turns bytes into size-checked frames and hands them over
//! a bounded channel (capacity = the in-flight limit, so a client that pipelines faster than we
//! answer is paused at the socket). The connection task decodes each frame, runs the ordered
//! stage of its handler, and queues the rest; responses are written strictly in request order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::api::{self, api_versions, Context};
use crate::frame::{decode_request, encode_response, FrameError, ResponseKind};

/// Buffer for the socket reader: most requests fit, large produces read straight through.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What the reader hands to the connection task.
enum Inbound {
    Frame {
        bytes: Bytes,
        /// Holds the frame's share of the global request-memory budget until it is answered.
        permit: OwnedSemaphorePermit,
    },
    /// The stream broke the framing rules; the connection must close.
    Invalid(String),
}

/// A request's position in the response queue.
struct Answer {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: Option<ResponseKind>,
    _permit: OwnedSemaphorePermit,
}

pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    memory: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let (read_half, mut writer) = stream.into_split();
    let inflight_max = ctx.config.inflight_requests_max.max(1);
    let (tx, mut rx) = mpsc::channel(inflight_max);
    let reader = tokio::spawn(read_frames(
        read_half,
        tx,
        ctx.config.request_bytes_max,
        memory,
    ));
    let mut pending = FuturesOrdered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            Some(answer) = pending.next(), if !pending.is_empty() => {
                if let Err(e) = write_answer(&mut writer, answer).await {
                    tracing::debug!(%peer, error = %e, "write failed; closing");
                    break;
                }
            }
            inbound = rx.recv(), if reading && pending.len() < inflight_max => match inbound {
                Some(Inbound::Frame { bytes, permit }) => match decode_request(bytes) {
                    Ok(request) => {
                        let (api_key, version) = (request.api_key, request.version);
                        let correlation_id = request.header.correlation_id;
                        let rest = api::handle(&ctx, request, peer).await;
                        pending.push_back(
                            rest.map(move |response| Answer { api_key, version, correlation_id, response, _permit: permit })
                                .boxed(),
                        );
                    }
                    Err(FrameError::UnsupportedVersion { api_key: ApiKey::ApiVersions, version, correlation_id }) => {
                        // KIP-511: answer in v0 so the client learns what we speak.
                        tracing::info!(%peer, version, "ApiVersions with unsupported version; answering v0");
                        let response = Some(ResponseKind::ApiVersions(api_versions::unsupported_version()));
                        pending.push_back(
                            futures::future::ready(Answer { api_key: ApiKey::ApiVersions, version: 0, correlation_id, response, _permit: permit }).boxed(),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "bad request; closing connection");
                        reading = false;
                    }
                },
                Some(Inbound::Invalid(reason)) => {
                    tracing::warn!(%peer, %reason, "bad framing; closing connection");
                    reading = false;
                }
                None => reading = false,
            },
            _ = shutdown.cancelled(), if reading => reading = false,
        }
        if !reading && pending.is_empty() {
            break;
        }
    }
    reader.abort();
    let _ = writer.shutdown().await;
}

async fn write_answer(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    answer: Answer,
) -> std::io::Result<()> {
    let Some(response) = answer.response else {
        return Ok(());
    };
    let frame = encode_response(
        answer.api_key,
        answer.version,
        answer.correlation_id,
        &response,
    )
    .map_err(|e| {
        // Encoding our own response failed: a bug; log it and drop the connection.
        tracing::error!(api = ?answer.api_key, version = answer.version, error = %e, "response encoding failed");
        std::io::Error::other(e.to_string())
    })?;
    writer.write_all(&frame).await
}

/// Reads `i32 size | bytes` frames. The size is checked before anything is allocated, and the
/// frame's bytes are reserved from the shared request-memory budget first.
async fn read_frames(
    read_half: OwnedReadHalf,
    tx: mpsc::Sender<Inbound>,
    request_bytes_max: u32,
    memory: Arc<Semaphore>,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read_half);
    loop {
        let size = match reader.read_i32().await {
            Ok(size) => size,
            Err(_) => return, // EOF or reset between frames: a normal close
        };
        if size < 0 || size as u32 > request_bytes_max {
            let _ = tx
                .send(Inbound::Invalid(format!(
                    "frame of {size} bytes exceeds the limit of {request_bytes_max}"
                )))
                .await;
            return;
        }
        let permit = match memory.clone().acquire_many_owned(kib(size as u64)).await {
            Ok(permit) => permit,
            Err(_) => return,
        };
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
            if let Some(reason) = ended {
                let _ = tx
                    .send(Inbound::Invalid(format!(
                        "connection ended inside a {size}-byte frame: {reason}"
                    )))
                    .await;
                return;
            }
        }
        let frame = Inbound::Frame {
            bytes: buf.freeze(),
            permit,
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

/// Request memory is accounted in KiB so the semaphore's u32 permit count covers large budgets.
pub(crate) fn kib(bytes: u64) -> u32 {
    bytes.div_ceil(1024).max(1).min(u32::MAX as u64) as u32
}
