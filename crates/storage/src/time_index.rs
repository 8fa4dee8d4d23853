//! Sparse timestamp → offset map for one segment (`.timeindex`). 12-byte entries: i64 largest
//! timestamp seen so far in the segment and the u32 relative base offset of the batch at which
//! that entry was taken: every record before that batch has a timestamp <= the entry's. Entries
//! are added with offset-index entries when the maximum grew, and once more on roll and close,
//! so the last entry is the segment's largest timestamp (retention reads it without a scan).

use crate::index_file::{IndexEntry, IndexFile};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = 12;

    fn encode(&self) -> Vec<u8> {
        let mut bytes = self.timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.relative_offset.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
        }
    }
}

pub(crate) type TimeIndex = IndexFile<TimeEntry>;

/// Timestamps strictly grow (an entry is only added when the maximum grew); offsets never shrink.
pub(crate) fn in_order(previous: &TimeEntry, next: &TimeEntry) -> bool {
    previous.timestamp < next.timestamp && previous.relative_offset <= next.relative_offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        let entry = TimeEntry {
            timestamp: -1_000,
            relative_offset: 9,
        };
        assert_eq!(entry.encode().len(), TimeEntry::BYTES);
        assert_eq!(TimeEntry::decode(&entry.encode()), entry);
        assert!(in_order(
            &TimeEntry {
                timestamp: -2_000,
                relative_offset: 9
            },
            &entry
        ));
    }
}
