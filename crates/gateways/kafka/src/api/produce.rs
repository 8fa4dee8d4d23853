//! Produce: validate and append record batches as they arrived (the Kafka format is Porter's
//! storage format, so no re-encoding), then answer once the data is as durable as the topic's
//! flush mode promises. acks = 0 gets no answer, but its data is flushed all the same.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::frame::ResponseKind;
use kafka_protocol::protocol::StrBytes;
use porter_core::error::RecordFault;
use porter_core::{Appended, CoreError, Partition};

use super::{Caller, Context, Pending};
use crate::authorize::{allowed, Operation, ResourceType};
use crate::error::error_code;

/// An append queued on its log's writer: its outcome, to await in the concurrent stage.
type QueuedAppend = BoxFuture<'static, Result<Appended, CoreError>>;

/// One partition's outcome after the ordered stage: its append queued, or refused before that.
struct PartitionAppend {
    index: i32,
    result: Result<(Arc<Partition>, QueuedAppend), Refused>,
}

/// Why a partition's batch was not appended, as the response says it.
#[derive(Clone)]
struct Refused {
    code: ResponseError,
    message: String,
    /// Produce v8+: the positions in the batch of the records that caused the refusal, and
    /// what is wrong with each.
    records: Vec<i32>,
    record_message: String,
}

impl From<ResponseError> for Refused {
    fn from(code: ResponseError) -> Self {
        Refused {
            code,
            message: code.to_string(),
            records: Vec::new(),
            record_message: String::new(),
        }
    }
}

impl From<&CoreError> for Refused {
    fn from(error: &CoreError) -> Self {
        match error {
            CoreError::InvalidRecords { records, fault, .. } => Refused {
                code: match fault {
                    RecordFault::NoKey => ResponseError::InvalidRecord,
                    RecordFault::TimestampOutOfRange => ResponseError::InvalidTimestamp,
                },
                message: error.to_string(),
                records: records.clone(),
                record_message: fault.to_string(),
            },
            other => Refused {
                code: error_code(other),
                message: other.to_string(),
                records: Vec::new(),
                record_message: String::new(),
            },
        }
    }
}

