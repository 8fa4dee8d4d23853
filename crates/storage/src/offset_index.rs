//! Sparse offset → file-position map for one segment (`.index`). 8-byte entries: u32 offset
//! relative to the segment's base offset (halves the file; so a segment spans < 2^32 offsets,
//! checked on append) and u32 byte position of the batch that starts at that offset. One entry
//! every `index_interval_bytes` of log data, so a lookup scans at most about that many bytes.

use crate::index_file::{IndexEntry, IndexFile};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Base offset of a batch, relative to the segment's base offset.
    pub(crate) relative_offset: u32,
    /// Byte position of that batch in the segment's log file.
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = 8;

    fn encode(&self) -> Vec<u8> {
        let mut bytes = self.relative_offset.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.position.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }
}

pub(crate) type OffsetIndex = IndexFile<OffsetEntry>;

/// Entries must grow in both offset and position.
pub(crate) fn in_order(previous: &OffsetEntry, next: &OffsetEntry) -> bool {
    previous.relative_offset < next.relative_offset && previous.position < next.position
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        let entry = OffsetEntry {
            relative_offset: 7,
            position: 4096,
        };
        assert_eq!(entry.encode().len(), OffsetEntry::BYTES);
        assert_eq!(OffsetEntry::decode(&entry.encode()), entry);
        assert!(in_order(
            &OffsetEntry {
                relative_offset: 1,
                position: 0
            },
            &entry
        ));
        assert!(!in_order(&entry, &entry));
    }
}
