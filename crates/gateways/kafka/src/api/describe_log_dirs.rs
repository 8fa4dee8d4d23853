//! DescribeLogDirs (v1–v4): Porter keeps every partition under one data directory, so there is
//! one log dir; each partition reports its size on disk and an offset lag of 0 (it is its own
//! leader, never a catching-up replica). Unknown topics and partitions are left out, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use porter_core::broker::TopicHandle;

use super::Context;

pub fn handle(ctx: &Arc<Context>, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // (topic, the partitions asked for; None = all)
    let wanted: Vec<(Arc<TopicHandle>, Option<Vec<i32>>)> = match request.topics {
        None => ctx.broker.topics().into_iter().map(|h| (h, None)).collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| Some((ctx.broker.topic(t.topic.as_str())?, Some(t.partitions))))
            .collect(),
    };
    let topics = wanted
        .into_iter()
        .map(|(handle, indexes)| {
            let partitions = handle
                .partitions
                .iter()
                .filter(|p| indexes.as_ref().is_none_or(|i| i.contains(&p.index())))
                .map(|p| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index())
                        .with_partition_size(p.size_bytes() as i64)
                        .with_offset_lag(0)
                })
                .collect();
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(handle.topic.name.clone())))
                .with_partitions(partitions)
        })
        .collect();
    // The broker made it absolute when it opened the directory.
    let log_dir = &ctx.broker.config().data_dir;
    // total_bytes and usable_bytes (v4) stay -1: unknown.
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(log_dir.display().to_string()))
        .with_topics(topics);
    DescribeLogDirsResponse::default().with_results(vec![result])
}
