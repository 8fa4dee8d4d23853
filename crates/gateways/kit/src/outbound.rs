//! The bounded outbound queue of one connection and the writer that drains it under a
//! write-stall deadline. Frames carry their [`Charge`], released once written, so queued
//! responses count against the connection's memory share; the queue itself holds at most
//! `frames_max` frames. A peer that stops reading makes a write stall; past the deadline the
//! writer ends with a [`CloseReason`] naming it, instead of pinning the queued bytes forever.
//!
//! A frame may also be a [`SplicedFrame`] of bytes and file regions (a Kafka Fetch answer); the
//! writer streams it through one reusable chunk (see [`crate::spliced`]), so a queued answer
//! costs its header bytes, not its records.
//!
//! Protocols that write from their own loop (AMQP gathers many frames into one buffer) can call
//! [`write_within`] directly instead of running an [`OutboundWriter`].

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::budget::Charge;
use crate::close::{CloseReason, Deadline};
use crate::registry::ByteCounters;
use crate::spliced::{write_spliced, SplicedFrame};

/// Frames gathered into one vectored write at most.
const FRAMES_PER_WRITE_MAX: usize = 64;

/// One frame to write, with the memory it holds.
#[derive(Debug)]
pub struct OutboundFrame {
    pub bytes: Bytes,
    /// Released when the frame has been written (or dropped).
    pub charge: Option<Charge>,
}

/// What the queue holds: plain frames (gathered into vectored writes) or spliced ones.
#[derive(Debug)]
enum Queued {
    Frame(OutboundFrame),
    Spliced(SplicedFrame),
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
    tx: mpsc::Sender<Queued>,
}

/// The writer went away (it failed or was stopped); the connection should end.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the connection's writer has stopped")]
pub struct WriterGone;

impl OutboundSender {
    /// Queues a frame, waiting while `frames_max` are queued.
    pub async fn send(&self, frame: OutboundFrame) -> Result<(), WriterGone> {
        self.tx
            .send(Queued::Frame(frame))
            .await
            .map_err(|_| WriterGone)
    }

