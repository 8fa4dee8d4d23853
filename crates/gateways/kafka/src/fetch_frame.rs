//! A Fetch answer whose record batches stay in the segment files until written.
//!
//! The handler leaves each partition's records as a region of a log file ([`FetchAnswer`]) and
//! puts a [`placeholder`] in the response where they go. [`encode_fetch`] encodes the response
//! with kafka-protocol's own encoder into a buffer that recognises the placeholder by its
//! address (no byte pattern a topic name or a client could forge), writes the real length
//! prefix there instead, and cuts the frame: encoded bytes, file region, encoded bytes, ... The
//! kit's writer streams the regions from the files (see `porter_gateway_kit::spliced`), so a
//! 50 MB answer holds a few hundred bytes in memory while queued, and its size prefix is exact
//! (encoded bytes + region lengths).

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use porter_gateway_kit::spliced::{FileRegion, FramePart};

/// What a record field holds until the frame is cut: only its address matters.
static PLACEHOLDER: [u8; 8] = *b"<region>";

/// The records value standing for the next region of a [`FetchAnswer`].
pub fn placeholder() -> Bytes {
    Bytes::from_static(&PLACEHOLDER)
}

/// A Fetch response and, in the order the encoder meets their placeholders (topics, then
/// partitions, as in the response), the file regions of its records.
#[derive(Debug, Default)]
pub struct FetchAnswer {
    pub response: FetchResponse,
    pub regions: Vec<FileRegion>,
}

impl FetchAnswer {
    /// The plain encoding, for an answer without regions (the frame table's path).
    pub fn encode(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.regions.is_empty(),
            "a Fetch answer with file regions must be encoded with encode_fetch"
        );
        self.response.encode(buf, version)
    }

    pub fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        self.response.compute_size(version)
    }
}

/// The response frame, size prefix included, as parts; and the bytes of it held in memory.
pub fn encode_fetch(
    version: i16,
    correlation_id: i32,
    answer: &FetchAnswer,
) -> anyhow::Result<(Vec<FramePart>, u64)> {
    let mut buf = SpliceBuf {
        buf: BytesMut::with_capacity(64 + answer.response.compute_size(version)?),
        flexible: version >= 12,
        lengths: answer.regions.iter().map(|r| r.len).collect(),
        cuts: Vec::with_capacity(answer.regions.len()),
        error: None,
    };
    buf.put_i32(0); // size, patched below
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, ApiKey::Fetch.response_header_version(version))?;
    answer.response.encode(&mut buf, version)?;
    if let Some(error) = buf.error {
        anyhow::bail!(error);
    }
    anyhow::ensure!(
        buf.cuts.len() == answer.regions.len(),
        "{} record placeholders for {} regions",
        buf.cuts.len(),
        answer.regions.len()
    );
    let size = (buf.buf.len() - 4) as u64 + buf.lengths.iter().sum::<u64>();
    let size = i32::try_from(size).map_err(|_| anyhow::anyhow!("response of {size} bytes"))?;
    buf.buf[0..4].copy_from_slice(&size.to_be_bytes());
    let in_memory = buf.buf.len() as u64;
    let bytes = buf.buf.freeze();
    let mut parts = Vec::with_capacity(2 * answer.regions.len() + 1);
    let mut from = 0;
    for (cut, region) in buf.cuts.iter().zip(&answer.regions) {
        if *cut > from {
            parts.push(FramePart::Bytes(bytes.slice(from..*cut)));
        }
        parts.push(FramePart::File(region.clone()));
        from = *cut;
    }
    if from < bytes.len() {
        parts.push(FramePart::Bytes(bytes.slice(from..)));
    }
    Ok((parts, in_memory))
}

/// A `BytesMut` that, when the encoder writes the placeholder, writes nothing but fixes the
/// length prefix just written (which counted the placeholder) to the region's length, and
/// records where the region goes.
struct SpliceBuf {
    buf: BytesMut,
    /// Records are `COMPACT_RECORDS` (unsigned varint length + 1) from v12, else `RECORDS`
    /// (int32 length).
    flexible: bool,
    lengths: Vec<u64>,
    cuts: Vec<usize>,
    error: Option<String>,
}

