//! ListOffsets: earliest (-2), latest (-1), or the first offset whose record timestamp is at or
//! after the given time (found with the time index, then the records of one batch), or the
//! record with the largest timestamp (-3, v7+).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{duplicated, Context};
use crate::error::error_code;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// KIP-734 (v7+): the record with the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(ctx: &Arc<Context>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        let duplicates = duplicated(topic.partitions.iter().map(|p| p.partition_index));
        for (p, duplicate) in topic.partitions.into_iter().zip(duplicates) {
            if duplicate {
                partitions.push(
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_timestamp(-1)
                        .with_offset(-1),
                );
                continue;
            }
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let partition = match ctx.broker.partition(&topic.name.0, p.partition_index) {
                Ok(partition) => partition,
                Err(e) => {
                    partitions.push(response.with_error_code(error_code(&e).code()));
                    continue;
                }
            };
            let response = match p.timestamp {
                LATEST_TIMESTAMP => response.with_offset(partition.high_watermark()),
                EARLIEST_TIMESTAMP => response.with_offset(partition.log_start_offset()),
                MAX_TIMESTAMP => match partition.max_timestamp().await {
                    Ok(Some((offset, timestamp))) => {
                        response.with_offset(offset).with_timestamp(timestamp)
                    }
                    Ok(None) => response,
                    Err(e) => response.with_error_code(error_code(&e).code()),
                },
                t if t < 0 => response.with_error_code(ResponseError::InvalidRequest.code()),
                t => match partition.offset_for_timestamp(t).await {
                    Ok(Some((offset, timestamp))) => {
                        response.with_offset(offset).with_timestamp(timestamp)
                    }
                    Ok(None) => response,
                    Err(e) => response.with_error_code(error_code(&e).code()),
                },
            };
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
