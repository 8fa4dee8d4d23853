//! Frames made of parts: bytes in memory and regions of files, written without ever holding a
//! file region whole in memory.
//!
//! A Kafka Fetch answer is a few hundred bytes of header around record batches that already lie
//! in segment files, up to 50 MiB of them. Reading the batches into the heap to build the answer
//! would make a fetch of 50 MB cost 50 MB of RSS for as long as the client takes to read it,
//! and a client that pipelines fetches and never reads could pin that many times over. Instead
//! the answer is queued as a [`SplicedFrame`]: its encoded bytes with (file, position, length)
//! regions between them, and the writer assembles it chunk by chunk into one reusable buffer of
//! [`SPLICE_CHUNK_BYTES`] (page cache → buffer → socket), writing each chunk before reading the
//! next. Memory per connection is one chunk, whatever the size of the answers queued.
//!
//! Why not sendfile(2): the writer is generic over the stream (TLS included, where the bytes
//! must pass through the cipher anyway) and knows no file descriptor. The copy through one
//! cached chunk costs about what the kernel's own copy into the socket buffer does; the
//! property that matters — RSS independent of the size of what is queued — holds either way.
//!
//! Each chunk is first filled from the page cache with `preadv2(RWF_NOWAIT)`, which copies what
//! is cached and refuses (EAGAIN) instead of waiting for the disk: a memory copy, no disk I/O on
//! the reactor. Whatever is not cached is read on tokio's blocking pool, one blocking call per
//! chunk. Consumers mostly read what was just written, so most chunks never leave the reactor:
//! measured, a hop to the blocking pool per 256 KiB chunk cost ~20% of consume throughput on a
//! loaded machine. A chunk is filled from as many parts as fit, so a small answer is one copy
//! and one write, as it was when it was a single buffer.
//!
//! A region keeps its file open through the `Arc`: when retention or compaction deletes the
//! segment while the answer is queued, the unlinked file still reads the same bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;

use crate::budget::Charge;
use crate::close::CloseReason;
use crate::outbound::write_within;

/// The writer's assembly buffer for spliced frames, per connection (allocated while such frames
/// are being written, released when the queue runs empty). 256 KiB: large enough that the
/// per-chunk blocking call and write syscall cost little next to copying the bytes, small next
/// to a connection's memory share.
pub const SPLICE_CHUNK_BYTES: usize = 256 * 1024;

/// Bytes of a file, read only when written.
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

/// One part of a [`SplicedFrame`].
#[derive(Clone, Debug)]
pub enum FramePart {
    Bytes(Bytes),
    File(FileRegion),
}

