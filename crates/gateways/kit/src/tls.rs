//! The TLS hook: an [`Acceptor`] turns an accepted `TcpStream` into the byte stream the
//! protocol reads and writes. [`PlainTcp`] (the default) hands the socket over unchanged; a TLS
//! acceptor (issue 18, e.g. over `tokio-rustls`) performs the TLS handshake here, inside the
//! listener's handshake deadline, so protocols never know which they got.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// What a protocol's connection reads and writes.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Turns an accepted TCP connection into a [`Stream`] (TLS, PROXY protocol, ...).
pub trait Acceptor: Send + Sync + 'static {
    /// The stream protocols get.
    type Stream: Stream;

    /// Runs within the listener's handshake deadline; an error closes the connection (logged as
    /// a protocol error with the error's text).
    fn accept(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// The user a verified client certificate names (mutual TLS; see
    /// [`crate::client_cert`]), read once after the handshake. None without one.
    fn client_login(&self, _stream: &Self::Stream) -> Option<String> {
        None
    }
}

/// Plain TCP: the socket as accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainTcp;

impl Acceptor for PlainTcp {
    type Stream = TcpStream;

    async fn accept(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}
