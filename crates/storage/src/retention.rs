//! Which old segments retention deletes. Pure, so the policy is tested without files.

use crate::config::LogConfig;
use crate::Offset;

/// What retention needs to know about one non-active segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentSummary {
    pub(crate) base_offset: Offset,
    pub(crate) size_bytes: u64,
    /// Largest record timestamp, `NO_TIMESTAMP` (-1) when empty.
    pub(crate) max_timestamp: i64,
}

/// Number of the oldest segments of `inactive` (oldest first, the active segment excluded) to
/// delete: first those whose newest record is older than `now_ms - retention_ms`, then more while
/// the log (`total_bytes`, active segment included) is larger than `retention_bytes`.
/// Deletion stops at the first segment kept, so the log stays a contiguous run of offsets.
pub(crate) fn segments_to_delete(
    inactive: &[SegmentSummary],
    total_bytes: u64,
    config: &LogConfig,
    now_ms: i64,
) -> usize {
    let mut count = 0;
    if let Some(retention_ms) = config.retention_ms {
        let cutoff = now_ms.saturating_sub(retention_ms.min(i64::MAX as u64) as i64);
        count = inactive
            .iter()
            .take_while(|s| s.max_timestamp < cutoff)
            .count();
    }
    if let Some(retention_bytes) = config.retention_bytes {
        let mut remaining: u64 =
            total_bytes - inactive[..count].iter().map(|s| s.size_bytes).sum::<u64>();
        while count < inactive.len() && remaining > retention_bytes {
            remaining -= inactive[count].size_bytes;
            count += 1;
        }
    }
    debug_assert!(count <= inactive.len());
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments() -> Vec<SegmentSummary> {
        (0..3)
            .map(|i| SegmentSummary {
                base_offset: i * 10,
                size_bytes: 100,
                max_timestamp: 1_000 * (i + 1),
            })
            .collect()
    }

    #[test]
    fn time_based_stops_at_first_young_segment() {
        let config = LogConfig {
            retention_ms: Some(1_500),
            ..LogConfig::default()
        };
        assert_eq!(segments_to_delete(&segments(), 400, &config, 3_000), 1);
        assert_eq!(segments_to_delete(&segments(), 400, &config, 10_000), 3);
        let forever = LogConfig {
            retention_ms: None,
            ..LogConfig::default()
        };
        assert_eq!(segments_to_delete(&segments(), 400, &forever, i64::MAX), 0);
    }

    #[test]
    fn size_based_deletes_oldest_while_too_big() {
        let config = LogConfig {
            retention_ms: None,
            retention_bytes: Some(250),
            ..LogConfig::default()
        };
        // 400 bytes in all (100 active): delete two to get to 200.
        assert_eq!(segments_to_delete(&segments(), 400, &config, 0), 2);
        let tiny = LogConfig {
            retention_ms: None,
            retention_bytes: Some(0),
            ..LogConfig::default()
        };
        assert_eq!(segments_to_delete(&segments(), 400, &tiny, 0), 3); // never the active one
    }
}
