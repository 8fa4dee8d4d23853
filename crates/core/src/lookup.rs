//! Finding a message when an order goes missing: by one of its keys, or by its message id,
//! within a time range (RocketMQ's "query message by key / by id").
//!
//! How: per partition, the log's time index gives the first offset at or after the range's
//! start; batches are then read forward and each record's `KEYS` / `UNIQ_KEY` header (see
//! [`crate::topic_message`]) compared, until a record past the range's end, the result limit,
//! or [`LOOKUP_SCAN_BYTES_MAX`] read. So the cost is the bytes stored in the time range, not the
//! topic's size: narrow the range on a busy topic. A Kafka record's id made from its position
//! (`stored_message_id`) is read directly, without a scan.
//!
//! Not done: a persistent hash index of keys (RocketMQ's IndexFile), which would make a lookup
//! over a wide range cost O(matches); the scan's bound makes the trade-off explicit meanwhile
//! ([`Lookup::truncated`] says when it stopped early).

use std::sync::Arc;

use porter_storage::records::decode_batches;
use porter_storage::Offset;

use crate::broker::TopicHandle;
use crate::error::{CoreError, Result};
use crate::partition::Partition;
use crate::topic_message::{read_at, stored_message_id, StoredTopicMessage, TopicMessage};

/// Bytes one lookup reads per partition at most.
pub const LOOKUP_SCAN_BYTES_MAX: u64 = 256 << 20;
/// Messages one lookup returns at most.
pub const LOOKUP_RESULTS_MAX: usize = 64;
const READ_BYTES: u32 = 1 << 20;

/// What to look for.
#[derive(Clone, Debug)]
pub enum LookupBy {
    Key(String),
    MessageId(String),
}

/// A lookup's answer.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub messages: Vec<StoredTopicMessage>,
    /// A partition's scan stopped at [`LOOKUP_SCAN_BYTES_MAX`] before the range's end.
    pub truncated: bool,
}

/// Messages of `topic` stored between `begin_ms` and `end_ms` (inclusive, ms since the epoch)
/// that carry the key or id, oldest first per partition, at most `max` (capped at
/// [`LOOKUP_RESULTS_MAX`]).
pub async fn lookup(
    topic: &Arc<TopicHandle>,
    by: &LookupBy,
    begin_ms: i64,
    end_ms: i64,
    max: usize,
) -> Result<Lookup> {
    if begin_ms > end_ms {
        return Err(CoreError::InvalidRequest(format!(
            "the time range ends ({end_ms}) before it begins ({begin_ms})"
        )));
    }
    let max = max.clamp(1, LOOKUP_RESULTS_MAX);
    let mut found = Lookup::default();
    if let LookupBy::MessageId(id) = by {
        if let Some(message) = by_position(topic, id).await? {
            found.messages.push(message);
            return Ok(found);
        }
    }
    for partition in &topic.partitions {
        if found.messages.len() >= max {
            break;
        }
        scan(partition, by, begin_ms, end_ms, max, &mut found).await?;
    }
    Ok(found)
}

async fn scan(
    partition: &Arc<Partition>,
    by: &LookupBy,
    begin_ms: i64,
    end_ms: i64,
    max: usize,
    found: &mut Lookup,
) -> Result<()> {
    let Some((mut offset, _)) = partition.offset_for_timestamp(begin_ms).await? else {
        return Ok(()); // nothing stored at or after the range's start
    };
    let mut scanned = 0u64;
    while offset < partition.high_watermark() {
        if scanned >= LOOKUP_SCAN_BYTES_MAX {
            found.truncated = true;
            return Ok(());
        }
        let (from, batches) = partition.read_from(offset, READ_BYTES).await?;
        offset = from;
        scanned += batches.bytes.len() as u64;
        let records = decode_batches(batches.bytes)?;
        let Some(last) = records.last().map(|r| r.offset) else {
            return Ok(());
        };
        for record in &records {
            if record.offset < offset {
                continue;
            }
            // Timestamps are the producers' clocks for Kafka records: not monotonic, so a
            // record past the end does not end the scan, a whole batch past it does.
            if record.timestamp < begin_ms || record.timestamp > end_ms {
                continue;
            }
            let message = TopicMessage::decode(record, partition.index());
            let hit = match by {
                LookupBy::Key(key) => message.message.keys.iter().any(|k| k == key),
                LookupBy::MessageId(id) => &message.message.message_id == id,
            };
            if hit {
                found.messages.push(message);
                if found.messages.len() >= max {
                    return Ok(());
                }
            }
        }
        if records.iter().all(|r| r.timestamp > end_ms) {
            return Ok(());
        }
        offset = last + 1;
    }
    Ok(())
}

/// A message id Porter made from a record's position (`P<partition>O<offset>`), read directly.
async fn by_position(topic: &Arc<TopicHandle>, id: &str) -> Result<Option<StoredTopicMessage>> {
    let Some((partition, offset)) = parse_position(id) else {
        return Ok(None);
    };
    let Some(partition) = usize::try_from(partition)
        .ok()
        .and_then(|p| topic.partitions.get(p))
    else {
        return Ok(None);
    };
    Ok(read_at(partition, offset)
        .await?
        .filter(|m| m.message.message_id == id))
}

fn parse_position(id: &str) -> Option<(i32, Offset)> {
    let rest = id.strip_prefix('P')?;
    let (partition, offset) = rest.split_once('O')?;
    let partition = i32::from_str_radix(partition, 16).ok()?;
    let offset = Offset::from_str_radix(offset, 16).ok()?;
    (stored_message_id(partition, offset) == id).then_some((partition, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_id_reads_back_as_its_position() {
        assert_eq!(parse_position(&stored_message_id(3, 77)), Some((3, 77)));
        assert_eq!(parse_position("P3O77"), None, "only ids Porter made");
        assert_eq!(parse_position("01AB"), None);
    }
}
