//! SEND: the destination names an exchange and a routing key (or a Kafka topic), the headers
//! become the message's properties ([`crate::convert`]), and the core publishes it. A
//! `reply-to: /temp-queue/<name>` is given a per-connection exclusive queue and rewritten to
//! `/reply-queue/<queue>`, a name the replier can SEND to (RabbitMQ's rule). While a memory or
//! disk alarm is on, SEND waits (RabbitMQ blocks publishing connections the same way).

use porter_core::message::Message;
use porter_core::vhost::{DurableWait, Publish};

use super::subscribe::{ensure_queue, temp_queue};
use porter_core::users::access::Access;

use crate::convert::properties;
use crate::destination::Destination;
use crate::error::{Result, StompError};
use crate::frame::{Command, Frame};
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
            Durable::Kafka(p) => Ok(p.wait().await?),
        }
    }
}

pub async fn send(session: &mut Session, frame: &Frame) -> Result<Option<Durable>> {
    wait_for_alarms(session).await?;
    match prepare(session, frame).await? {
        Prepared::Kafka(topic) => {
            let produced = kafka::produce(&session.ctx.broker, &topic, frame).await?;
            Ok(Some(Durable::Kafka(produced)))
        }
        Prepared::Publish(p) => {
            let outcome = session.vhost.publish(&p.exchange, p.message).await?;
            Ok(Some(Durable::Queue(outcome.durable)))
        }
    }
}

/// A SEND resolved: a message for an exchange, or a record for a Kafka topic.
enum Prepared {
    Publish(Box<Publish>),
    Kafka(String),
}

/// Resolves a SEND's destination (declaring what it names) and maps its headers.
async fn prepare(session: &mut Session, frame: &Frame) -> Result<Prepared> {
    let destination = frame
        .header("destination")
        .ok_or_else(|| StompError::missing("destination", "SEND"))?;
    let destination = Destination::parse(destination)?;
    let (exchange, key) = match destination {
        Destination::Kafka(topic) => return Ok(Prepared::Kafka(topic)),
        Destination::Queue(name) => {
            ensure_queue(session, &name, frame).await?;
            (String::new(), name)
        }
        Destination::AmqQueue(name) | Destination::ReplyQueue(name) => (String::new(), name),
        Destination::TempQueue(name) => (String::new(), temp_queue(session, &name, true).await?),
        Destination::Topic(key) => ("amq.topic".to_string(), key),
        Destination::Exchange { exchange, key } => (exchange, key),
    };
    // Here, not in `send`: a burst of SENDs is prepared one by one too, and checked the same.
    session.authorize_routing(Access::Write, &exchange, &key)?;
    let mut props = properties(frame);
    // What the core would refuse at publish (RabbitMQ's 406), refused before any append.
    props
        .validate()
        .map_err(|e| StompError::protocol("precondition_failed", e))?;
    if let Some(temp) = props
        .reply_to
        .as_deref()
        .and_then(|r| r.strip_prefix("/temp-queue/"))
    {
        let temp = temp.to_string();
        let queue = temp_queue(session, &temp, true).await?;
        props.reply_to = Some(format!("/reply-queue/{queue}"));
    }
    Ok(Prepared::Publish(Box::new(Publish {
        exchange: exchange.clone(),
        message: Message {
            exchange,
            routing_key: key,
            properties: props,
            body: frame.body.clone(),
        },
    })))
}

/// Whether a frame can join a burst of SENDs published together: a SEND outside a
/// transaction through the default exchange or `amq.topic`, which always exist, so the core
/// refuses none of the burst's messages after others were appended (a refusal must end the
/// connection at the frame refused). `/exchange/` and `/kafka/` SENDs go one at a time.
pub fn batchable(frame: &Frame) -> bool {
    const BURSTABLE: [&str; 5] = [
        "/queue/",
        "/topic/",
        "/amq/queue/",
        "/temp-queue/",
        "/reply-queue/",
    ];
    frame.command == Command::Send
        && frame.header("transaction").is_none()
        && frame
            .header("destination")
            .is_some_and(|d| BURSTABLE.iter().any(|p| d.starts_with(p)))
}

/// Consecutive [`batchable`] SENDs already read, published as one burst (the core appends once
/// per destination queue for all of them), in order, each with its RECEIPT once durable. A
/// SEND that fails ends the burst: those before it are published (and receipted), the error
/// names the failing frame's receipt.
pub async fn send_burst(
    session: &mut Session,
    frames: Vec<Frame>,
) -> std::result::Result<(), (StompError, Option<String>)> {
    let receipt = |f: &Frame| f.header("receipt").map(str::to_string);
    wait_for_alarms(session).await.map_err(|e| (e, None))?;
    let mut publishes = Vec::with_capacity(frames.len());
    let mut failed = None;
    for frame in &frames {
        match prepare(session, frame).await {
            Ok(Prepared::Publish(p)) => publishes.push(*p),
            Ok(Prepared::Kafka(topic)) => {
                // `batchable` keeps Kafka SENDs out of bursts; were one here, it is refused
                // rather than sent out of order.
                let e = StompError::protocol(
                    "internal error",
                    format!("a SEND to /kafka/{topic} in a burst"),
                );
                failed = Some((e, receipt(frame)));
                break;
            }
            Err(e) => {
                failed = Some((e, receipt(frame)));
                break;
            }
        }
    }
    let published = publishes.len();
    let outcomes = if publishes.is_empty() {
        Vec::new()
    } else {
        session
            .vhost
            .publish_batch(publishes)
            .await
            .map_err(|e| (e.into(), None))?
    };
    for (frame, outcome) in frames[..published].iter().zip(outcomes) {
        let outcome = outcome.map_err(|e| (e.into(), receipt(frame)))?;
        if let Some(id) = receipt(frame) {
            outcome
                .durable
                .wait()
                .await
                .map_err(|e| (e.into(), Some(id.clone())))?;
            session
                .out
                .push(Frame::new(Command::Receipt).with("receipt-id", id));
        }
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(()),
    }
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
