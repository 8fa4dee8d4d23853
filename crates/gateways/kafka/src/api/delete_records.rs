//! DeleteRecords (v0–v2): moves each partition's log start (low watermark) up to the given
//! offset; -1 means the high watermark. Beyond the high watermark is OFFSET_OUT_OF_RANGE.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Context;
use crate::error::error_code;

pub async fn handle(ctx: &Arc<Context>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(partition.partition_index);
            let outcome = ctx
                .broker
                .delete_records(
                    topic.name.as_str(),
                    partition.partition_index,
                    partition.offset,
                )
                .await;
            partitions.push(match outcome {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(e) => {
                    tracing::info!(topic = %topic.name.as_str(), partition = partition.partition_index, error = %e, "delete records refused");
                    result
                        .with_low_watermark(-1)
                        .with_error_code(error_code(&e).code())
                }
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
