//! [`WsStream`]: a WebSocket as the byte stream a stream protocol reads and writes
//! (`AsyncRead + AsyncWrite`), so MQTT and STOMP serve WebSocket clients with the code that
//! serves TCP ones.
//!
//! Why not an adapter crate: `ws_stream_tungstenite` (the maintained one) closes the connection
//! on a text frame, and STOMP clients send text frames; it also pins another tungstenite than
//! axum's. This one is small:
//! - reading yields the payloads of binary *and* text messages back to back, so a protocol
//!   packet may span frames and a frame may hold several; ping/pong are answered by
//!   tungstenite; a close frame is the end of the stream;
//! - each `write` becomes one binary frame of at most `frame_bytes_max`; tungstenite gathers
//!   frames up to its write buffer and a `write` waits (`Pending`) while the buffer is full,
//!   which is the protocol's backpressure;
//! - it holds one received message at a time (bounded by the message limit).
//!
//! When the protocol drops the stream, the socket goes back to the route ([`Returned`]) which
//! sends the close frame with a code saying why the connection ended.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// The socket handed back when the protocol drops its stream.
#[derive(Debug)]
pub struct Returned {
    pub socket: WebSocket,
    /// The client sent a frame or message over the limit (close code 1009).
    pub too_big: bool,
    /// The client already sent a close frame or the socket failed: no close frame to send.
    pub finished: bool,
}

/// A WebSocket as `AsyncRead + AsyncWrite`; see the module docs.
#[derive(Debug)]
pub struct WsStream {
    socket: Option<WebSocket>,
    /// The unread rest of the last data message.
    unread: Bytes,
    frame_bytes_max: usize,
    too_big: bool,
    finished: bool,
    returned: Option<oneshot::Sender<Returned>>,
}

impl WsStream {
    /// Wraps `socket`; the receiver gets it back when the stream is dropped.
    pub fn new(socket: WebSocket, frame_bytes_max: usize) -> (Self, oneshot::Receiver<Returned>) {
        let (tx, rx) = oneshot::channel();
        let stream = WsStream {
            socket: Some(socket),
            unread: Bytes::new(),
            frame_bytes_max: frame_bytes_max.max(1),
            too_big: false,
            finished: false,
            returned: Some(tx),
        };
        (stream, rx)
    }

    fn socket(&mut self) -> io::Result<&mut WebSocket> {
        self.socket
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Maps a WebSocket error to an I/O error, noting one that a limit caused.
    fn failed(&mut self, error: axum::Error) -> io::Error {
        let inner = error.into_inner();
        if let Some(tungstenite::Error::Capacity(_)) = inner.downcast_ref::<tungstenite::Error>() {
            self.too_big = true;
            return io::Error::new(io::ErrorKind::InvalidData, inner);
        }
        self.finished = true;
        io::Error::other(inner)
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.unread.is_empty() {
                let n = buf.remaining().min(this.unread.len());
                buf.put_slice(&this.unread[..n]);
                this.unread.advance(n);
                if this.unread.is_empty() {
                    // The payload shares tungstenite's read chunk: let it go while idle.
                    this.unread = Bytes::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.finished || this.too_big {
                return Poll::Ready(Ok(()));
            }
            let next = ready!(Pin::new(this.socket()?).poll_next(cx));
            match next {
                Some(Ok(Message::Binary(data))) => this.unread = data,
                Some(Ok(Message::Text(text))) => this.unread = Bytes::from(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => {
                    this.finished = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => return Poll::Ready(Err(this.failed(e))),
            }
        }
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Err(e) = ready!(Pin::new(this.socket()?).poll_ready(cx)) {
            return Poll::Ready(Err(this.failed(e)));
        }
        let n = buf.len().min(this.frame_bytes_max);
        let frame = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
        if let Err(e) = Pin::new(this.socket()?).start_send(frame) {
            return Poll::Ready(Err(this.failed(e)));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match ready!(Pin::new(this.socket()?).poll_flush(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(this.failed(e))),
        }
    }

    /// Flushes; the close frame itself is sent by the route once the protocol is done, with a
    /// code saying why.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for WsStream {
    fn drop(&mut self) {
        if let (Some(socket), Some(tx)) = (self.socket.take(), self.returned.take()) {
            let _ = tx.send(Returned {
                socket,
                too_big: self.too_big,
                finished: self.finished,
            });
        }
    }
}
