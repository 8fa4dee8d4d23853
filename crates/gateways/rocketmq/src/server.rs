//! RocketMQ's gRPC on the gateway kit's listener: the kit accepts (connection limit, registry,
//! drain on shutdown), and each connection is served by hyper's HTTP/2 server with the tonic
//! service. A client that sends something other than HTTP/2 gets hyper's protocol error and
//! is closed; on shutdown a connection is sent GOAWAY and allowed to finish its RPCs.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use porter_core::Broker;
use porter_gateway_kit::limits::LimitsError;
use porter_gateway_kit::{CloseReason, Connection, Drained, Listener, Protocol, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

use crate::auth::Signatures;
use crate::authorize::Caller;
use crate::config::RocketmqConfig;
use crate::limits::{
    CONNECTION_WINDOW_BYTES, HEADER_LIST_BYTES_MAX, HTTP2_STREAMS_MAX, STREAM_WINDOW_BYTES,
};
use crate::proto::messaging_service_server::MessagingServiceServer;
use crate::service::{Gateway, Service};

pub struct RocketmqProtocol {
    gateway: Arc<Gateway>,
}

impl RocketmqProtocol {
    /// Opens the gateway's stores (blocking file I/O: call before serving, or from
    /// `spawn_blocking` inside a runtime) and starts its background tasks.
    pub fn open(
        broker: Arc<Broker>,
        config: RocketmqConfig,
    ) -> Result<Self, porter_core::CoreError> {
        Ok(RocketmqProtocol {
            gateway: Gateway::open(broker, config)?,
        })
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }
}

impl Protocol for RocketmqProtocol {
    async fn serve<S: Stream>(&self, stream: S, conn: &Connection) -> CloseReason {
        let max = self.gateway.config.request_bytes_max();
        let service = MessagingServiceServer::new(Service(self.gateway.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX);
        // Every call's signature, checked before the service sees it (see `crate::auth`).
        let signatures = self
            .gateway
            .config
            .authentication
            .then(|| Signatures::new(self.gateway.broker.clone(), conn.peer()));
        // Then who made it, for the ACLs (see `crate::authorize`).
        let peer = conn.peer();
        let service = InterceptedService::new(service, move |mut request: tonic::Request<()>| {
            let caller = match &signatures {
                Some(signatures) => {
                    let user = signatures.check(request.metadata())?;
                    signatures.count_connection(&user.name)?;
                    Caller {
                        super_user: user.has_tag("administrator"),
                        user: Some(user.name),
                        peer,
                    }
                }
                None => Caller {
                    user: None,
                    super_user: false,
                    peer,
                },
            };
            request.extensions_mut().insert(caller);
            Ok(request)
        });
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(HTTP2_STREAMS_MAX)
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_header_list_size(HEADER_LIST_BYTES_MAX)
            .max_send_buf_size(STREAM_WINDOW_BYTES as usize)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => return closed(result),
            _ = conn.closing() => connection.as_mut().graceful_shutdown(),
        }
        let _ = connection.await;
        CloseReason::shutdown()
    }
}

fn closed(result: Result<(), hyper::Error>) -> CloseReason {
    match result {
        Ok(()) => CloseReason::peer("client closed the connection"),
        Err(e) if e.is_timeout() => CloseReason::peer(format!("keep-alive timed out: {e}")),
        // A client gone without a word (a port probe, a killed process) is not a protocol error.
        Err(e) if e.is_incomplete_message() || e.is_closed() || went_away(&e) => {
            CloseReason::peer(format!("client went away: {e}"))
        }
        Err(e) => CloseReason::protocol(0, format!("HTTP/2: {e}")),
    }
}

/// Whether hyper's error is the socket ending (EOF, reset) rather than bad HTTP/2.
fn went_away(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted
            );
        }
        source = e.source();
    }
    false
}

/// Serves until `shutdown` is cancelled, then drains (bounded by `drain_timeout`).
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: RocketmqConfig,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> Result<Drained, LimitsError> {
    let limits = config.listener_limits(drain_timeout);
    let listener = Listener::new(listener, "rocketmq", limits)?;
    let protocol =
        RocketmqProtocol::open(broker, config).expect("opening the RocketMQ gateway's stores");
    Ok(listener.serve(Arc::new(protocol), shutdown).await)
}
