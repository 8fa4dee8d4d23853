//! The byte layouts of the timer store's files (see the module doc of `timer`), each CRC32C
//! checked so recovery can tell a torn or stale tail from data.

/// Payload record header: `[crc u32][len u32][due_ms i64]`.
pub(super) const RECORD_HEADER: usize = 16;
/// Bucket index entry: `[due_ms i64][segment u32][offset u32][len u32][crc u32]`.
pub(super) const ENTRY_BYTES: usize = 24;
/// Fired mark: `[index u32][crc u32]`.
pub(super) const MARK_BYTES: usize = 8;
/// Checkpoint: `[segment u32][offset u32][bucket_width_ms i64][crc u32]`.
pub(super) const CHECKPOINT_BYTES: usize = 20;

/// A place in the payload log: segment id, then byte offset. Ordered as the log is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Pos {
    pub segment: u32,
    pub offset: u32,
}

/// One bucket index entry: when, and where its payload record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub due_ms: i64,
    pub pos: Pos,
    /// Payload bytes (the record is `RECORD_HEADER` more).
    pub len: u32,
}

pub(super) fn encode_entry(e: &Entry) -> [u8; ENTRY_BYTES] {
    let mut b = [0u8; ENTRY_BYTES];
    b[0..8].copy_from_slice(&e.due_ms.to_le_bytes());
    b[8..12].copy_from_slice(&e.pos.segment.to_le_bytes());
    b[12..16].copy_from_slice(&e.pos.offset.to_le_bytes());
    b[16..20].copy_from_slice(&e.len.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..20]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `None` for a torn or corrupt entry.
pub(super) fn decode_entry(b: &[u8]) -> Option<Entry> {
    if b.len() < ENTRY_BYTES || crc32c::crc32c(&b[0..20]) != u32_at(b, 20) {
        return None;
    }
    Some(Entry {
        due_ms: i64::from_le_bytes(b[0..8].try_into().ok()?),
        pos: Pos {
            segment: u32_at(b, 8),
            offset: u32_at(b, 12),
        },
        len: u32_at(b, 16),
    })
}

pub(super) fn encode_record_header(due_ms: i64, payload: &[u8]) -> [u8; RECORD_HEADER] {
    let mut h = [0u8; RECORD_HEADER];
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..16].copy_from_slice(&due_ms.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[4..16]), payload);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The header's payload length and due time.
pub(super) fn decode_record_header(h: &[u8]) -> (u32, i64) {
    (
        u32_at(h, 4),
        i64::from_le_bytes(h[8..16].try_into().expect("16-byte header")),
    )
}

/// Whether `payload` is what the header's CRC covers.
pub(super) fn record_valid(h: &[u8], payload: &[u8]) -> bool {
    crc32c::crc32c_append(crc32c::crc32c(&h[4..16]), payload) == u32_at(h, 0)
}

pub(super) fn encode_mark(index: u32) -> [u8; MARK_BYTES] {
    let mut b = [0u8; MARK_BYTES];
    b[0..4].copy_from_slice(&index.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..4]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(super) fn decode_mark(b: &[u8]) -> Option<u32> {
    (b.len() >= MARK_BYTES && crc32c::crc32c(&b[0..4]) == u32_at(b, 4)).then(|| u32_at(b, 0))
}

pub(super) fn encode_checkpoint(pos: Pos, width_ms: i64) -> [u8; CHECKPOINT_BYTES] {
    let mut b = [0u8; CHECKPOINT_BYTES];
    b[0..4].copy_from_slice(&pos.segment.to_le_bytes());
    b[4..8].copy_from_slice(&pos.offset.to_le_bytes());
    b[8..16].copy_from_slice(&width_ms.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(super) fn decode_checkpoint(b: &[u8]) -> Option<(Pos, i64)> {
    if b.len() != CHECKPOINT_BYTES || crc32c::crc32c(&b[0..16]) != u32_at(b, 16) {
        return None;
    }
    let pos = Pos {
        segment: u32_at(b, 0),
        offset: u32_at(b, 4),
    };
    Some((pos, i64::from_le_bytes(b[8..16].try_into().ok()?)))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_marks_and_checkpoints_round_trip_and_reject_flipped_bits() {
        let e = Entry {
            due_ms: 1_700_000_000_123,
            pos: Pos {
                segment: 7,
                offset: 4096,
            },
            len: 99,
        };
        let mut b = encode_entry(&e);
        assert_eq!(decode_entry(&b), Some(e));
        b[3] ^= 1;
        assert_eq!(decode_entry(&b), None);
        assert_eq!(decode_entry(&b[..10]), None);

        let mut m = encode_mark(42);
        assert_eq!(decode_mark(&m), Some(42));
        m[0] ^= 4;
        assert_eq!(decode_mark(&m), None);

        let pos = Pos {
            segment: 3,
            offset: 12,
        };
        let mut c = encode_checkpoint(pos, 10_000);
        assert_eq!(decode_checkpoint(&c), Some((pos, 10_000)));
        c[9] ^= 1;
        assert_eq!(decode_checkpoint(&c), None);

        let h = encode_record_header(5, b"hello");
        assert_eq!(decode_record_header(&h), (5, 5));
        assert!(record_valid(&h, b"hello"));
        assert!(!record_valid(&h, b"hellO"));
    }
}
