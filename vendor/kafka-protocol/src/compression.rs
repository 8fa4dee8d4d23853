//! Provides compression utilities for encoding records.
//!
//! This module has implementations of gzip, Snappy, as well as a noop compression format that
//! allows encoding and decoding records into a [`Record`](crate::records::Record).

use crate::protocol::buf::{ByteBuf, ByteBufMut};
use anyhow::Result;

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4;
mod none;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

#[cfg(feature = "gzip")]
pub use gzip::Gzip;
#[cfg(feature = "lz4")]
pub use lz4::Lz4;
pub use none::None;
#[cfg(feature = "snappy")]
pub use snappy::Snappy;
#[cfg(feature = "zstd")]
pub use zstd::Zstd;

/// Porter patch: the most bytes one batch's records may decompress to, by default. A produce
/// request is bounded in its compressed size, but gzip expands up to ~1000x and a zstd frame of
/// RLE blocks far more, so a 1 MB request could otherwise make the broker allocate gigabytes.
/// Past the limit, decoding fails ("decompression bomb") before more is allocated; 64 MiB is 64
/// times Kafka's default `max.message.bytes`.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

static DECOMPRESSED_LIMIT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(DECOMPRESSED_BYTES_MAX);

/// Porter patch: changes the decompression limit for the whole process (a broker setting;
/// tests use a small one).
pub fn set_decompressed_bytes_max(bytes: usize) {
    DECOMPRESSED_LIMIT.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Porter patch: the decompression limit in force.
pub fn decompressed_bytes_max() -> usize {
    DECOMPRESSED_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Porter patch: reads `reader` to its end, failing once more than the limit came out.
#[allow(dead_code)] // unused when no codec feature is on
pub(crate) fn read_bounded(reader: impl std::io::Read, codec: &str) -> Result<bytes::Bytes> {
    use std::io::Read as _;
    // Grown by doubling, but never past the limit: a bomb costs at most 1.5 times the limit
    // while the last growth copies (`read_to_end` would double to twice the limit). Each growth
    // zero-fills its new part once; `filled` bytes of `out` hold data.
    let bound = decompressed_bytes_max() + 1;
    let mut reader = reader.take(bound as u64);
    let mut out: Vec<u8> = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            let grown = (out.len() * 2).clamp(64 << 10, bound);
            if grown <= out.len() {
                break;
            }
            out.reserve_exact(grown - out.len());
            out.resize(grown, 0);
        }
        let n = reader
            .read(&mut out[filled..])
            .map_err(|e| anyhow::anyhow!("Failed to decompress {codec}: {e}"))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    out.truncate(filled);
    check_decompressed(out.len(), codec)?;
    Ok(out.into())
}

/// Porter patch: an error when `len` decompressed bytes are past the limit.
pub(crate) fn check_decompressed(len: usize, codec: &str) -> Result<()> {
    let max = decompressed_bytes_max();
    if len > max {
        anyhow::bail!(
            "{codec} batch decompresses to more than {max} bytes (a decompression bomb?)"
        );
    }
    Ok(())
}

#[cfg(all(
    test,
    feature = "gzip",
    feature = "zstd",
    feature = "lz4",
    feature = "snappy"
))]
mod bomb_tests {
    use bytes::BytesMut;

    use super::*;

    fn bomb<C: Compressor<BytesMut, BufMut = BytesMut>>(len: usize) -> BytesMut {
        let mut compressed = BytesMut::new();
        C::compress(&mut compressed, |out: &mut BytesMut| {
            out.resize(len, 0);
            Ok(())
        })
        .unwrap();
        compressed
    }

    fn expand<D: Decompressor<bytes::Bytes, Buf = bytes::Bytes>>(
        compressed: BytesMut,
    ) -> Result<usize> {
        D::decompress(&mut compressed.freeze(), |out: &mut bytes::Bytes| {
            Ok(out.len())
        })
    }

    /// Zeros compress to almost nothing: past the limit every codec refuses them, under it
    /// every codec gives them back.
    #[test]
    fn every_codec_refuses_a_batch_that_decompresses_past_the_limit() {
        set_decompressed_bytes_max(256 << 10);
        let small = 200 << 10;
        let large = 300 << 10;
        assert_eq!(expand::<Gzip>(bomb::<Gzip>(small)).unwrap(), small);
        assert_eq!(expand::<Zstd>(bomb::<Zstd>(small)).unwrap(), small);
        assert_eq!(expand::<Lz4>(bomb::<Lz4>(small)).unwrap(), small);
        assert_eq!(expand::<Snappy>(bomb::<Snappy>(small)).unwrap(), small);
        for (codec, refused) in [
            ("gzip", expand::<Gzip>(bomb::<Gzip>(large))),
            ("zstd", expand::<Zstd>(bomb::<Zstd>(large))),
            ("lz4", expand::<Lz4>(bomb::<Lz4>(large))),
            ("snappy", expand::<Snappy>(bomb::<Snappy>(large))),
        ] {
            let error = refused.expect_err(codec).to_string();
            assert!(error.contains("decompression bomb"), "{codec}: {error}");
        }
    }
}

/// A trait for record compression algorithms.
pub trait Compressor<B: ByteBufMut> {
    /// Target buffer type for compression.
    type BufMut: ByteBufMut;
    /// Compresses into provided [`ByteBufMut`], with records encoded by `F` into `R`.
    fn compress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::BufMut) -> Result<R>;
}

/// A trait for record decompression algorithms.
pub trait Decompressor<B: ByteBuf> {
    /// Target buffer type for decompression.
    type Buf: ByteBuf;
    /// Decompress records from `B` mapped using `F` into `R`.
    fn decompress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::Buf) -> Result<R>;
}
