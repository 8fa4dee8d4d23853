//! The two raw Kafka messages porter-bench writes by hand: a Fetch v4 request (the oldest
//! version Porter serves, with the non-flexible request header v1) and the parts of its
//! response a record counter needs. Used by the slow readers (which pipeline fetches and never
//! read) and the raw consumers (which read and count records from batch headers); everything
//! else in porter-bench talks to brokers through real clients.

use anyhow::{bail, ensure, Result};

const FETCH: i16 = 1;
const FETCH_VERSION: i16 = 4;
/// A record batch's fixed header up to and including `lastOffsetDelta`:
/// baseOffset 8, batchLength 4, partitionLeaderEpoch 4, magic 1, crc 4, attributes 2, lastOffsetDelta 4.
const BATCH_PREFIX_BYTES: usize = 27;

/// A Fetch request for `topic`, one `(partition, fetch_offset)` per entry, framed with its size.
pub struct FetchRequest<'a> {
    pub client_id: &'a str,
    pub topic: &'a str,
    pub max_wait_ms: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl FetchRequest<'_> {
    pub fn encode(&self, correlation_id: i32, partitions: &[(i32, i64)]) -> Vec<u8> {
        let mut b = vec![0u8; 4]; // size, patched below
        b.extend_from_slice(&FETCH.to_be_bytes());
        b.extend_from_slice(&FETCH_VERSION.to_be_bytes());
        b.extend_from_slice(&correlation_id.to_be_bytes());
        b.extend_from_slice(&(self.client_id.len() as i16).to_be_bytes());
        b.extend_from_slice(self.client_id.as_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id: a consumer
        b.extend_from_slice(&self.max_wait_ms.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes()); // min_bytes
        b.extend_from_slice(&self.max_bytes.to_be_bytes());
        b.push(0); // isolation_level: read uncommitted
        b.extend_from_slice(&1i32.to_be_bytes()); // one topic
        b.extend_from_slice(&(self.topic.len() as i16).to_be_bytes());
        b.extend_from_slice(self.topic.as_bytes());
        b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for &(partition, offset) in partitions {
            b.extend_from_slice(&partition.to_be_bytes());
            b.extend_from_slice(&offset.to_be_bytes());
            b.extend_from_slice(&self.partition_max_bytes.to_be_bytes());
        }
        let size = (b.len() - 4) as i32;
        b[..4].copy_from_slice(&size.to_be_bytes());
        b
    }
}

/// One partition of a Fetch v4 response: its error code and its record bytes.
pub struct FetchedPartition<'a> {
    pub partition: i32,
    pub error_code: i16,
    pub records: &'a [u8],
}

/// Parses a Fetch v4 response body (after the size prefix): correlation id, throttle time, then
/// topics and partitions.
pub fn fetch_response(body: &[u8]) -> Result<(i32, Vec<FetchedPartition<'_>>)> {
    let mut r = Reader(body);
    let correlation_id = r.i32()?;
    let _throttle_ms = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..r.i32()? {
        let name_len = r.i16()?;
        r.take(name_len.max(0) as usize)?;
        for _ in 0..r.i32()? {
            let partition = r.i32()?;
            let error_code = r.i16()?;
            let _high_watermark = r.i64()?;
            let _last_stable_offset = r.i64()?;
            let aborted = r.i32()?;
            r.take(aborted.max(0) as usize * 16)?;
            let len = r.i32()?;
            let records = r.take(len.max(0) as usize)?;
            out.push(FetchedPartition {
                partition,
                error_code,
                records,
            });
        }
    }
    Ok((correlation_id, out))
}

/// Records in the whole batches of `records` and the offset after the last of them, from the
/// batch headers alone (a partial batch at the end, which a fetch may cut, is not counted).
pub fn count_records(records: &[u8]) -> (u64, Option<i64>) {
    let (mut count, mut next, mut at) = (0u64, None, 0usize);
    while records.len() - at >= BATCH_PREFIX_BYTES {
        let base = i64::from_be_bytes(records[at..at + 8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let end = at + 12 + length.max(0) as usize;
        if length < 15 || end > records.len() {
            break;
        }
        let delta = i32::from_be_bytes(records[at + 23..at + 27].try_into().expect("4 bytes"));
        count += delta as u64 + 1;
        next = Some(base + delta as i64 + 1);
        at = end;
    }
    (count, next)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(self.0.len() >= n, "fetch response truncated");
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }
}

/// A framed response's size prefix, checked against `max`.
pub fn response_size(prefix: [u8; 4], max: usize) -> Result<usize> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 || size as usize > max {
        bail!("fetch response of {size} bytes (limit {max})");
    }
    Ok(size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_request_is_sized_and_laid_out_as_v4() {
        let request = FetchRequest {
            client_id: "porter-bench-slow-reader",
            topic: "t",
            max_wait_ms: 0,
            max_bytes: 1000,
            partition_max_bytes: 1000,
        };
        let b = request.encode(7, &[(0, 0), (1, 0)]);
        assert_eq!(
            i32::from_be_bytes(b[..4].try_into().unwrap()) as usize,
            b.len() - 4
        );
        assert_eq!(&b[4..8], &[0, 1, 0, 4]);
        assert_eq!(i32::from_be_bytes(b[8..12].try_into().unwrap()), 7);
        // header 8 + client id 2+24, body 4*4+1, topics 4 + name 2+1 + count 4, 2 partitions × 16
        assert_eq!(b.len() - 4, 8 + 26 + 17 + 11 + 32);
    }

    fn batch(base: i64, records: i32, bytes: usize) -> Vec<u8> {
        let mut b = base.to_be_bytes().to_vec();
        b.extend_from_slice(&((bytes - 12) as i32).to_be_bytes());
        b.extend_from_slice(&[0; 4]); // leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc
        b.extend_from_slice(&[0; 2]); // attributes
        b.extend_from_slice(&(records - 1).to_be_bytes());
        b.resize(bytes, 0);
        b
    }

    #[test]
    fn records_are_counted_from_whole_batches_only() {
        let mut records = batch(10, 3, 80);
        records.extend(batch(13, 5, 100));
        assert_eq!(count_records(&records), (8, Some(18)));
        records.extend(&batch(18, 2, 90)[..50]); // cut by the fetch's size limit
        assert_eq!(count_records(&records), (8, Some(18)));
        assert_eq!(count_records(&[]), (0, None));
    }
}
