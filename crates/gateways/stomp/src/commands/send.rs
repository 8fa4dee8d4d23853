//! SEND: the destination names an exchange and a routing key (or a Kafka topic), the headers
//! become the message's properties ([`crate::convert`]), and the core publishes it. A
//! `reply-to: /temp-queue/<name>` is given a per-connection exclusive queue and rewritten to
//! `/reply-queue/<queue>`, a name the replier can SEND to (RabbitMQ's rule). While a memory or
//! disk alarm is on, SEND waits (RabbitMQ blocks publishing connections the same way).

use porter_core::message::Message;
use porter_core::vhost::DurableWait;

use super::subscribe::{ensure_queue, temp_queue};
use crate::convert::properties;
use crate::destination::Destination;
use crate::error::{Result, StompError};
use crate::frame::Frame;
use crate::kafka::{self, Produced};
use crate::session::Session;

/// What a RECEIPT for a SEND waits for.
pub enum Durable {
    Queue(DurableWait),
    Kafka(Produced),
}

impl Durable {
    pub async fn wait(self) -> Result<()> {
        match self {
            Durable::Queue(w) => Ok(w.wait().await?),
            Durable::Kafka(p) => p.wait().await,
        }
    }
}

pub async fn send(session: &mut Session, frame: &Frame) -> Result<Option<Durable>> {
    let destination = frame
        .header("destination")
        .ok_or_else(|| StompError::missing("destination", "SEND"))?;
    let destination = Destination::parse(destination)?;
    wait_for_alarms(session).await?;
    let (exchange, key) = match destination {
        Destination::Kafka(topic) => {
            let produced = kafka::produce(&session.ctx.broker, &topic, frame).await?;
            return Ok(Some(Durable::Kafka(produced)));
        }
        Destination::Queue(name) => {
            ensure_queue(session, &name).await?;
            (String::new(), name)
        }
        Destination::AmqQueue(name) | Destination::ReplyQueue(name) => (String::new(), name),
        Destination::TempQueue(name) => (String::new(), temp_queue(session, &name, true).await?),
        Destination::Topic(key) => ("amq.topic".to_string(), key),
        Destination::Exchange { exchange, key } => (exchange, key),
    };
    let mut props = properties(frame);
    if let Some(temp) = props
        .reply_to
        .as_deref()
        .and_then(|r| r.strip_prefix("/temp-queue/"))
    {
        let temp = temp.to_string();
        let queue = temp_queue(session, &temp, true).await?;
        props.reply_to = Some(format!("/reply-queue/{queue}"));
    }
    let message = Message {
        exchange: exchange.clone(),
        routing_key: key,
        properties: props,
        body: frame.body.clone(),
    };
    let outcome = session.vhost.publish(&exchange, message).await?;
    Ok(Some(Durable::Queue(outcome.durable)))
}

async fn wait_for_alarms(session: &Session) -> Result<()> {
    let mut alarms = session.ctx.broker.alarms();
    if alarms.borrow().any() {
        tracing::info!(user = %session.user, "stomp SEND waits for a resource alarm to clear");
        tokio::select! {
            _ = alarms.wait_for(|a| !a.any()) => {}
            _ = session.closing.cancelled() => {
                return Err(StompError::protocol(
                    "connection closed by the broker",
                    "closed while a SEND waited for a resource alarm to clear",
                ))
            }
        }
    }
    Ok(())
}
