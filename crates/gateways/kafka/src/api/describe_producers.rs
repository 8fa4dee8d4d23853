//! DescribeProducers: the idempotent producers each partition currently tracks.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::Context;
use crate::error::error_code;

pub fn handle(ctx: &Arc<Context>, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    match ctx.broker.partition(&topic.name.0, index) {
                        Err(e) => response.with_error_code(error_code(&e).code()),
                        Ok(partition) => response.with_active_producers(
                            partition
                                .producers()
                                .into_iter()
                                .map(|(id, epoch, last_sequence, last_timestamp)| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(id))
                                        .with_producer_epoch(epoch as i32)
                                        .with_last_sequence(last_sequence)
                                        .with_last_timestamp(last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(-1)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
