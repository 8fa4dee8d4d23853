//! DeleteTopics: by name (v0–v5) or by name or id (v6+).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Caller, Context};
use crate::authorize::{allowed, Operation, ResourceType};
use crate::error::error_code;

pub async fn handle(
    ctx: &Arc<Context>,
    request: DeleteTopicsRequest,
    version: i16,
    caller: &Caller,
) -> DeleteTopicsResponse {
    // (name if given, id if given)
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let result = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        let resolved = match (&name, id.is_nil()) {
            (Some(name), _) => Ok(name.0.to_string()),
            (None, false) => ctx
                .broker
                .topic_by_id(id)
                .map(|h| h.topic.name.clone())
                .ok_or(ResponseError::UnknownTopicId),
            (None, true) => Err(ResponseError::InvalidRequest),
        };
        let resolved = resolved.and_then(|topic| {
            if allowed(ctx, caller, Operation::Delete, ResourceType::Topic, &topic) {
                Ok(topic)
            } else {
                Err(ResponseError::TopicAuthorizationFailed)
            }
        });
        let outcome = match resolved {
            Ok(topic) => match ctx.broker.delete_topic(&topic).await {
                Ok(()) => Ok(topic),
                Err(e) => Err(error_code(&e)),
            },
            Err(code) => Err(code),
        };
        responses.push(match outcome {
            Ok(topic) => result.with_name(Some(TopicName(StrBytes::from_string(topic)))),
            Err(code) => {
                let mut result = result.with_error_code(code.code());
                if version >= 5 {
                    result.error_message = Some(StrBytes::from_string(code.to_string()));
                }
                result
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
