//! SUBSCRIBE and UNSUBSCRIBE, and the queues destinations stand for ([`crate::destination`]).
//! A queue subscription is a core consumer whose tag is the connection's prefix plus the
//! subscription id; its deliveries arrive on the connection's feed. `prefetch-count` is the
//! consumer's prefetch (unacknowledged messages at once; ignored with `ack:auto`, as in
//! RabbitMQ); without one, `prefetch_default` bounds an acknowledging subscription.

use std::sync::Arc;

use porter_core::queue::api::ConsumeRequest;
use porter_core::queue::QueueDefinition;
use porter_core::routing::{Binding, Destination as Bound, FieldTable, HeaderValue};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use porter_core::users::access::{Access, Resource};

use crate::destination::Destination;
use crate::error::{Result, StompError};
use crate::frame::Frame;
use crate::kafka;
use crate::limits::PREFETCH_MAX;
use crate::session::{AckMode, Session, Source, Subscription, Version};

/// Prefix of the queues behind topic and exchange subscriptions (RabbitMQ's).
pub const SUBSCRIPTION_QUEUE_PREFIX: &str = "stomp-subscription-";
/// Prefix of the queues behind `/temp-queue/` names.
pub const TEMP_QUEUE_PREFIX: &str = "stomp-temp-";

pub async fn subscribe(session: &mut Session, frame: &Frame) -> Result<()> {
    let text = frame
        .header("destination")
        .ok_or_else(|| StompError::missing("destination", "SUBSCRIBE"))?
        .to_string();
    let id = match frame.header("id") {
        Some(id) => id.to_string(),
        None if session.version == Version::V1_0 => text.clone(),
        None => return Err(StompError::missing("id", "SUBSCRIBE")),
    };
    let ack = AckMode::parse(frame.header("ack")).ok_or_else(|| {
        StompError::protocol(
            "invalid ack mode",
            "ack must be auto, client or client-individual",
        )
    })?;
    let prefetch = match frame.header("prefetch-count") {
        None => session.ctx.config.prefetch_default,
        Some(p) => p
            .trim()
            .parse::<u64>()
            .map_err(|_| StompError::protocol("invalid prefetch-count", p.to_string()))?
            .min(u64::from(PREFETCH_MAX)) as u16,
    };
    let destination = Destination::parse(&text)?;
    let persistent =
        frame.header("persistent") == Some("true") || frame.header("durable") == Some("true");
    start(
        session,
        id,
        text,
        destination,
        ack,
        prefetch,
        persistent,
        frame,
    )
    .await
}

/// Starts a subscription (also used for the automatic temp-queue subscription).
#[allow(clippy::too_many_arguments)]
pub async fn start(
    session: &mut Session,
    id: String,
    text: String,
    destination: Destination,
    ack: AckMode,
    prefetch: u16,
    persistent: bool,
    frame: &Frame,
) -> Result<()> {
    if session.subscriptions.contains_key(id.as_str()) {
        return Err(StompError::protocol(
            "duplicate subscription",
            format!("subscription id '{id}' is in use on this connection"),
        ));
    }
    let max = session.ctx.config.subscriptions_max;
    if session.subscriptions.len() >= max {
        return Err(StompError::Limit(format!(
            "{max} subscriptions are open, the most one connection may have (subscriptions_max)"
        )));
    }
    let id: Arc<str> = Arc::from(id);
    let mut name_by_message = false;
    let queue_name = match destination {
        Destination::Queue(name) => {
            ensure_queue(session, &name, frame).await?;
            name
        }
        Destination::AmqQueue(name) => name,
        Destination::TempQueue(name) => temp_queue(session, &name, false).await?,
        Destination::Topic(key) => {
            name_by_message = true;
            session.authorize_routing(Access::Read, "amq.topic", &key)?;
            bound_queue(session, "amq.topic", &key, &id, persistent, frame).await?
        }
        Destination::Exchange { exchange, key } => {
            name_by_message = true;
            session.authorize_routing(Access::Read, &exchange, &key)?;
            bound_queue(session, &exchange, &key, &id, persistent, frame).await?
        }
        Destination::ReplyQueue(_) => {
            return Err(StompError::protocol(
                "invalid destination",
                "a /reply-queue/ destination can be sent to, not subscribed to",
            ))
        }
        Destination::Kafka(topic) => {
            let stop = CancellationToken::new();
            let credit = (ack != AckMode::Auto && prefetch > 0)
                .then(|| Arc::new(Semaphore::new(prefetch.into())));
            let feed = session.kafka_feed();
            kafka::subscribe(
                &session.ctx.broker,
                &topic,
                kafka::start_at(frame.header("x-stream-offset"))?,
                id.clone(),
                feed,
                stop.clone(),
                credit.clone(),
            )
            .await?;
            session.subscriptions.insert(
                id.clone(),
                Subscription {
                    id,
                    destination: text,
                    name_by_message: false,
                    ack,
                    source: Source::Kafka { stop, credit },
                    unacked: Default::default(),
                },
            );
            return Ok(());
        }
    };
    session.authorize(Access::Read, Resource::Queue(&queue_name))?;
    let queue = session.vhost.queue(&queue_name, session.owner)?;
    let consumer_tag = format!("{}{id}", session.tag_prefix);
    let sink = session.delivery_sink();
    queue.consume(ConsumeRequest {
        consumer_tag: consumer_tag.clone(),
        prefetch: if ack == AckMode::Auto { 0 } else { prefetch },
        no_ack: ack == AckMode::Auto,
        exclusive: false,
        owner: session.owner,
        sink,
    })?;
    session.subscriptions.insert(
        id.clone(),
        Subscription {
            id,
            destination: text,
            name_by_message,
            ack,
            source: Source::Queue {
                queue,
                consumer_tag,
            },
            unacked: Default::default(),
        },
    );
    Ok(())
}

