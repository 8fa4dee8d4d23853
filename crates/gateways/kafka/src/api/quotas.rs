//! Produce and Fetch under client quotas: the bytes each moves are counted against the caller's
//! quota (`crate::throttle`), and an answer over it is held back and carries
//! `throttle_time_ms`. Nothing is counted for a client without a quota.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kafka_protocol::messages::ProduceRequest;

use super::{Caller, Context, Pending};
use crate::frame::ResponseKind;
use crate::throttle::Direction;

/// Record bytes a Produce carries.
pub fn produce_bytes(request: &ProduceRequest) -> usize {
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum()
}

/// How long `bytes` moved for the caller hold its answer.
pub fn hold(
    ctx: &Context,
    caller: &Caller,
    client_id: &str,
    direction: Direction,
    bytes: usize,
) -> Duration {
    let user = caller.principal.as_ref().map(|p| p.user.as_str());
    ctx.throttle.record(
        &ctx.broker.client_quotas(),
        user,
        client_id,
        direction,
        bytes,
    )
}

fn with_throttle(response: &mut ResponseKind, hold: Duration) {
    let ms = hold.as_millis().min(i32::MAX as u128) as i32;
    match response {
        ResponseKind::Produce(r) => r.throttle_time_ms = ms,
        ResponseKind::Fetch(answer) => answer.response.throttle_time_ms = ms,
        _ => {}
    }
}

/// A Produce's answer, held back `hold` (its bytes were counted when it arrived).
pub fn produce(pending: Pending, hold: Duration) -> Pending {
    if hold.is_zero() {
        return pending;
    }
    async move {
        let mut response = pending.await?;
        tokio::time::sleep(hold).await;
        with_throttle(&mut response, hold);
        Some(response)
    }
    .boxed()
}

/// A Fetch's answer, counted by the bytes it returns and held back if that is over the quota.
pub fn fetch(ctx: &Arc<Context>, caller: &Caller, client_id: String, pending: Pending) -> Pending {
    // Most clients have no quota: their fetches are not wrapped at all.
    let user = caller.principal.as_ref().map(|p| p.user.clone());
    let quotas = ctx.broker.client_quotas();
    let key = porter_core::quota::CONSUMER_BYTE_RATE;
    if quotas.resolve(user.as_deref(), &client_id, key).is_none() {
        return pending;
    }
    let (ctx, caller) = (ctx.clone(), caller.clone());
    async move {
        let mut response = pending.await?;
        let bytes = match &response {
            ResponseKind::Fetch(answer) => answer.regions.iter().map(|r| r.len as usize).sum(),
            _ => 0,
        };
        let hold = hold(&ctx, &caller, &client_id, Direction::Fetch, bytes);
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
            with_throttle(&mut response, hold);
        }
        Some(response)
    }
    .boxed()
}