impl FramePart {
    pub fn len(&self) -> u64 {
        match self {
            FramePart::Bytes(b) => b.len() as u64,
            FramePart::File(r) => r.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The last handle to a file closes it, and closing a file whose segment retention already
/// unlinked frees its blocks: milliseconds for a 1 GiB segment, too long for the reactor, where
/// a written or dropped answer usually lets go of its regions. So the last handle is dropped on
/// the blocking pool. (Two regions of one file dropped at the same instant may both see two
/// handles and close it here: rare, and no worse than before.)
impl Drop for FileRegion {
    fn drop(&mut self) {
        if Arc::strong_count(&self.file) == 1 {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let last = Arc::clone(&self.file);
                runtime.spawn_blocking(move || drop(last));
            }
        }
    }
}

/// A frame written as the concatenation of its parts./// A frame written as the concatenation of its parts.
#[derive(Debug)]
pub struct SplicedFrame {
    pub parts: Vec<FramePart>,
    /// The memory the frame holds (its `Bytes` parts; file regions are not in memory). Released
    /// when the frame has been written (or dropped).
    pub charge: Option<Charge>,
}

impl SplicedFrame {
    /// Bytes the frame puts on the wire.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(FramePart::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the assembly of a frame has got to: part `index`, `offset` bytes into it.
struct Cursor {
    parts: Vec<FramePart>,
    index: usize,
    offset: u64,
}

impl Cursor {
    fn done(&self) -> bool {
        self.index == self.parts.len()
    }

    /// The chunk is full or the frame has ended.
    fn chunk_ready(&self, buffer: &[u8]) -> bool {
        self.done() || buffer.len() >= SPLICE_CHUNK_BYTES
    }

    /// Appends the frame's next bytes to `buffer` until it holds `SPLICE_CHUNK_BYTES` or the
    /// frame ends. With `cached_only`, file bytes come only from the page cache and the fill
    /// stops at the first that are not there (never blocks); without, it blocks on the disk.
    fn fill(&mut self, buffer: &mut Vec<u8>, cached_only: bool) -> std::io::Result<()> {
        while !self.chunk_ready(buffer) {
            let room = (SPLICE_CHUNK_BYTES - buffer.len()) as u64;
            let part = &self.parts[self.index];
            let take = (part.len() - self.offset).min(room) as usize;
            let got = match part {
                FramePart::Bytes(b) => {
                    let from = self.offset as usize;
                    buffer.extend_from_slice(&b[from..from + take]);
                    take
                }
                FramePart::File(r) => {
                    let at = buffer.len();
                    buffer.resize(at + take, 0);
                    let position = r.position + self.offset;
                    if cached_only {
                        let got = read_cached(&r.file, &mut buffer[at..], position)?;
                        buffer.truncate(at + got);
                        got
                    } else {
                        r.file.read_exact_at(&mut buffer[at..], position)?;
                        take
                    }
                }
            };
            self.offset += got as u64;
            if self.offset == part.len() {
                self.index += 1;
                self.offset = 0;
            }
            if got < take {
                return Ok(()); // the rest is not in the page cache
            }
        }
        Ok(())
    }
}

/// Reads what of `buf`'s range is in the page cache, without waiting for the disk: the bytes
/// read, 0 when none are cached (or the kernel or file system cannot say: then the blocking path
/// reads them, and reports a real error or end of file).
fn read_cached(file: &File, buf: &mut [u8], position: u64) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let Ok(offset) = libc::off_t::try_from(position) else {
        return Ok(0);
    };
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, which outlives the call; the fd is open (we hold the File).
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => Ok(0),
        _ => Err(e),
    }
}

/// Writes `parts` in order through `buffer` (reused across calls; taken from `chunk` or
/// allocated), each write under the write-stall deadline. Returns the bytes written and how it
/// ended; a failed file read ends the connection (the size prefix already promised the bytes).
pub(crate) async fn write_spliced<W: AsyncWrite + Unpin>(
    writer: &mut W,
    parts: Vec<FramePart>,
    stall: Duration,
    chunk: &mut Option<Vec<u8>>,
) -> (u64, Result<(), CloseReason>) {
    let mut cursor = Cursor {
        parts,
        index: 0,
        offset: 0,
    };
    let mut written = 0u64;
    while !cursor.done() {
        let mut buffer = chunk
            .take()
            .unwrap_or_else(|| Vec::with_capacity(SPLICE_CHUNK_BYTES));
        buffer.clear();
        let mut result = cursor.fill(&mut buffer, true);
        if result.is_ok() && !cursor.chunk_ready(&buffer) {
            let filled = tokio::task::spawn_blocking(move || {
                let result = cursor.fill(&mut buffer, false);
                (cursor, buffer, result)
            })
            .await;
            (cursor, buffer, result) = match filled {
                Ok(filled) => filled,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "reading a file region for a response failed");
            return (
                written,
                Err(CloseReason::local(
                    0,
                    format!("reading a response's data failed: {e}"),
                )),
            );
        }
        let wrote = write_within(writer, &buffer, stall).await;
        written += buffer.len() as u64;
        *chunk = Some(buffer);
        if let Err(reason) = wrote {
            return (written, Err(reason));
        }
    }
    (written, Ok(()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A file holding `bytes`, already unlinked (as a segment deleted by retention while its
    /// region is queued): it must still read.
    fn file_with(bytes: &[u8]) -> Arc<File> {
        let path = std::env::temp_dir().join(format!(
            "porter-spliced-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.write_all(bytes).unwrap();
        std::fs::remove_file(&path).unwrap();
        Arc::new(file)
    }

    /// The page-cache fill and the blocking fill give the same chunks (the blocking one is what
    /// serves data that is not cached).
    #[test]
    fn cached_and_blocking_fills_agree() {
        let data: Vec<u8> = (0..SPLICE_CHUNK_BYTES + 999)
            .map(|i| (i % 241) as u8)
            .collect();
        let file = file_with(&data);
        let parts = || {
            vec![
                FramePart::Bytes(Bytes::from_static(b"h")),
                FramePart::File(FileRegion {
                    file: file.clone(),
                    position: 1,
                    len: (data.len() - 1) as u64,
                }),
            ]
        };
        let chunks = |cached_only: bool| {
            let mut cursor = Cursor {
                parts: parts(),
                index: 0,
                offset: 0,
            };
            let mut out = Vec::new();
            while !cursor.done() {
                let mut buffer = Vec::new();
                cursor.fill(&mut buffer, cached_only).unwrap();
                if cached_only && !cursor.chunk_ready(&buffer) {
                    cursor.fill(&mut buffer, false).unwrap();
                }
                assert!(buffer.len() <= SPLICE_CHUNK_BYTES);
                out.push(buffer);
            }
            out
        };
        assert_eq!(chunks(true), chunks(false));
        assert_eq!(chunks(false).concat().len(), data.len());
    }

    /// A frame of bytes and file regions larger than the chunk arrives whole and in order, and
    /// the buffer used never grows past one chunk.
    #[tokio::test]
    async fn parts_arrive_whole_and_in_order_through_one_chunk() {
        let data: Vec<u8> = (0..3 * SPLICE_CHUNK_BYTES + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        let file = file_with(&data);
        let parts = vec![
            FramePart::Bytes(Bytes::from_static(b"head")),
            FramePart::File(FileRegion {
                file: file.clone(),
                position: 7,
                len: (data.len() - 7) as u64,
            }),
            FramePart::Bytes(Bytes::from_static(b"mid")),
            FramePart::File(FileRegion {
                file,
                position: 0,
                len: 5,
            }),
            FramePart::Bytes(Bytes::from_static(b"tail")),
        ];
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&data[7..]);
        expected.extend_from_slice(b"mid");
        expected.extend_from_slice(&data[..5]);
        expected.extend_from_slice(b"tail");
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = None;
        let (written, result) =
            write_spliced(&mut out, parts, Duration::from_secs(5), &mut chunk).await;
        assert_eq!(result, Ok(()));
        assert_eq!(written, expected.len() as u64);
        assert_eq!(out, expected);
        assert!(chunk.unwrap().capacity() <= SPLICE_CHUNK_BYTES);
    }
}
