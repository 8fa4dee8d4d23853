//! Fetch: serve raw batches from the log, long-polling until `min_bytes` are available or
//! `max_wait_ms` passes. Waiting uses the partitions' high-watermark watch channels, so an idle
//! consumer costs nothing until data arrives (no busy loop).
//!
//! The batches are never read here: each partition's answer is a region of a segment file, found
//! from the log's indexes ([`Partition::read_region`]), which the connection's writer streams
//! from the file (see `crate::fetch_frame`). So a long poll that wakes on every append only
//! looks up where the data ends (two index lookups per partition), never re-reads it, and an
//! answer of 50 MB costs its header bytes in memory, not 50 MB.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use porter_core::{CoreError, Partition};
use porter_gateway_kit::spliced::FileRegion;
use tokio::time::Instant;

use super::{Caller, Context};
use crate::authorize::{allowed, Operation, ResourceType};
use crate::error::error_code;
use crate::fetch_frame::{placeholder, FetchAnswer};

/// One partition's answer: its response data and, when it has records, where they lie.
type Located = (usize, PartitionData, Option<FileRegion>);

struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    found: Result<Arc<Partition>, ResponseError>,
}

pub async fn handle(
    ctx: &Arc<Context>,
    request: FetchRequest,
    version: i16,
    caller: &Caller,
) -> FetchAnswer {
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
                if !allowed(ctx, caller, Operation::Read, ResourceType::Topic, name) {
                    return Err(ResponseError::TopicAuthorizationFailed);
                }
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
        let (partitions, bytes) = locate_all(ctx, &wanted, max_bytes, version).await;
        let now = Instant::now();
        if bytes >= min_bytes || now >= deadline || watches.is_empty() {
            count_sent(&wanted, &partitions);
            return build_answer(&request, partitions);
        }
        let changed = select_all(watches.iter_mut().map(|w| w.changed().boxed()));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline: answer with what there is (look again: data may have come meanwhile).
            let (partitions, _) = locate_all(ctx, &wanted, max_bytes, version).await;
            count_sent(&wanted, &partitions);
            return build_answer(&request, partitions);
        }
    }
}

/// Counts the regions an answer sends as read from their partitions (the looks a long poll
/// took before are not reads). `partitions` holds one answer per `wanted`, in order.
fn count_sent(wanted: &[Wanted], partitions: &[Located]) {
    debug_assert_eq!(wanted.len(), partitions.len());
    for (w, (_, _, region)) in wanted.iter().zip(partitions) {
        if let (Ok(partition), Some(region)) = (&w.found, region) {
            partition.count_read(region.len);
        }
    }
}

/// Locates every wanted partition's batches within the request's byte budget. Only the first
/// non-empty partition may exceed its limits, by its first batch alone (KIP-74): a consumer
/// sized for `fetch.max.bytes` must be able to take every response.
async fn locate_all(
    ctx: &Context,
    wanted: &[Wanted],
    max_bytes: usize,
    version: i16,
) -> (Vec<Located>, usize) {
    let mut total = 0usize;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut region = None;
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
                        .read_region(w.fetch_offset, budget.max(1) as u32)
                        .await
                        .map(Some)
                };
                match result {
                    Ok(stored) => {
                        let hwm = partition.high_watermark();
                        data = data
                            .with_high_watermark(hwm)
                            .with_last_stable_offset(hwm)
                            .with_log_start_offset(partition.log_start_offset());
                        if let Some(stored) = stored {
                            data = data
                                .with_high_watermark(stored.high_watermark)
                                .with_last_stable_offset(stored.high_watermark)
                                .with_log_start_offset(stored.log_start_offset);
                            // A region holds its first batch whole, the rest within the budget:
                            // past the first partition, a first batch over the budget is left
                            // out (KIP-74 lets only the first exceed).
                            let fits =
                                |r: &porter_core::BatchRegion| total == 0 || r.len <= budget as u64;
                            if let Some(r) = stored.region.filter(fits) {
                                total += r.len as usize;
                                data = data.with_records(Some(placeholder()));
                                region = Some(FileRegion {
                                    file: r.file,
                                    position: r.position,
                                    len: r.len,
                                });
                            }
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
        out.push((w.topic_index, data, region));
    }
    (out, total)
}

/// The response, and the regions of its records in the order they are encoded (topic by topic,
/// partition by partition).
fn build_answer(request: &FetchRequest, partitions: Vec<Located>) -> FetchAnswer {
    let mut responses: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    let mut regions: Vec<Vec<FileRegion>> = vec![Vec::new(); responses.len()];
    for (topic_index, data, region) in partitions {
        responses[topic_index].partitions.push(data);
        regions[topic_index].extend(region);
    }
    FetchAnswer {
        response: FetchResponse::default().with_responses(responses),
        regions: regions.into_iter().flatten().collect(),
    }
}
