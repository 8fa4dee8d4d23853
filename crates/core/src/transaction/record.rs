//! The records of `half.log`, in this codebase's journal style: `u32 length | u32 crc32c | body`,
//! big-endian, where length and CRC cover the body. A body is a kind byte and its fields:
//!
//! - prepare (1): `u16 id | u16 producer group | u16 topic` (length-prefixed UTF-8),
//!   `i64 prepared_ms | i64 check_after_ms | u32 payload length | payload`;
//! - resolve (2): `u16 id`, `u8 outcome` (1 commit, 2 rollback, 3 dropped after its checks);
//! - check (3): `u16 id`, `u32 attempts so far | i64 next check (ms)`.
//!
//! A record that fails its length, CRC or decoding is where the valid file ends: a crash can only
//! tear the end, and replay cuts it there.

use bytes::Bytes;

use super::HalfMessage;

pub(super) const HEADER_BYTES: usize = 8;
const KIND_PREPARE: u8 = 1;
const KIND_RESOLVE: u8 = 2;
const KIND_CHECK: u8 = 3;

/// A record body longer than this is torn or corrupt: a prepare holds at most
/// [`HALF_PAYLOAD_BYTES_MAX`](super::HALF_PAYLOAD_BYTES_MAX) of payload and three short names.
pub(super) const BODY_BYTES_MAX: usize =
    super::HALF_PAYLOAD_BYTES_MAX + 3 * (2 + u16::MAX as usize) + 32;

/// How a resolve record ended a half message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Commit,
    Rollback,
    /// Checked the maximum number of times without an answer.
    Dropped,
}

#[derive(Debug, PartialEq)]
pub(super) enum Record {
    Prepare(HalfMessage),
    Resolve {
        id: String,
        outcome: Outcome,
    },
    Check {
        id: String,
        attempts: u32,
        next_check_ms: i64,
    },
}

/// Appends `record`, header included, to `out`.
pub(super) fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    let put_str = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    match record {
        Record::Prepare(half) => {
            out.push(KIND_PREPARE);
            put_str(out, &half.id);
            put_str(out, &half.producer_group);
            put_str(out, &half.topic);
            out.extend_from_slice(&half.prepared_ms.to_be_bytes());
            out.extend_from_slice(&half.check_after_ms.to_be_bytes());
            out.extend_from_slice(&(half.payload.len() as u32).to_be_bytes());
            out.extend_from_slice(&half.payload);
        }
        Record::Resolve { id, outcome } => {
            out.push(KIND_RESOLVE);
            put_str(out, id);
            out.push(match outcome {
                Outcome::Commit => 1,
                Outcome::Rollback => 2,
                Outcome::Dropped => 3,
            });
        }
        Record::Check {
            id,
            attempts,
            next_check_ms,
        } => {
            out.push(KIND_CHECK);
            put_str(out, id);
            out.extend_from_slice(&attempts.to_be_bytes());
            out.extend_from_slice(&next_check_ms.to_be_bytes());
        }
    }
    let body = &out[start + HEADER_BYTES..];
    let len = (body.len() as u32).to_be_bytes();
    let crc = crc32c::crc32c(body).to_be_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

/// The body length a header announces, if plausible.
pub(super) fn body_len(header: &[u8; HEADER_BYTES]) -> Option<usize> {
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    (1..=BODY_BYTES_MAX).contains(&len).then_some(len)
}

/// Checks the body's CRC against the header and decodes it; `None` if either fails.
pub(super) fn decode(header: &[u8; HEADER_BYTES], body: &[u8]) -> Option<Record> {
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let mut r = Reader(body);
    let record = match r.u8()? {
        KIND_PREPARE => {
            let id = r.string()?;
            let producer_group = r.string()?;
            let topic = r.string()?;
            let prepared_ms = r.i64()?;
            let check_after_ms = r.i64()?;
            let len = r.u32()? as usize;
            let payload = Bytes::copy_from_slice(r.take(len)?);
            Record::Prepare(HalfMessage {
                id,
                producer_group,
                topic,
                payload,
                prepared_ms,
                check_after_ms,
            })
        }
        KIND_RESOLVE => {
            let id = r.string()?;
            let outcome = match r.u8()? {
                1 => Outcome::Commit,
                2 => Outcome::Rollback,
                3 => Outcome::Dropped,
                _ => return None,
            };
            Record::Resolve { id, outcome }
        }
        KIND_CHECK => Record::Check {
            id: r.string()?,
            attempts: r.u32()?,
            next_check_ms: r.i64()?,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(record)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(record: Record) {
        let mut out = Vec::new();
        encode(&record, &mut out);
        let header: [u8; HEADER_BYTES] = out[..HEADER_BYTES].try_into().unwrap();
        assert_eq!(body_len(&header), Some(out.len() - HEADER_BYTES));
        assert_eq!(decode(&header, &out[HEADER_BYTES..]), Some(record));
        // Any flipped bit is caught.
        for i in HEADER_BYTES..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert_eq!(decode(&header, &bad[HEADER_BYTES..]), None);
        }
    }

    #[test]
    fn records_roundtrip_and_detect_corruption() {
        roundtrip(Record::Prepare(HalfMessage {
            id: "id-1".into(),
            producer_group: "g".into(),
            topic: "t".into(),
            payload: Bytes::from_static(b"payload"),
            prepared_ms: 1_700_000_000_000,
            check_after_ms: 6_000,
        }));
        for outcome in [Outcome::Commit, Outcome::Rollback, Outcome::Dropped] {
            roundtrip(Record::Resolve {
                id: "x".into(),
                outcome,
            });
        }
        roundtrip(Record::Check {
            id: "x".into(),
            attempts: 3,
            next_check_ms: -1,
        });
    }
}
