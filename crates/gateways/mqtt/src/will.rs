//! Last will: the message a client leaves with CONNECT, published when its connection ends
//! without a DISCONNECT (or with MQTT 5's "disconnect with will message", 0x04). MQTT 5's Will
//! Delay Interval holds it back (at most the session's expiry); the client connecting again
//! within the delay cancels it. Delayed wills are held in memory (bounded by
//! `PENDING_WILLS_MAX`): a broker restart during the delay drops them, which docs/mqtt.md says.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{LastWill, Publish, PublishProperties};

use crate::context::Context;
use crate::convert::to_message;
use crate::limits::PENDING_WILLS_MAX;
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

/// Publishes `will` for `client_id`, after its delay (capped by the session's expiry) unless
/// the client comes back first.
pub(crate) fn send(ctx: Arc<Context>, client_id: String, will: Will, session_expiry_secs: u32) {
    let delay = will.delay_secs.min(session_expiry_secs);
    if delay == 0 {
        tokio::spawn(async move { publish(&ctx, &client_id, will).await });
        return;
    }
    let Some((id, cancelled)) = ctx.clients.delay_will(&client_id, PENDING_WILLS_MAX) else {
        tracing::warn!(%client_id, "too many delayed wills pending: sending this one now");
        tokio::spawn(async move { publish(&ctx, &client_id, will).await });
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {
                publish(&ctx, &client_id, will).await;
            }
            _ = cancelled.cancelled() => {}
        }
        ctx.clients.will_done(&client_id, id);
    });
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
