//! InitProducerId for idempotent producers: a fresh producer id, or the same id with a bumped
//! epoch when the client asks to recover from a sequence error (KIP-360, v3+). Transactional
//! ids are refused until transactions are built.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Context;
use crate::error::error_code;

pub async fn handle(ctx: &Arc<Context>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let (id, epoch) = (request.producer_id.0, request.producer_epoch);
    // Bumping keeps the id, so the partitions' producer state fences the old epoch.
    if id >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        return InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch + 1);
    }
    match ctx.broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            InitProducerIdResponse::default()
                .with_error_code(error_code(&e).code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
