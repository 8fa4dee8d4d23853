//! Delayed delivery for every protocol: a message and where it is going wait in the broker's
//! [`timer`](crate::timer) store until due, then are published there — a topic (RocketMQ delay
//! messages) or an exchange of a virtual host (AMQP's `x-delayed-message` exchanges), routed as
//! if published at that moment.
//!
//! A timer's payload is the destination followed by the message's own record batch:
//!
//! ```text
//! 1 | u16 topic len | topic | TopicMessage batch                        (a topic)
//! 2 | u16 vhost len | vhost | u16 exchange len | exchange | Message batch  (an exchange)
//! ```
//!
//! Firing: due timers are drained in groups (up to [`FIRE_BATCH_MAX`]); the messages for one
//! topic go out in one publish, each exchange message through the publish pipeline, and only
//! once those are committed are the timers marked fired. A crash in between fires them again
//! (at least once, never early, never lost). A destination that no longer exists drops its
//! message with a warning.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use porter_storage::records::decode_batches;
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::error::{CoreError, Result};
use crate::message::Message;
use crate::timer::{DueTimer, TimerConfig, TimerId, TimerService, TimerStore};
use crate::topic_message::TopicMessage;
use crate::topic_publish::{publish, PartitionChoice};

/// Due timers delivered per round.
pub const FIRE_BATCH_MAX: usize = 512;
/// Due timers queued between the timer thread and the firing task.
const DUE_QUEUE: usize = 4_096;

const TO_TOPIC: u8 = 1;
const TO_EXCHANGE: u8 = 2;

/// Where a delayed message goes when due.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DelayedTarget {
    Topic(String),
    Exchange { vhost: String, exchange: String },
}

/// The broker's delayed messages.
pub struct DelayedDelivery {
    timers: TimerService,
    max_delay_ms: i64,
    due: parking_lot::Mutex<Option<mpsc::Receiver<DueTimer>>>,
}

impl DelayedDelivery {
    /// Opens the store in `<data_dir>/timers` (blocking: recovery reads its files) and starts
    /// its thread; [`Self::start_firing`] starts delivering.
    pub fn open(data_dir: &std::path::Path) -> Result<DelayedDelivery> {
        let config = TimerConfig::default();
        let max_delay_ms = config.max_delay_ms;
        let store = TimerStore::open(&data_dir.join("timers"), config)?;
        let (timers, due) = TimerService::start(store, DUE_QUEUE)?;
        Ok(DelayedDelivery {
            timers,
            max_delay_ms,
            due: parking_lot::Mutex::new(Some(due)),
        })
    }

    /// Delayed messages waiting for their time, every target together.
    pub fn pending(&self) -> u64 {
        self.timers.pending()
    }

    /// The furthest ahead a message may be delayed.
    pub fn max_delay_ms(&self) -> i64 {
        self.max_delay_ms
    }

    /// Keeps `message` for `topic` until `due_ms` (wall clock); returns once durable.
    pub async fn schedule_topic(
        &self,
        due_ms: i64,
        topic: &str,
        message: &TopicMessage,
    ) -> Result<()> {
        let batch = TopicMessage::encode_batch(&[message], crate::timer::now_ms())?;
        let mut payload = BytesMut::with_capacity(3 + topic.len() + batch.len());
        payload.put_u8(TO_TOPIC);
        put_name(&mut payload, topic)?;
        payload.extend_from_slice(&batch);
        self.schedule(due_ms, payload.freeze()).await
    }

    /// Keeps `message` for `exchange` of `vhost` until `due_ms`; returns once durable.
    pub async fn schedule_exchange(
        &self,
        due_ms: i64,
        vhost: &str,
        exchange: &str,
        message: &Message,
    ) -> Result<()> {
        let batch = message.encode(crate::timer::now_ms(), None);
        let mut payload = BytesMut::with_capacity(5 + vhost.len() + exchange.len() + batch.len());
        payload.put_u8(TO_EXCHANGE);
        put_name(&mut payload, vhost)?;
        put_name(&mut payload, exchange)?;
        payload.extend_from_slice(&batch);
        self.schedule(due_ms, payload.freeze()).await
    }

    async fn schedule(&self, due_ms: i64, payload: Bytes) -> Result<()> {
        self.timers.schedule(due_ms, payload).await.map(drop)
    }

    /// Starts delivering due messages through `broker` (once; later calls do nothing).
    pub fn start_firing(self: &Arc<Self>, broker: &Arc<Broker>) {
        let Some(due) = self.due.lock().take() else {
            return;
        };
        // Weak both: the broker owns this, and dropping it (which joins the timer thread) must
        // not wait for a task that keeps it alive.
        let this = Arc::downgrade(self);
        let broker = Arc::downgrade(broker);
        tokio::spawn(fire(this, broker, due));
    }

