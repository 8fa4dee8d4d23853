//! `$SYS/broker/...`: broker statistics as Mosquitto names them, published through the MQTT
//! exchange every `sys_interval_secs` and kept (in memory only: they are recomputed, not worth
//! a disk write) as retained messages, so a new `$SYS/#` subscriber sees the current values at
//! once. Filters starting with a wildcard do not match `$` topics (MQTT §4.7.2), so `#`
//! subscribers never get them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use porter_core::message::Message;
use porter_core::partition::now_ms;
use porter_core::retained::Retained;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::topic::{matches, to_routing_key};

/// The latest `$SYS` values.
#[derive(Default)]
pub(crate) struct SysTopics {
    latest: RwLock<Vec<Retained>>,
}

impl SysTopics {
    /// The current values whose topic `filter` matches, as retained messages.
    pub fn retained_matching(&self, filter: &str) -> Vec<Retained> {
        if !filter.starts_with('$') {
            return Vec::new();
        }
        self.latest
            .read()
            .iter()
            .filter(|r| {
                matches(
                    filter,
                    &crate::topic::from_routing_key(&r.message.routing_key),
                )
            })
            .cloned()
            .collect()
    }
}

/// The statistics and their values now.
fn snapshot(ctx: &Context) -> Vec<(&'static str, String)> {
    vec![
        (
            "$SYS/broker/version",
            format!("porter {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", ctx.stats.started.elapsed().as_secs()),
        ),
        (
            "$SYS/broker/clients/connected",
            ctx.clients.connected().to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            ctx.stats.received().to_string(),
        ),
        ("$SYS/broker/messages/sent", ctx.stats.sent().to_string()),
        (
            "$SYS/broker/messages/dropped",
            ctx.stats.dropped().to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            ctx.retained.len().to_string(),
        ),
        (
            "$SYS/broker/sessions/persistent",
            ctx.sessions.len().to_string(),
        ),
        (
            "$SYS/broker/wills/pending",
            ctx.clients.pending_wills().to_string(),
        ),
    ]
}

/// Publishes the statistics every `interval` until `shutdown`.
pub(crate) async fn run(ctx: Arc<Context>, interval: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let now = now_ms();
        let mut latest = Vec::new();
        for (topic, value) in snapshot(&ctx) {
            let message = Arc::new(Message {
                exchange: ctx.config.exchange.clone(),
                routing_key: to_routing_key(topic),
                properties: Default::default(),
                body: Bytes::from(value),
            });
            if let Err(e) = ctx
                .vhost
                .publish(&ctx.config.exchange, (*message).clone())
                .await
            {
                tracing::debug!(error = %e, "publishing $SYS statistics failed");
            }
            latest.push(Retained {
                message,
                stored_ms: now,
            });
        }
        *ctx.sys.latest.write() = latest;
    }
}
