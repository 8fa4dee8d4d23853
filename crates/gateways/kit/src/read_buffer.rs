//! [`LazyBufReader`]: a buffered reader whose buffer exists only while bytes are arriving.
//!
//! Why: most of a broker's connections are idle most of the time, and a read buffer sized for
//! throughput (64 KiB) held by each of 10,000 idle connections is 640 MiB of nothing. This
//! reader allocates its buffer when a read is asked for and frees it again when the socket has
//! nothing more to give (the read would wait) and every buffered byte was consumed. A busy
//! connection keeps its buffer between reads that find bytes waiting; an idle one holds none.
//! The price is one allocation per "socket drained" wake-up, which is already paying for a
//! readiness event and a system call.
//!
//! Reads at least as large as the buffer bypass it (as `tokio::io::BufReader` does), so a large
//! frame is read straight into its own allocation.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

/// A buffered reader over `R` that holds its buffer only while bytes are buffered or arriving.
#[derive(Debug)]
pub struct LazyBufReader<R> {
    inner: R,
    /// Empty (no allocation) while idle; `capacity` bytes of room while reading.
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    capacity: usize,
}

impl<R: AsyncRead + Unpin> LazyBufReader<R> {
    /// A reader that buffers up to `capacity` bytes per read of `inner`.
    pub fn with_capacity(capacity: usize, inner: R) -> Self {
        LazyBufReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            capacity: capacity.max(1),
        }
    }

    /// The bytes read but not yet consumed.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Bytes of buffer held now: 0 while idle.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn release(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for LazyBufReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let me = self.get_mut();
        if me.pos >= me.buf.len() {
            me.buf.clear();
            me.pos = 0;
            me.buf.reserve_exact(me.capacity);
            let spare: &mut [MaybeUninit<u8>] = me.buf.spare_capacity_mut();
            let mut read = ReadBuf::uninit(&mut spare[..me.capacity]);
            match Pin::new(&mut me.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
                    unsafe { me.buf.set_len(n) };
                }
                Poll::Ready(Err(e)) => {
                    me.release();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    // Nothing buffered and nothing arriving: hold no memory while waiting.
                    me.release();
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(&me.buf[me.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let me = self.get_mut();
        me.pos = (me.pos + amt).min(me.buf.len());
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LazyBufReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Nothing buffered and the caller has room for a whole buffer: read straight into it.
        if self.pos >= self.buf.len() && out.remaining() >= self.capacity {
            self.release();
            return Pin::new(&mut self.inner).poll_read(cx, out);
        }
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(out.remaining());
        out.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_buffer_is_freed_while_waiting_and_reads_are_whole_and_in_order() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let mut reader = LazyBufReader::with_capacity(1024, ours);
        assert_eq!(reader.allocated(), 0, "no buffer before the first read");
        theirs.write_all(&[1, 2, 3, 4, 5, 6, 7]).await.unwrap();
        assert_eq!(reader.read_u32().await.unwrap(), 0x01020304);
        assert_eq!(reader.buffer(), &[5, 6, 7]);
        assert!(reader.allocated() >= 1024);
        let mut rest = [0u8; 3];
        reader.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, [5, 6, 7]);
        // The next read waits: the buffer goes.
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), reader.read_u8()).await;
        assert!(pending.is_err());
        assert_eq!(reader.allocated(), 0, "an idle reader holds no buffer");
        // A large read bypasses the buffer; bytes stay in order across both paths.
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        theirs.write_all(&big).await.unwrap();
        drop(theirs);
        let mut got = Vec::new();
        let mut small = [0u8; 10];
        reader.read_exact(&mut small).await.unwrap();
        got.extend_from_slice(&small);
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, big);
    }
}