pub async fn unsubscribe(session: &mut Session, frame: &Frame) -> Result<()> {
    let id = match (frame.header("id"), session.version) {
        (Some(id), _) => id,
        (None, Version::V1_0) => frame
            .header("destination")
            .ok_or_else(|| StompError::missing("id", "UNSUBSCRIBE"))?,
        (None, _) => return Err(StompError::missing("id", "UNSUBSCRIBE")),
    };
    let sub = session.subscriptions.remove(id).ok_or_else(|| {
        StompError::protocol(
            "unknown subscription",
            format!("no subscription has id '{id}' on this connection"),
        )
    })?;
    sub.stop();
    // `persistent:true` on UNSUBSCRIBE ends a durable topic subscription for good.
    if frame.header("persistent") == Some("true") || frame.header("durable") == Some("true") {
        if let Source::Queue { queue, .. } = &sub.source {
            if queue.definition().durable && sub.name_by_message {
                let name = queue.name().to_string();
                session
                    .vhost
                    .delete_queue(&name, false, false, session.owner)
                    .await?;
            }
        }
    }
    Ok(())
}

fn definition(
    name: String,
    durable: bool,
    owner: Option<u64>,
    auto_delete: bool,
    arguments: FieldTable,
) -> QueueDefinition {
    QueueDefinition {
        name,
        id: Default::default(),
        durable,
        exclusive_owner: owner,
        auto_delete,
        arguments,
    }
}

/// Queue arguments RabbitMQ's STOMP plugin takes from SEND and SUBSCRIBE headers, by the type
/// an AMQP client would give them.
const INTEGER_ARGUMENTS: [&str; 5] = [
    "x-expires",
    "x-message-ttl",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
];
const STRING_ARGUMENTS: [&str; 5] = [
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
];
const BOOL_ARGUMENTS: [&str; 1] = ["x-single-active-consumer"];

/// What a frame's headers say about the queue it may declare ("queue properties" in
/// RabbitMQ's STOMP guide): `durable`, `auto-delete`, `exclusive` and the `x-` arguments.
#[derive(Debug, Default, PartialEq)]
pub struct QueueProperties {
    pub durable: Option<bool>,
    pub auto_delete: Option<bool>,
    pub exclusive: Option<bool>,
    pub arguments: FieldTable,
}

