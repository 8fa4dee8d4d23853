//! Last will: the message a client leaves with CONNECT, published when its connection ends
//! without a DISCONNECT (or with MQTT 5's "disconnect with will message", 0x04). MQTT 5's Will
//! Delay Interval holds it back (at most the session's expiry); the client connecting again
//! within the delay cancels it. A delayed will waits on a timer (at most `PENDING_WILLS_MAX`
//! at once) and in its session's record ([`StoredWill`]), so a restart during the delay arms
//! it again ([`resume`]) instead of dropping it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use porter_core::partition::now_ms;
use rumqttc::v5::mqttbytes::v5::{LastWill, Publish, PublishProperties};

use crate::codec::qos_from;
use crate::context::Context;
use crate::convert::to_message;
use crate::limits::PENDING_WILLS_MAX;
use crate::store::StoredWill;
use crate::topic::check_name;

/// A will as CONNECT left it, checked.
#[derive(Clone, Debug)]
pub(crate) struct Will {
    pub topic: String,
    pub publish: Publish,
    pub delay_secs: u32,
}

impl Will {
    /// The will of a CONNECT; `Err` with the reason if its topic is not a valid topic name.
    pub fn from_connect(will: LastWill, levels_max: usize) -> Result<Will, String> {
        let topic = String::from_utf8(will.topic.to_vec())
            .map_err(|_| "will topic is not UTF-8".to_string())?;
        check_name(&topic, levels_max).map_err(|e| format!("will topic: {e}"))?;
        let (delay_secs, properties) = match will.properties {
            Some(p) => (
                p.delay_interval.unwrap_or(0),
                Some(PublishProperties {
                    payload_format_indicator: p.payload_format_indicator,
                    message_expiry_interval: p.message_expiry_interval,
                    topic_alias: None,
                    response_topic: p.response_topic,
                    correlation_data: p.correlation_data,
                    user_properties: p.user_properties,
                    subscription_identifiers: Vec::new(),
                    content_type: p.content_type,
                }),
            ),
            None => (0, None),
        };
        let mut publish = Publish::new(topic.as_str(), will.qos, will.message, properties);
        publish.retain = will.retain;
        Ok(Will {
            topic,
            publish,
            delay_secs,
        })
    }
}

impl Will {
    /// The will as the session's record keeps it while it waits, due `delay_secs` from now.
    pub fn stored(&self, delay_secs: u32) -> StoredWill {
        let properties = self.publish.properties.clone().unwrap_or_default();
        StoredWill {
            due_ms: now_ms().saturating_add(i64::from(delay_secs) * 1000),
            topic: self.topic.clone(),
            payload: self.publish.payload.to_vec(),
            qos: self.publish.qos as u8,
            retain: self.publish.retain,
            payload_format_indicator: properties.payload_format_indicator,
            message_expiry_interval: properties.message_expiry_interval,
            response_topic: properties.response_topic,
            correlation_data: properties.correlation_data.map(|c| c.to_vec()),
            user_properties: properties.user_properties,
            content_type: properties.content_type,
        }
    }

    fn from_stored(stored: StoredWill) -> Will {
        let properties = PublishProperties {
            payload_format_indicator: stored.payload_format_indicator,
            message_expiry_interval: stored.message_expiry_interval,
            topic_alias: None,
            response_topic: stored.response_topic,
            correlation_data: stored.correlation_data.map(Bytes::from),
            user_properties: stored.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: stored.content_type,
        };
        let mut publish = Publish::new(
            stored.topic.as_str(),
            qos_from(stored.qos.min(2)),
            stored.payload,
            Some(properties),
        );
        publish.retain = stored.retain;
        Will {
            topic: stored.topic,
            publish,
            delay_secs: 0,
        }
    }
}

/// The delay `will` waits before it is sent when a session with `session_expiry_secs` ends:
/// its Will Delay Interval, at most the session's expiry.
pub(crate) fn delay_of(will: &Will, session_expiry_secs: u32) -> u32 {
    will.delay_secs.min(session_expiry_secs)
}

/// Publishes `will` for `client_id` after `delay_secs` ([`delay_of`]) unless the client comes
/// back first. `due_ms` is when its record says it is due, if it has one.
pub(crate) fn send(
    ctx: Arc<Context>,
    client_id: String,
    will: Will,
    delay_secs: u32,
    due_ms: Option<i64>,
) {
    let delay = Duration::from_secs(u64::from(delay_secs));
    arm(ctx, client_id, will, delay, due_ms);
}

/// Arms the delayed wills the session records held when the broker stopped, with what was
/// left of their delays (due ones are sent now).
pub(crate) fn resume(ctx: &Arc<Context>) {
    let pending = ctx.sessions.pending_wills();
    if !pending.is_empty() {
        tracing::info!(
            wills = pending.len(),
            "delayed MQTT wills from before the restart armed again"
        );
    }
    let now = now_ms();
    for (client_id, stored) in pending {
        let due_ms = stored.due_ms;
        let left = Duration::from_millis(due_ms.saturating_sub(now).max(0) as u64);
        arm(
            ctx.clone(),
            client_id,
            Will::from_stored(stored),
            left,
            Some(due_ms),
        );
    }
}

fn arm(ctx: Arc<Context>, client_id: String, will: Will, delay: Duration, due_ms: Option<i64>) {
    if delay.is_zero() {
        tokio::spawn(async move { publish_recorded(&ctx, &client_id, will, due_ms).await });
        return;
    }
    let Some((id, cancelled)) = ctx.clients.delay_will(&client_id, PENDING_WILLS_MAX) else {
        tracing::warn!(%client_id, "too many delayed wills pending: sending this one now");
        tokio::spawn(async move { publish_recorded(&ctx, &client_id, will, due_ms).await });
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {
                publish_recorded(&ctx, &client_id, will, due_ms).await;
            }
            _ = cancelled.cancelled() => {}
        }
        ctx.clients.will_done(&client_id, id);
    });
}

/// Publishes a will, then drops it from its session's record.
async fn publish_recorded(ctx: &Context, client_id: &str, will: Will, due_ms: Option<i64>) {
    publish(ctx, client_id, will).await;
    if let Some(due_ms) = due_ms {
        if ctx.clients.is_connected(client_id) {
            return; // the new connection's record has no will
        }
        if let Err(e) = ctx.sessions.will_sent(client_id, due_ms).await {
            tracing::warn!(%client_id, error = %e, "dropping a sent will from its session's record failed");
        }
    }
}

async fn publish(ctx: &Context, client_id: &str, will: Will) {
    let exchange = &ctx.config.exchange;
    let message = to_message(
        exchange,
        &will.topic,
        &will.publish,
        client_id,
        will.publish.retain,
    );
    if will.publish.retain {
        let stored = if message.body.is_empty() {
            ctx.retained.clear(&message.routing_key).await
        } else {
            ctx.retained.retain(Arc::new(message.clone())).await
        };
        if let Err(e) = stored {
            tracing::warn!(%client_id, error = %e, "retaining a will failed");
        }
    }
    match ctx.vhost.publish(exchange, message).await {
        Ok(outcome) => {
            ctx.stats.count_received();
            if let Err(e) = outcome.durable.wait().await {
                tracing::warn!(%client_id, error = %e, "a will did not commit");
            }
        }
        Err(e) => tracing::warn!(%client_id, error = %e, "publishing a will failed"),
    }
    tracing::debug!(%client_id, topic = %will.topic, "will published");
}
