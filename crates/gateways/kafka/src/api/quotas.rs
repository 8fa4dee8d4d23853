//! Requests under client quotas: the bytes a Produce or Fetch moves, and the time the broker
//! spends on any request (`request_percentage`), are counted against the caller's quota
//! (`crate::throttle`), and an answer over it is held back and carries `throttle_time_ms`.
//! Nothing is counted for a client without a quota.

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

/// Sets `throttle_time_ms` on the responses that carry it (the longer of two holds wins).
fn with_throttle(response: &mut ResponseKind, hold: Duration) {
    let ms = hold.as_millis().min(i32::MAX as u128) as i32;
    macro_rules! field {
        ($($kind:ident),*) => {
            match response {
                ResponseKind::Fetch(answer) => {
                    let t = &mut answer.response.throttle_time_ms;
                    *t = (*t).max(ms);
                }
                $(ResponseKind::$kind(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    field!(
        Produce,
        Metadata,
        ListOffsets,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        CreateTopics,
        DeleteTopics,
        DescribeConfigs,
        InitProducerId,
        DeleteGroups,
        DescribeCluster
    );
}

/// Any answer, held back when the time the broker spent on the request (`spent`) takes the
/// caller over its `request_percentage`.
pub fn request_time(
    ctx: &Context,
    caller: &Caller,
    client_id: &str,
    spent: Duration,
    pending: Pending,
) -> Pending {
    let micros = spent.as_micros().min(usize::MAX as u128) as usize;
    held(
        pending,
        hold(ctx, caller, client_id, Direction::Request, micros),
    )
}

/// An answer held back `hold`, with `throttle_time_ms` set (a Produce's: its bytes were counted
/// when it arrived).
pub fn held(pending: Pending, hold: Duration) -> Pending {
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
pub fn fetch(ctx: &Arc<Context>, caller: &Caller, client_id: &str, pending: Pending) -> Pending {
    // Most clients have no quota: their fetches are not wrapped at all.
    let user = caller.principal.as_ref().map(|p| p.user.as_str());
    let quotas = ctx.broker.client_quotas();
    let key = porter_core::quota::CONSUMER_BYTE_RATE;
    if quotas.resolve(user, client_id, key).is_none() {
        return pending;
    }
    let (ctx, caller, client_id) = (ctx.clone(), caller.clone(), client_id.to_string());
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