impl QueueProperties {
    pub fn of(frame: &Frame) -> Result<QueueProperties> {
        let flag = |name: &'static str| -> Result<Option<bool>> {
            match frame.header(name) {
                None => Ok(None),
                Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                Some(other) => Err(StompError::protocol(
                    "invalid queue property",
                    format!("{name} must be true or false, not '{other}'"),
                )),
            }
        };
        let mut arguments = FieldTable::new();
        for name in INTEGER_ARGUMENTS {
            if let Some(text) = frame.header(name) {
                let value = text.trim().parse::<i64>().map_err(|_| {
                    StompError::protocol(
                        "invalid queue property",
                        format!("{name} must be an integer, not '{text}'"),
                    )
                })?;
                arguments.insert(name.into(), HeaderValue::I64(value));
            }
        }
        for name in STRING_ARGUMENTS {
            if let Some(text) = frame.header(name) {
                arguments.insert(name.into(), HeaderValue::from(text));
            }
        }
        for name in BOOL_ARGUMENTS {
            if let Some(value) = flag(name)? {
                arguments.insert(name.into(), HeaderValue::Bool(value));
            }
        }
        Ok(QueueProperties {
            durable: flag("durable")?,
            auto_delete: flag("auto-delete")?,
            exclusive: flag("exclusive")?,
            arguments,
        })
    }

    fn is_empty(&self) -> bool {
        *self == QueueProperties::default()
    }
}

/// `/queue/<name>`: a queue declared on first use, durable unless the frame's queue
/// properties say otherwise. An existing queue is used as it is when the frame names no
/// properties; with some, it is declared again, so different ones are refused (406, as
/// RabbitMQ does).
pub async fn ensure_queue(session: &Session, name: &str, frame: &Frame) -> Result<()> {
    let properties = QueueProperties::of(frame)?;
    if properties.is_empty() && session.vhost.queue(name, session.owner).is_ok() {
        return Ok(());
    }
    let exclusive = properties.exclusive.unwrap_or(false);
    session
        .vhost
        .declare_queue(
            definition(
                name.to_string(),
                properties.durable.unwrap_or(true),
                exclusive.then_some(session.owner),
                properties.auto_delete.unwrap_or(false),
                properties.arguments,
            ),
            false,
            session.owner,
        )
        .await?;
    Ok(())
}

/// The queue behind a topic or exchange subscription, bound with `key`: exclusive and
/// auto-delete, or durable and named after the subscription id for a durable subscription.
/// `x-queue-name` names it instead, as in RabbitMQ.
async fn bound_queue(
    session: &Session,
    exchange: &str,
    key: &str,
    id: &str,
    persistent: bool,
    frame: &Frame,
) -> Result<String> {
    let named = frame.header("x-queue-name").filter(|n| !n.is_empty());
    let arguments = QueueProperties::of(frame)?.arguments;
    let definition = if persistent {
        let name = named.map_or_else(
            || format!("{SUBSCRIPTION_QUEUE_PREFIX}{id}"),
            str::to_string,
        );
        definition(name, true, None, false, arguments)
    } else if let Some(name) = named {
        definition(
            name.to_string(),
            false,
            Some(session.owner),
            true,
            arguments,
        )
    } else {
        let name = format!(
            "{SUBSCRIPTION_QUEUE_PREFIX}{}",
            uuid::Uuid::new_v4().simple()
        );
        definition(name, false, Some(session.owner), true, arguments)
    };
    let declared = session
        .vhost
        .declare_queue(definition, false, session.owner)
        .await?;
    session
        .vhost
        .bind(
            Binding::new(exchange, Bound::Queue(declared.name.clone()), key),
            session.owner,
        )
        .await?;
    Ok(declared.name)
}

/// The exclusive queue behind `/temp-queue/<name>` on this connection, declared on first use.
/// With `auto_subscribe` (a `reply-to` or SEND names it), the connection is subscribed to it
/// as RabbitMQ does, with the temp destination as the subscription id.
pub async fn temp_queue(session: &mut Session, name: &str, auto_subscribe: bool) -> Result<String> {
    if let Some(queue) = session.temp_queues.get(name) {
        return Ok(queue.clone());
    }
    let queue = format!("{TEMP_QUEUE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    session
        .vhost
        .declare_queue(
            definition(
                queue.clone(),
                false,
                Some(session.owner),
                false,
                FieldTable::new(),
            ),
            false,
            session.owner,
        )
        .await?;
    session.temp_queues.insert(name.to_string(), queue.clone());
    let text = format!("/temp-queue/{name}");
    if auto_subscribe && !session.subscriptions.contains_key(text.as_str()) {
        let frame = Frame::new(crate::frame::Command::Subscribe);
        Box::pin(start(
            session,
            text.clone(),
            text,
            Destination::AmqQueue(queue.clone()),
            AckMode::Auto,
            0,
            false,
            &frame,
        ))
        .await?;
    }
    Ok(queue)
}
