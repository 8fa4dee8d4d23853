//! Publishing [`TopicMessage`]s to a topic's partitions: pick each message's partition, append
//! one record batch per partition (all queued before any is awaited), then wait for the commit
//! point. The same route → append → commit-wait as Kafka produce, for gateways that send
//! messages rather than pre-made record batches (RocketMQ, the timer firing a delayed message, a
//! committed transaction, a dead letter).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use porter_storage::Offset;

use crate::broker::TopicHandle;
use crate::error::{CoreError, Result};
use crate::partition::now_ms;
use crate::topic_message::TopicMessage;

/// Where a message is to go inside its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionChoice {
    /// The producer named a partition (RocketMQ's Java client names a queue).
    Exact(i32),
    /// By the message group's hash if there is one (so a group stays in one partition, in
    /// order), else round robin.
    Auto,
}

/// Round robin for messages without a partition or a group; one per broker is enough.
static ROUND_ROBIN: AtomicUsize = AtomicUsize::new(0);

/// The partition a message goes to.
pub fn choose_partition(
    handle: &TopicHandle,
    choice: PartitionChoice,
    message: &TopicMessage,
) -> Result<usize> {
    let n = handle.partitions.len();
    if n == 0 {
        return Err(CoreError::UnknownTopic(handle.topic.name.clone()));
    }
    match choice {
        PartitionChoice::Exact(p) => {
            usize::try_from(p)
                .ok()
                .filter(|&p| p < n)
                .ok_or_else(|| CoreError::UnknownPartition {
                    topic: handle.topic.name.clone(),
                    partition: p,
                })
        }
        PartitionChoice::Auto => Ok(match &message.message_group {
            // FNV-1a: stable across restarts and versions, unlike the std hasher.
            Some(group) => {
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for b in group.bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                (hash % n as u64) as usize
            }
            None => ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % n,
        }),
    }
}

/// Appends `messages` to `handle`'s partitions and waits until every one is committed. Returns
/// each message's (partition, offset), in the order given.
pub async fn publish(
    handle: &Arc<TopicHandle>,
    messages: &[(PartitionChoice, TopicMessage)],
) -> Result<Vec<(i32, Offset)>> {
    for (_, message) in messages {
        message.validate()?;
    }
    let mut by_partition: Vec<Vec<usize>> = vec![Vec::new(); handle.partitions.len()];
    for (i, (choice, message)) in messages.iter().enumerate() {
        by_partition[choose_partition(handle, *choice, message)?].push(i);
    }
    let stored_ms = now_ms();
    let mut pending = Vec::new();
    for (p, indexes) in by_partition.iter().enumerate() {
        if indexes.is_empty() {
            continue;
        }
        let batch: Vec<&TopicMessage> = indexes.iter().map(|&i| &messages[i].1).collect();
        let records = TopicMessage::encode_batch(&batch, stored_ms)?;
        let partition = handle.partitions[p].clone();
        let written = partition.start_append(records).await?;
        pending.push((p, partition, written));
    }
    let mut placed = vec![(0, 0); messages.len()];
    for (p, partition, written) in pending {
        let appended = written.await?;
        partition.wait_durable(appended.last_offset + 1).await?;
        for (k, &i) in by_partition[p].iter().enumerate() {
            placed[i] = (p as i32, appended.base_offset + k as Offset);
        }
    }
    Ok(placed)
}
