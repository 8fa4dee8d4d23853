//! The bounded outbound queue of one connection and the writer that drains it under a
//! write-stall deadline. Frames carry their [`Charge`], released once written, so queued
//! responses count against the connection's memory share; the queue itself holds at most
//! `frames_max` frames. A peer that stops reading makes a write stall; past the deadline the
//! writer ends with a [`CloseReason`] naming it, instead of pinning the queued bytes forever.
//!
//! Protocols that write from their own loop (AMQP gathers many frames into one buffer) can call
//! [`write_within`] directly instead of running an [`OutboundWriter`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::budget::Charge;
use crate::close::{CloseReason, Deadline};
use crate::registry::ByteCounters;

/// Frames gathered into one vectored write at most.
const FRAMES_PER_WRITE_MAX: usize = 64;

/// One frame to write, with the memory it holds.
#[derive(Debug)]
pub struct OutboundFrame {
    pub bytes: Bytes,
    /// Released when the frame has been written (or dropped).
    pub charge: Option<Charge>,
}

/// The outbound queue's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboundLimits {
    /// Frames queued at most; senders wait past it.
    pub frames_max: usize,
    /// A write that makes no progress for this long ends the writer.
    pub write_stall: Duration,
}

/// The sending side, held by the connection's event loop.
#[derive(Clone, Debug)]
pub struct OutboundSender {
    tx: mpsc::Sender<OutboundFrame>,
}

/// The writer went away (it failed or was stopped); the connection should end.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the connection's writer has stopped")]
pub struct WriterGone;

impl OutboundSender {
    /// Queues a frame, waiting while `frames_max` are queued.
    pub async fn send(&self, frame: OutboundFrame) -> Result<(), WriterGone> {
        self.tx.send(frame).await.map_err(|_| WriterGone)
    }

    /// Resolves when the writer has stopped (a stall, a write error, or all senders dropped).
    /// Poll it in the connection's `select!` to notice a dead writer at once.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The writing side: run it on its own task with [`OutboundWriter::run`].
#[derive(Debug)]
pub struct OutboundWriter<W> {
    writer: W,
    rx: mpsc::Receiver<OutboundFrame>,
    write_stall: Duration,
    counters: Option<Arc<ByteCounters>>,
}

/// A connection's outbound queue over `writer`. `counters` (from the connection's
/// registration) count the bytes written.
pub fn outbound<W>(
    writer: W,
    limits: OutboundLimits,
    counters: Option<Arc<ByteCounters>>,
) -> (OutboundSender, OutboundWriter<W>)
where
    W: AsyncWrite + Unpin + Send,
{
    let (tx, rx) = mpsc::channel(limits.frames_max.max(1));
    (
        OutboundSender { tx },
        OutboundWriter {
            writer,
            rx,
            write_stall: limits.write_stall,
            counters,
        },
    )
}

impl<W: AsyncWrite + Unpin + Send> OutboundWriter<W> {
    /// Writes queued frames in order until every sender is dropped (then flushes, shuts the
    /// write side down and returns `Ok`), a write fails (`Err` peer), or a write stalls past
    /// the deadline (`Err` write-stall deadline). Returns the writer so a protocol can still
    /// send a goodbye on it.
    pub async fn run(mut self) -> (W, Result<(), CloseReason>) {
        let mut batch: Vec<OutboundFrame> = Vec::with_capacity(FRAMES_PER_WRITE_MAX);
        let result = loop {
            let Some(first) = self.rx.recv().await else {
                let stall = self.write_stall;
                let _ = tokio::time::timeout(stall, self.writer.shutdown()).await;
                break Ok(());
            };
            batch.push(first);
            while batch.len() < FRAMES_PER_WRITE_MAX {
                match self.rx.try_recv() {
                    Ok(frame) => batch.push(frame),
                    Err(_) => break,
                }
            }
            let mut failed = None;
            for frame in batch.drain(..) {
                if let Err(reason) =
                    write_within(&mut self.writer, &frame.bytes, self.write_stall).await
                {
                    failed = Some(reason);
                    break;
                }
                if let Some(counters) = &self.counters {
                    counters.count_out(frame.bytes.len() as u64);
                }
            }
            if let Some(reason) = failed {
                break Err(reason);
            }
            if let Err(reason) = flush_within(&mut self.writer, self.write_stall).await {
                break Err(reason);
            }
        };
        // Dropping the receiver releases every queued frame's charge and wakes senders.
        drop(self.rx);
        (self.writer, result)
    }
}

/// Writes all of `bytes`, closing (with the write-stall reason) if any single write makes no
/// progress for `stall`. A slow reader that keeps taking bytes is never cut off; a peer that
/// stopped reading is, after `stall`.
pub async fn write_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut bytes: &[u8],
    stall: Duration,
) -> Result<(), CloseReason> {
    while !bytes.is_empty() {
        match tokio::time::timeout(stall, writer.write(bytes)).await {
            Err(_) => return Err(CloseReason::deadline(Deadline::WriteStall, stall)),
            Ok(Ok(0)) => return Err(CloseReason::peer("connection closed while writing")),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(CloseReason::peer(format!("write failed: {e}"))),
        }
    }
    Ok(())
}

