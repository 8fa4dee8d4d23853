//! Fetch: serve raw batches from the log, long-polling until `min_bytes` are available or
//! `max_wait_ms` passes. Waiting uses the partitions' high-watermark watch channels, so an idle
//! consumer costs nothing until data arrives (no busy loop).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use porter_core::{CoreError, Partition};
use tokio::time::Instant;

use super::Context;
use crate::error::error_code;

struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    found: Result<Arc<Partition>, ResponseError>,
}

pub async fn handle(ctx: &Arc<Context>, request: FetchRequest, version: i16) -> FetchResponse {
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64)
        .min(Duration::from_millis(ctx.config.fetch_wait_ms_max));
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes =
        (request.max_bytes.max(0) as usize).min(ctx.config.fetch_response_bytes_max as usize);

    let mut wanted = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        // v13+ names topics by id (KIP-516).
        let name = if version >= 13 {
            ctx.broker
                .topic_by_id(topic.topic_id)
                .map(|t| t.topic.name.clone())
                .ok_or(ResponseError::UnknownTopicId)
        } else {
            Ok(topic.topic.0.to_string())
        };
        for p in &topic.partitions {
            let found = name.as_ref().map_err(|e| *e).and_then(|name| {
                ctx.broker
                    .partition(name, p.partition)
                    .map_err(|e| error_code(&e))
            });
            wanted.push(Wanted {
                topic_index,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                found,
            });
        }
    }

    loop {
        // Subscribe before reading so an append between the read and the wait is not missed.
        let mut watches: Vec<_> = wanted
            .iter()
            .filter_map(|w| w.found.as_ref().ok().map(|p| p.subscribe()))
            .collect();
        let (partitions, bytes) = read_all(ctx, &wanted, max_bytes, version).await;
        let now = Instant::now();
        if bytes >= min_bytes || now >= deadline || watches.is_empty() {
            return build_response(&request, partitions);
        }
        let changed = select_all(watches.iter_mut().map(|w| w.changed().boxed()));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline: answer with what there is (read again: data may have come meanwhile).
            let (partitions, _) = read_all(ctx, &wanted, max_bytes, version).await;
            return build_response(&request, partitions);
        }
    }
}

/// Reads every wanted partition within the request's byte budget. Only the first non-empty
/// partition may exceed its limits, by its first batch alone (KIP-74): a consumer sized for
/// `fetch.max.bytes` must be able to take every response.
async fn read_all(
    ctx: &Context,
    wanted: &[Wanted],
    max_bytes: usize,
    version: i16,
) -> (Vec<(usize, PartitionData)>, usize) {
    let mut total = 0usize;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(Some(Vec::new()));
        match &w.found {
            Err(code) => {
                data = data
                    .with_error_code(code.code())
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1);
            }
            Ok(partition) => {
                let budget =
                    (max_bytes.saturating_sub(total)).min(w.partition_max_bytes.max(0) as usize);
                let result = if budget == 0 && total > 0 {
                    Ok(None)
                } else {
                    partition
                        .read(w.fetch_offset, budget.max(1) as u32)
                        .await
                        .map(Some)
                };
                match result {
                    Ok(slice) => {
                        let hwm = partition.high_watermark();
                        data = data
                            .with_high_watermark(hwm)
                            .with_last_stable_offset(hwm)
                            .with_log_start_offset(partition.log_start_offset());
                        if let Some(mut slice) = slice {
                            if total > 0 {
                                slice.bytes = whole_batches_within(slice.bytes, budget);
                            }
                            total += slice.bytes.len();
                            data = data
                                .with_high_watermark(slice.high_watermark)
                                .with_last_stable_offset(slice.high_watermark)
                                .with_log_start_offset(slice.log_start_offset)
                                .with_records(Some(slice.bytes));
                        }
                    }
                    Err(e) => {
                        let code = match e {
                            CoreError::OffsetOutOfRange { .. } => error_code(&e),
                            // The topic was deleted while the fetch waited: an ordinary race.
                            CoreError::Closed if ctx.broker.topic(partition.topic()).is_none() => {
                                tracing::debug!(
                                    topic = partition.topic(),
                                    partition = w.partition,
                                    "topic deleted during a fetch"
                                );
                                ResponseError::UnknownTopicOrPartition
                            }
                            _ => {
                                tracing::error!(topic = partition.topic(), partition = w.partition, error = %e, "fetch read failed");
                                error_code(&e)
                            }
                        };
                        let hwm = partition.high_watermark();
                        data = data
                            .with_error_code(code.code())
                            .with_high_watermark(hwm)
                            .with_last_stable_offset(hwm)
                            .with_log_start_offset(partition.log_start_offset());
                    }
                }
            }
        }
        if version < 5 {
            data.log_start_offset = -1; // added in v5
        }
        out.push((w.topic_index, data));
    }
    (out, total)
}

fn build_response(
    request: &FetchRequest,
    partitions: Vec<(usize, PartitionData)>,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (topic_index, data) in partitions {
        responses[topic_index].partitions.push(data);
    }
    FetchResponse::default().with_responses(responses)
}

/// The leading whole record batches of `bytes` that fit in `budget` bytes. A batch starts with
/// its base offset (8 bytes) and its length after that field (4 bytes).
fn whole_batches_within(bytes: Bytes, budget: usize) -> Bytes {
    const HEADER: usize = 12;
    let mut end = 0;
    while bytes.len() - end >= HEADER {
        let length =
            i32::from_be_bytes(bytes[end + 8..end + HEADER].try_into().unwrap_or_default());
        let next = end + HEADER + length.max(0) as usize;
        if next > budget || next > bytes.len() {
            break;
        }
        end = next;
    }
    bytes.slice(..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&(payload as i32).to_be_bytes());
        b.extend(std::iter::repeat_n(7u8, payload));
        b
    }

    #[test]
    fn only_whole_batches_within_the_budget_are_kept() {
        let bytes: Vec<u8> = [batch(100), batch(100), batch(100)].concat();
        let bytes = Bytes::from(bytes);
        assert_eq!(whole_batches_within(bytes.clone(), 111).len(), 0);
        assert_eq!(whole_batches_within(bytes.clone(), 112).len(), 112);
        assert_eq!(whole_batches_within(bytes.clone(), 300).len(), 224);
        assert_eq!(whole_batches_within(bytes.clone(), 10_000).len(), 336);
        // A truncated last batch is never returned.
        assert_eq!(whole_batches_within(bytes.slice(..300), 10_000).len(), 224);
    }
}