impl SpliceBuf {
    fn splice(&mut self) {
        let Some(&len) = self.lengths.get(self.cuts.len()) else {
            self.error = Some("more record placeholders than regions".into());
            return;
        };
        let placeholder = PLACEHOLDER.len() as u32;
        let mut prefix = Vec::with_capacity(5);
        let mut written = Vec::with_capacity(5);
        if self.flexible {
            put_varint(&mut written, placeholder + 1);
            match u32::try_from(len + 1) {
                Ok(n) => put_varint(&mut prefix, n),
                Err(_) => self.error = Some(format!("region of {len} bytes")),
            }
        } else {
            written.extend_from_slice(&(placeholder as i32).to_be_bytes());
            match i32::try_from(len) {
                Ok(n) => prefix.extend_from_slice(&n.to_be_bytes()),
                Err(_) => self.error = Some(format!("region of {len} bytes")),
            }
        }
        if !self.buf.ends_with(&written) {
            self.error = Some("a record placeholder without its length prefix".into());
        }
        if self.error.is_some() {
            return;
        }
        self.buf.truncate(self.buf.len() - written.len());
        self.buf.extend_from_slice(&prefix);
        self.cuts.push(self.buf.len());
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

// SAFETY: every method forwards to the inner `BytesMut`, which upholds `BufMut`'s contract;
// `put_slice` only adds an intercept before forwarding.
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.buf.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded with the caller's guarantee.
        unsafe { self.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.buf.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if std::ptr::eq(src.as_ptr(), PLACEHOLDER.as_ptr()) && src.len() == PLACEHOLDER.len() {
            self.splice();
        } else {
            self.buf.put_slice(src);
        }
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.buf.len()
    }

    fn seek(&mut self, offset: usize) {
        self.buf.resize(offset, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        &mut self.buf[r]
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Decodable, StrBytes};

    use super::*;

    /// The spliced frame, its parts concatenated, is byte for byte the frame the plain encoder
    /// makes with the records in memory, at every Fetch version (int32 and varint prefixes,
    /// short and long regions, partitions without records between them).
    #[test]
    fn a_spliced_frame_is_the_plain_frame() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        let path = std::env::temp_dir().join(format!("porter-fetch-frame-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&data).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let spans = [(0usize, 100usize), (500, 0), (1000, 69_000), (3, 127)];
        for version in 4..=18i16 {
            let mut plain = FetchResponse::default();
            let mut answer = FetchAnswer::default();
            for (t, chunk) in spans.chunks(2).enumerate() {
                let name = TopicName(StrBytes::from_string(format!("topic-{t}")));
                let mut plain_topic = FetchableTopicResponse::default().with_topic(name.clone());
                let mut topic = FetchableTopicResponse::default().with_topic(name);
                for (p, &(position, len)) in chunk.iter().enumerate() {
                    let data_of = |records| {
                        PartitionData::default()
                            .with_partition_index(p as i32)
                            .with_high_watermark(42)
                            .with_records(records)
                    };
                    plain_topic
                        .partitions
                        .push(data_of(Some(Bytes::copy_from_slice(
                            &data[position..position + len],
                        ))));
                    if len == 0 {
                        topic.partitions.push(data_of(Some(Bytes::new())));
                    } else {
                        topic.partitions.push(data_of(Some(placeholder())));
                        answer.regions.push(FileRegion {
                            file: file.clone(),
                            position: position as u64,
                            len: len as u64,
                        });
                    }
                }
                plain.responses.push(plain_topic);
                answer.response.responses.push(topic);
            }
            let expected = crate::frame::encode_response(
                ApiKey::Fetch,
                version,
                9,
                &crate::frame::ResponseKind::Fetch(FetchAnswer {
                    response: plain,
                    regions: Vec::new(),
                }),
            )
            .unwrap();
            let (parts, in_memory) = encode_fetch(version, 9, &answer).unwrap();
            assert!(in_memory < 1000, "v{version}: {in_memory} bytes in memory");
            let mut got = Vec::new();
            for part in parts {
                match part {
                    FramePart::Bytes(b) => got.extend_from_slice(&b),
                    FramePart::File(r) => {
                        let mut bytes = vec![0u8; r.len as usize];
                        r.file.read_exact_at(&mut bytes, r.position).unwrap();
                        got.extend_from_slice(&bytes);
                    }
                }
            }
            assert_eq!(got, expected.to_vec(), "v{version}");
            // And it decodes as a Fetch response.
            let mut body = Bytes::from(got).slice(4..);
            let _header =
                ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(version))
                    .unwrap();
            let decoded = FetchResponse::decode(&mut body, version).unwrap();
            assert_eq!(
                decoded.responses[1].partitions[0]
                    .records
                    .as_ref()
                    .unwrap()
                    .len(),
                69_000
            );
        }
    }
}