/// Flushes under the same write-stall deadline.
pub async fn flush_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    stall: Duration,
) -> Result<(), CloseReason> {
    match tokio::time::timeout(stall, writer.flush()).await {
        Err(_) => Err(CloseReason::deadline(Deadline::WriteStall, stall)),
        Ok(Err(e)) => Err(CloseReason::peer(format!("write failed: {e}"))),
        Ok(Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::budget::MemoryBudget;
    use crate::close::ClosedBy;
    use crate::limits::ListenerLimits;

    const LIMITS: OutboundLimits = OutboundLimits {
        frames_max: 4,
        write_stall: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_is_closed_at_the_stall_deadline_and_memory_freed() {
        let budget = MemoryBudget::new(&ListenerLimits::default()).unwrap();
        let conn = budget.connection();
        // A pipe with a 1 KiB buffer whose other end is never read.
        let (ours, _theirs) = tokio::io::duplex(1024);
        let counters = Arc::new(ByteCounters::default());
        let (tx, writer) = outbound(ours, LIMITS, Some(counters.clone()));
        let task = tokio::spawn(writer.run());
        for _ in 0..3 {
            let charge = conn.charge_now(64 << 10);
            tx.send(OutboundFrame {
                bytes: Bytes::from(vec![7u8; 64 << 10]),
                charge: Some(charge),
            })
            .await
            .unwrap();
        }
        assert_eq!(conn.held_bytes(), 3 * (64 << 10));
        let started = tokio::time::Instant::now();
        let (_, result) = task.await.unwrap();
        let reason = result.unwrap_err();
        assert_eq!(reason.by, ClosedBy::Deadline(Deadline::WriteStall));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(
            conn.held_bytes(),
            0,
            "queued frames' memory is released on close"
        );
        assert_eq!(counters.get().1, 0, "no whole frame was written");
        tx.closed().await;
        assert_eq!(
            tx.send(OutboundFrame {
                bytes: Bytes::new(),
                charge: None
            })
            .await,
            Err(WriterGone)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let (tx, writer) = outbound(ours, LIMITS, None);
        let task = tokio::spawn(writer.run());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                // Takes 512 bytes every 20 s: each write progresses within the 30 s deadline,
                // though the whole frame takes far longer.
                tokio::time::sleep(Duration::from_secs(20)).await;
                match theirs.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        tx.send(OutboundFrame {
            bytes: Bytes::from(vec![1u8; 8 << 10]),
            charge: None,
        })
        .await
        .unwrap();
        drop(tx);
        let (_, result) = task.await.unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(reader.await.unwrap(), vec![1u8; 8 << 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_in_frames() {
        let (ours, _theirs) = tokio::io::duplex(16);
        let (tx, _writer) = outbound(ours, LIMITS, None);
        for _ in 0..LIMITS.frames_max {
            tx.send(OutboundFrame {
                bytes: Bytes::from_static(b"x"),
                charge: None,
            })
            .await
            .unwrap();
        }
        let more = tokio::time::timeout(
            Duration::from_secs(3600),
            tx.send(OutboundFrame {
                bytes: Bytes::from_static(b"x"),
                charge: None,
            }),
        )
        .await;
        assert!(more.is_err(), "a full queue makes the sender wait");
    }
}
