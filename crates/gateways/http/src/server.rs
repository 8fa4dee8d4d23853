//! The HTTP listener: a kit [`Listener`] (its slots are the HTTP `connections_max`, its drain
//! the shutdown's) whose protocol is HTTP/1.1 served by hyper with the router. An upgraded
//! WebSocket leaves its HTTP connection (and slot) and joins its route's [`Endpoint`], so the
//! listener's shutdown drains those endpoints too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use porter_gateway_kit::limits::LimitsError;
use porter_gateway_kit::tls_files::TlsAcceptor;
use porter_gateway_kit::{
    CloseReason, Connection, Drained, Endpoint, Listener, Protocol, Registry, Stream,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::config::{ConfigError, HttpConfig};
use crate::peer::PeerAddrs;
use crate::router::Routes;

/// Why the HTTP listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Limits(#[from] LimitsError),
}

/// HTTP/1.1 on one connection, as a kit protocol.
struct Http {
    router: Router,
    header_bytes_max: usize,
    idle: Duration,
}

impl Protocol for Http {
    async fn serve<S: Stream>(&self, stream: S, conn: &Connection) -> CloseReason {
        let info = conn.info();
        let addrs = PeerAddrs {
            peer: info.peer,
            local: info.local,
            client_login: conn.client_login().map(Arc::from),
        };
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(addrs.clone());
            router.clone().call(request.map(Body::new))
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.idle)
            .max_buf_size(self.header_bytes_max);
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            done = connection.as_mut() => match done {
                Ok(()) => CloseReason::peer("end of stream"),
                Err(e) if e.is_timeout() => CloseReason::deadline(porter_gateway_kit::Deadline::Idle, self.idle),
                Err(e) if e.is_parse_too_large() => CloseReason::limit(431, "request head over header_bytes_max"),
                Err(e) if e.is_parse() => CloseReason::protocol(400, e.to_string()),
                // A reset or a request cut short: the client left (not worth a warning).
                Err(e) => CloseReason::peer(e.to_string()),
            },
            reason = conn.closing() => {
                // Finish the request in progress, then close.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                reason
            }
        }
    }
}

/// The bound HTTP listener with its routes.
pub struct HttpListener {
    listener: Listener,
    routes: Routes,
    config: HttpConfig,
    /// HTTPS when set.
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpListener")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .finish()
    }
}

impl HttpListener {
    /// The listener on a bound socket; `drain` bounds shutdown (HTTP and WebSocket alike).
    pub fn new(
        tcp: TcpListener,
        config: HttpConfig,
        routes: Routes,
        drain: Duration,
    ) -> Result<Self, HttpError> {
        config.validate()?;
        let listener = Listener::new(tcp, "http", config.listener_limits(drain))?;
        Ok(HttpListener {
            listener,
            routes,
            config,
            tls: None,
        })
    }

    /// The same listener speaking HTTPS (and WSS) with `tls`, when given.
    pub fn with_tls(mut self, tls: Option<TlsAcceptor>) -> Self {
        self.tls = tls;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The plain-HTTP connections (WebSocket ones are in their endpoints' registries).
    pub fn registry(&self) -> Registry {
        self.listener.registry()
    }

    /// The WebSocket endpoints.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.routes.endpoints().to_vec()
    }

    /// Serves until `shutdown`, then drains plain HTTP and every WebSocket endpoint at once
    /// (each within the drain deadline); returns what stayed open.
    pub async fn serve(self, shutdown: CancellationToken) -> Drained {
        let (router, endpoints) = self.routes.into_parts(&self.config);
        let http = Arc::new(Http {
            router,
            header_bytes_max: self.config.header_bytes_max,
            idle: self.config.idle,
        });
        let stop = shutdown.clone();
        let plain = match self.tls {
            Some(tls) => tokio::spawn(self.listener.with_acceptor(tls).serve(http, stop)),
            None => tokio::spawn(self.listener.serve(http, stop)),
        };
        shutdown.cancelled().await;
        let websockets = endpoints.iter().map(|endpoint| endpoint.drain());
        let (plain, websockets) = tokio::join!(plain, futures_util::future::join_all(websockets));
        let mut still_open = plain.map(|d| d.still_open).unwrap_or_default();
        for drained in websockets {
            still_open.extend(drained.still_open);
        }
        Drained { still_open }
    }
}