    /// Stops the timer thread after a final sync.
    pub async fn shutdown(&self) {
        self.timers.shutdown().await;
    }
}

/// Delivers due timers until the timer thread stops (its channel closes) or the broker is gone.
async fn fire(
    this: std::sync::Weak<DelayedDelivery>,
    broker: std::sync::Weak<Broker>,
    mut due: mpsc::Receiver<DueTimer>,
) {
    while let Some(first) = due.recv().await {
        let mut batch = vec![first];
        while batch.len() < FIRE_BATCH_MAX {
            match due.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let delivered = deliver(&broker, batch).await;
        let Some(this) = this.upgrade() else {
            return;
        };
        match delivered {
            Ok(fired) => this.timers.fired(fired),
            Err(e) => {
                // Not marked: they fire again after a restart. Retrying here could spin on a
                // broken disk; the broker's own alarms and logs carry that.
                tracing::error!(error = %e, "delayed messages could not be delivered; they fire again after a restart");
            }
        }
    }
}

fn put_name(payload: &mut BytesMut, name: &str) -> Result<()> {
    let len = u16::try_from(name.len()).map_err(|_| {
        CoreError::InvalidRequest(format!("name of {} bytes is too long", name.len()))
    })?;
    payload.put_u16(len);
    payload.extend_from_slice(name.as_bytes());
    Ok(())
}

enum Decoded {
    Topic(String, TopicMessage),
    Exchange(String, String, Message),
}

fn take_name(bytes: &mut Bytes) -> Option<String> {
    if bytes.len() < 2 {
        return None;
    }
    let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    if bytes.len() < 2 + len {
        return None;
    }
    let name = String::from_utf8(bytes[2..2 + len].to_vec()).ok()?;
    *bytes = bytes.slice(2 + len..);
    Some(name)
}

fn decode(payload: &Bytes) -> Option<Decoded> {
    let (&kind, _) = payload.split_first()?;
    let mut rest = payload.slice(1..);
    match kind {
        TO_TOPIC => {
            let topic = take_name(&mut rest)?;
            Some(Decoded::Topic(topic, TopicMessage::decode_payload(&rest)?))
        }
        TO_EXCHANGE => {
            let vhost = take_name(&mut rest)?;
            let exchange = take_name(&mut rest)?;
            let record = decode_batches(rest).ok()?.into_iter().next()?;
            let stored = Message::decode(&record).ok()?;
            Some(Decoded::Exchange(
                vhost,
                exchange,
                (*stored.message).clone(),
            ))
        }
        _ => None,
    }
}

/// Due timers for one topic and their messages, published together.
type TopicBatch = (Vec<TimerId>, Vec<(PartitionChoice, TopicMessage)>);

/// Publishes a batch of due messages; returns the timers that are done (delivered, or dropped
/// because their destination or payload is gone).
async fn deliver(broker: &Arc<Broker>, batch: Vec<DueTimer>) -> Result<Vec<TimerId>> {
    let mut done = Vec::with_capacity(batch.len());
    let mut by_topic: HashMap<String, TopicBatch> = HashMap::new();
    for timer in batch {
        match decode(&timer.payload) {
            None => {
                tracing::warn!(
                    due_ms = timer.due_ms,
                    "a delayed message is unreadable; dropped"
                );
                done.push(timer.id);
            }
            Some(Decoded::Topic(topic, message)) => {
                let entry = by_topic.entry(topic).or_default();
                entry.0.push(timer.id);
                entry.1.push((PartitionChoice::Auto, message));
            }
            Some(Decoded::Exchange(vhost, exchange, message)) => {
                match broker.vhost(&vhost) {
                    Ok(vhost) => {
                        let outcome = vhost.publish_due(&exchange, message).await;
                        match outcome {
                            Ok(outcome) => outcome.durable.wait().await?,
                            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {
                                tracing::warn!(exchange = %exchange, "the exchange of a delayed message is gone; dropped");
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Err(_) => {
                        tracing::warn!(vhost = %vhost, "the virtual host of a delayed message is gone; dropped");
                    }
                }
                done.push(timer.id);
            }
        }
    }
    for (topic, (ids, messages)) in by_topic {
        match broker.topic(&topic) {
            Some(handle) => {
                publish(&handle, &messages).await?;
            }
            None => {
                tracing::warn!(topic = %topic, messages = ids.len(), "the topic of delayed messages is gone; dropped");
            }
        }
        done.extend(ids);
    }
    Ok(done)
}