pub async fn handle(
    ctx: &Arc<Context>,
    request: ProduceRequest,
    version: i16,
    caller: &Caller,
) -> Pending {
    let acks = request.acks;
    if !matches!(acks, -1..=1) {
        let response = error_response(&request, ResponseError::InvalidRequiredAcks, version);
        return async move { Some(ResponseKind::Produce(response)) }.boxed();
    }
    if request.transactional_id.is_some() {
        // Transactions arrive in a later release; refuse rather than pretend.
        let response = error_response(
            &request,
            ResponseError::TransactionalIdAuthorizationFailed,
            version,
        );
        return async move { Some(ResponseKind::Produce(response)) }.boxed();
    }

    // Ordered stage: append every partition's batches before the next request is read.
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        // v13+ names topics by id (KIP-516); an id can't auto-create a topic.
        let may_write =
            |name: &str| allowed(ctx, caller, Operation::Write, ResourceType::Topic, name);
        let refused = || Refused::from(ResponseError::TopicAuthorizationFailed);
        let handle = if version >= 13 {
            ctx.broker
                .topic_by_id(topic_data.topic_id)
                .ok_or(Refused::from(ResponseError::UnknownTopicId))
                .and_then(|h| {
                    if may_write(&h.topic.name) {
                        Ok(h)
                    } else {
                        Err(refused())
                    }
                })
        } else if !may_write(&topic_data.name.0) {
            Err(refused())
        } else {
            ctx.broker
                .topic_or_auto_create(&topic_data.name.0)
                .await
                .map_err(|e| Refused::from(&e))
        };
        let name = handle
            .as_ref()
            .map_or_else(|_| topic_data.name.0.to_string(), |h| h.topic.name.clone());
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let result = async {
                let handle = handle.as_ref().map_err(Refused::clone)?;
                if acks == -1 {
                    handle.check_min_insync().map_err(|e| Refused::from(&e))?;
                }
                let partition = ctx
                    .broker
                    .partition(&handle.topic.name, data.index)
                    .map_err(|e| Refused::from(&e))?;
                let records = data
                    .records
                    .ok_or(Refused::from(ResponseError::CorruptMessage))?;
                // Queued here, in request order; written and awaited in the concurrent stage,
                // so the next request's append is queued behind it without waiting for it.
                match partition.start_append(records).await {
                    Ok(written) => Ok((partition, written.boxed())),
                    Err(e) => {
                        log_append_error(&name, data.index, &e);
                        Err(Refused::from(&e))
                    }
                }
            }
            .await;
            partitions.push(PartitionAppend {
                index: data.index,
                result,
            });
        }
        topics.push((topic_data.name, topic_data.topic_id, partitions));
    }

    // Concurrent stage: wait for durability, then answer.
    async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, topic_id, partitions) in topics {
            let mut partition_responses = Vec::with_capacity(partitions.len());
            for appended in partitions {
                let mut response = PartitionProduceResponse::default()
                    .with_index(appended.index)
                    .with_log_append_time_ms(-1);
                let appended_result = match appended.result {
                    Ok((partition, written)) => match written.await {
                        Ok(info) => Ok((partition, info)),
                        Err(e) => {
                            log_append_error(&name.0, appended.index, &e);
                            Err(Refused::from(&e))
                        }
                    },
                    Err(refused) => Err(refused),
                };
                match appended_result {
                    Ok((partition, info)) => {
                        let end_offset = info.last_offset + 1;
                        if acks == 0 {
                            // Nobody waits; the writer thread's commit step after the append
                            // makes the data durable all the same.
                            continue;
                        }
                        match partition.wait_durable(end_offset).await {
                            Ok(()) => {
                                response = response
                                    .with_base_offset(info.base_offset)
                                    .with_log_append_time_ms(info.log_append_time);
                                if version >= 5 {
                                    response.log_start_offset = partition.log_start_offset();
                                }
                            }
                            Err(e) => {
                                tracing::error!(topic = %name.0, partition = appended.index, error = %e, "flush failed");
                                response = with_error(response, error_code(&e), &e.to_string(), version);
                            }
                        }
                    }
                    Err(refused) => {
                        response = with_error(response, refused.code, &refused.message, version);
                        if version >= 8 {
                            let message = StrBytes::from_string(refused.record_message);
                            response.record_errors = refused
                                .records
                                .into_iter()
                                .map(|index| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(Some(message.clone()))
                                })
                                .collect();
                        }
                    }
                }
                partition_responses.push(response);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(partition_responses),
            );
        }
        (acks != 0).then(|| ResponseKind::Produce(ProduceResponse::default().with_responses(responses)))
    }
    .boxed()
}

fn with_error(
    response: PartitionProduceResponse,
    code: ResponseError,
    message: &str,
    version: i16,
) -> PartitionProduceResponse {
    let mut response = response.with_error_code(code.code()).with_base_offset(-1);
    if version >= 8 {
        response.error_message = Some(StrBytes::from_string(message.to_string()));
    }
    response
}

fn error_response(request: &ProduceRequest, code: ResponseError, version: i16) -> ProduceResponse {
    let responses = request
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            with_error(
                                PartitionProduceResponse::default().with_index(p.index),
                                code,
                                &code.to_string(),
                                version,
                            )
                        })
                        .collect(),
                )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

fn log_append_error(topic: &str, partition: i32, error: &CoreError) {
    // The broker's own failure is an error; a client's bad batch only a warning.
    match error.kind() {
        porter_core::error::ErrorKind::Unavailable | porter_core::error::ErrorKind::Internal => {
            tracing::error!(topic, partition, %error, "append failed")
        }
        _ => tracing::warn!(topic, partition, %error, "produce rejected"),
    }
}