    /// Queues a frame of parts (bytes and file regions), in order with the others.
    pub async fn send_spliced(&self, frame: SplicedFrame) -> Result<(), WriterGone> {
        self.tx
            .send(Queued::Spliced(frame))
            .await
            .map_err(|_| WriterGone)
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
    rx: mpsc::Receiver<Queued>,
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
        // A spliced frame found while gathering plain ones: written next.
        let mut next: Option<Queued> = None;
        // The assembly buffer of spliced frames, kept while more are queued.
        let mut chunk: Option<Vec<u8>> = None;
        let result = loop {
            let first = match next.take() {
                Some(queued) => queued,
                None => match self.rx.recv().await {
                    Some(queued) => queued,
                    None => {
                        let stall = self.write_stall;
                        let _ = tokio::time::timeout(stall, self.writer.shutdown()).await;
                        break Ok(());
                    }
                },
            };
            let written = match first {
                Queued::Spliced(SplicedFrame { parts, charge }) => {
                    let (bytes, result) =
                        write_spliced(&mut self.writer, parts, self.write_stall, &mut chunk).await;
                    drop(charge);
                    Written { bytes, result }
                }
                Queued::Frame(first) => {
                    // Sized to what is queued, and not kept while waiting: an idle connection
                    // holds no gather buffer.
                    let mut batch: Vec<OutboundFrame> =
                        Vec::with_capacity(FRAMES_PER_WRITE_MAX.min(1 + self.rx.len()));
                    batch.push(first);
                    while batch.len() < FRAMES_PER_WRITE_MAX {
                        match self.rx.try_recv() {
                            Ok(Queued::Frame(frame)) => batch.push(frame),
                            Ok(spliced) => {
                                next = Some(spliced);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // One vectored write for the gathered frames (one syscall for many small
                    // answers); each frame's charge is released once the whole gather is
                    // written.
                    write_frames_within(&mut self.writer, &batch, self.write_stall).await
                }
            };
            if let Some(counters) = &self.counters {
                counters.count_out(written.bytes);
            }
            if let Err(reason) = written.result {
                break Err(reason);
            }
            if next.is_none() && self.rx.is_empty() {
                chunk = None; // idle connections hold no chunk
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

/// What [`write_frames_within`] managed.
struct Written {
    bytes: u64,
    result: Result<(), CloseReason>,
}

/// Writes `frames` in order with vectored writes, under the same per-write stall deadline as
/// [`write_within`].
async fn write_frames_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: &[OutboundFrame],
    stall: Duration,
) -> Written {
    let (mut frame, mut offset, mut total) = (0usize, 0usize, 0u64);
    loop {
        while frame < frames.len() && offset == frames[frame].bytes.len() {
            frame += 1;
            offset = 0;
        }
        if frame == frames.len() {
            return Written {
                bytes: total,
                result: Ok(()),
            };
        }
        let slices: Vec<IoSlice<'_>> = std::iter::once(&frames[frame].bytes[offset..])
            .chain(frames[frame + 1..].iter().map(|f| &f.bytes[..]))
            .map(IoSlice::new)
            .collect();
        let mut n = match tokio::time::timeout(stall, writer.write_vectored(&slices)).await {
            Err(_) => {
                let reason = CloseReason::deadline(Deadline::WriteStall, stall);
                return Written {
                    bytes: total,
                    result: Err(reason),
                };
            }
            Ok(Ok(0)) => {
                let reason = CloseReason::peer("connection closed while writing");
                return Written {
                    bytes: total,
                    result: Err(reason),
                };
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                let reason = CloseReason::peer(format!("write failed: {e}"));
                return Written {
                    bytes: total,
                    result: Err(reason),
                };
            }
        };
        total += n as u64;
        while n > 0 {
            let left = frames[frame].bytes.len() - offset;
            if n >= left {
                n -= left;
                frame += 1;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
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
        assert_eq!(counters.get().1, 1024, "bytes out are what the pipe took");
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
    async fn many_frames_arrive_whole_and_in_order_through_a_small_pipe() {
        let (ours, mut theirs) = tokio::io::duplex(100);
        let counters = Arc::new(ByteCounters::default());
        let (tx, writer) = outbound(ours, LIMITS, Some(counters.clone()));
        let task = tokio::spawn(writer.run());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut expected = Vec::new();
        for i in 0..500u32 {
            let frame: Vec<u8> = (0..(i % 37)).map(|j| (i + j) as u8).collect();
            expected.extend_from_slice(&frame);
            let bytes = Bytes::from(frame);
            tx.send(OutboundFrame {
                bytes,
                charge: None,
            })
            .await
            .unwrap();
        }
        drop(tx);
        let (_, result) = task.await.unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(reader.await.unwrap(), expected);
        assert_eq!(counters.get().1, expected.len() as u64);
    }

    /// Spliced frames keep their place among plain ones, and a closed writer releases their
    /// charges too.
    #[tokio::test]
    async fn spliced_frames_keep_their_place_among_plain_ones() {
        use crate::spliced::FramePart;
        let budget = MemoryBudget::new(&ListenerLimits::default()).unwrap();
        let conn = budget.connection();
        let (ours, mut theirs) = tokio::io::duplex(100);
        let (tx, writer) = outbound(ours, LIMITS, None);
        let task = tokio::spawn(writer.run());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut expected = Vec::new();
        for i in 0..50u8 {
            if i % 3 == 0 {
                let parts = vec![
                    FramePart::Bytes(Bytes::from(vec![i; 3])),
                    FramePart::Bytes(Bytes::from(vec![i + 1; 1000])),
                ];
                expected.extend(std::iter::repeat_n(i, 3));
                expected.extend(std::iter::repeat_n(i + 1, 1000));
                tx.send_spliced(SplicedFrame {
                    parts,
                    charge: Some(conn.charge_now(1003)),
                })
                .await
                .unwrap();
            } else {
                expected.extend(std::iter::repeat_n(i, 10));
                tx.send(OutboundFrame {
                    bytes: Bytes::from(vec![i; 10]),
                    charge: None,
                })
                .await
                .unwrap();
            }
        }
        drop(tx);
        let (_, result) = task.await.unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(reader.await.unwrap(), expected);
        assert_eq!(conn.held_bytes(), 0);
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
