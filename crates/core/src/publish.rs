//! The publish pipeline every gateway calls (AMQP today; MQTT, STOMP and RocketMQ next), so
//! each protocol only maps its frames onto [`Publish`] and [`PublishOutcome`] onto its replies:
//!
//! 1. **route**: each message is validated and routed through its exchange on the virtual
//!    host's routing snapshot (no lock on the metadata store) to a set of queues.
//! 2. **append**: each routed message is encoded *once* into a record batch (`Prepared`:
//!    shared `Bytes` plus the decoded message behind an `Arc`), and every destination queue gets
//!    *one* append for the whole burst: the batches of the messages routed to it, concatenated
//!    into one write, queued on the queue's writer thread ([`crate::commit`]) before any is
//!    awaited. A queue's log only patches each batch's base offset, which is outside the
//!    CRC. The queue's cache and its deliveries share the same `Arc<StoredMessage>`: fan-out to
//!    N queues is one encode and one `Message`, not N of each.
//! 3. **commit-wait**: [`PublishOutcome::durable`] resolves once the message is committed
//!    (today: persistent messages on durable queues fsynced); nothing is acknowledged earlier.
//! 4. **acknowledge**: the gateway answers in its protocol (AMQP confirm, MQTT PUBACK/PUBREC,
//!    STOMP RECEIPT, RocketMQ SendResult) after `durable.wait()`; a `routed == false` with
//!    mandatory is AMQP's `basic.return`, `rejected` a confirm nack.
//!
//! Dead letters take the same route and append, without waits or acknowledgements.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use porter_storage::Offset;

use crate::error::{CoreError, Result};
use crate::message::{Message, StoredMessage};
use crate::partition::now_ms;
use crate::queue::dead_letter::is_automatic_cycle;
use crate::queue::runtime::AppendOutcome;
use crate::queue::Queue;
use crate::routing::exchange::DELAY_HEADER;
use crate::routing::HeaderValue;
use crate::vhost::VirtualHost;

/// Messages one [`VirtualHost::publish_batch`] call takes: bounds the per-call vectors and
/// the time one burst holds each destination queue's lock (one write of at most this many
/// batches). A gateway with more ready messages calls again.
pub const PUBLISH_BATCH_MAX: usize = 1_024;

/// One message to publish through `exchange` (`""`: the default exchange).
#[derive(Clone, Debug)]
pub struct Publish {
    pub exchange: String,
    pub message: Message,
}

/// What became of a published message.
pub struct PublishOutcome {
    /// Whether some queue took it. `false` with `mandatory` is a `basic.return` (312 NO_ROUTE).
    pub routed: bool,
    /// A queue at its `x-max-length` with `x-overflow = reject-publish(-dlx)` refused it: a
    /// publisher-confirm nack.
    pub rejected: bool,
    /// Resolves when the message is as durable as it will get (persistent on durable queues:
    /// fsynced). Publisher confirms ack after it.
    pub durable: DurableWait,
}

/// The commits a publish must wait for before it is acknowledged: per queue and lane, the log
/// end that must be durable.
#[derive(Default)]
pub struct DurableWait {
    pub(crate) waits: Vec<(Arc<Queue>, usize, Offset)>,
}

impl DurableWait {
    pub async fn wait(self) -> Result<()> {
        for (queue, lane, end) in self.waits {
            queue.wait_durable(lane, end).await?;
        }
        Ok(())
    }
}

/// A message encoded once for every queue it is routed to.
#[derive(Clone)]
pub(crate) struct Prepared {
    /// What the queues cache and deliver, shared by all of them.
    pub(crate) stored: Arc<StoredMessage>,
    /// One record batch holding the message; each queue's log copies it and sets its offset.
    pub(crate) batch: Bytes,
}

impl Prepared {
    /// Encodes `message` enqueued at `now_ms`; a transient message carries `epoch` (this broker
    /// incarnation, the same for every queue) so a restart can drop it.
    pub(crate) fn new(message: Arc<Message>, now_ms: i64, epoch: u64) -> Prepared {
        let epoch = (!message.properties.is_persistent()).then_some(epoch);
        let batch = message.encode(now_ms, epoch);
        Prepared {
            stored: Arc::new(StoredMessage {
                message,
                enqueued_ms: now_ms,
                epoch,
            }),
            batch,
        }
    }

    pub(crate) fn is_transient(&self) -> bool {
        self.stored.epoch.is_some()
    }

    /// The batches of `entries`, back to back: one write for the log.
    pub(crate) fn concat(entries: &[&Prepared]) -> Bytes {
        if let [one] = entries {
            return one.batch.clone();
        }
        let len = entries.iter().map(|e| e.batch.len()).sum();
        let mut buffer = BytesMut::with_capacity(len);
        entries
            .iter()
            .for_each(|e| buffer.extend_from_slice(&e.batch));
        buffer.freeze()
    }
}

/// The destination queues of a burst in first-routed order, each with the messages (indexes)
/// routed to it in publish order.
#[derive(Default)]
struct Destinations {
    queues: Vec<(Arc<Queue>, Vec<usize>)>,
    /// By the queue's address (`Arc::as_ptr` as a number, so the future stays `Send`).
    index: HashMap<usize, usize>,
}

impl Destinations {
    fn add(&mut self, queue: Arc<Queue>, message: usize) {
        let key = Arc::as_ptr(&queue) as usize;
        let slot = *self.index.entry(key).or_insert_with(|| {
            self.queues.push((queue, Vec::new()));
            self.queues.len() - 1
        });
        self.queues[slot].1.push(message);
    }
}

impl VirtualHost {
    /// `basic.publish` of one message: [`Self::publish_batch`] with a burst of one. Returns once
    /// appended; `outcome.durable.wait()` resolves when it is committed.
    pub async fn publish(&self, exchange: &str, message: Message) -> Result<PublishOutcome> {
        let publish = Publish {
            exchange: exchange.to_string(),
            message,
        };
        let mut outcomes = self.publish_batch(vec![publish]).await?;
        outcomes.pop().expect("one outcome per message")
    }

    /// A burst of ready messages (a gateway's read buffer): routed one by one, each encoded
    /// once, and every destination queue appended to once for all of them. One result per
    /// message, in order: `Err` for a message refused on its own (an invalid `expiration`: 406;
    /// an unknown exchange: 404; an internal one: 403), which the others do not share. The
    /// outer `Err` is a failed append (storage), after which the messages' fate is unknown, as
    /// for a single publish. At most [`PUBLISH_BATCH_MAX`] messages.
    pub async fn publish_batch(
        &self,
        publishes: Vec<Publish>,
    ) -> Result<Vec<Result<PublishOutcome>>> {
        self.publish_burst(publishes, true).await
    }

    /// A delayed message whose time came: published through `exchange` as if sent now, its
    /// `x-delay` not honoured again.
    pub(crate) async fn publish_due(
        &self,
        exchange: &str,
        message: Message,
    ) -> Result<PublishOutcome> {
        let publish = Publish {
            exchange: exchange.to_string(),
            message,
        };
        let mut outcomes = self.publish_burst(vec![publish], false).await?;
        outcomes.pop().expect("one outcome per message")
    }

    /// The delay a publish through a delayed-message exchange asks for (its `x-delay` header,
    /// in ms), if positive.
    fn delay_of(&self, exchange: &str, message: &Message) -> Result<Option<u64>> {
        let routes = self.broker.routes(&self.name)?;
        if !routes.exchange(exchange).is_some_and(|e| e.delayed) {
            return Ok(None);
        }
        let delay = match message.properties.header(DELAY_HEADER) {
            Some(value) => header_integer(value),
            None => None,
        };
        Ok(delay.filter(|&d| d > 0).map(|d| d as u64))
    }

    async fn publish_burst(
        &self,
        publishes: Vec<Publish>,
        honour_delay: bool,
    ) -> Result<Vec<Result<PublishOutcome>>> {
        debug_assert!(publishes.len() <= PUBLISH_BATCH_MAX, "caller bounds bursts");
        let now = now_ms();
        let epoch = self.broker.epoch();
        let mut results: Vec<Result<PublishOutcome>> = Vec::with_capacity(publishes.len());
        let mut prepared: Vec<Option<Prepared>> = Vec::with_capacity(publishes.len());
        let mut destinations = Destinations::default();
        let mut delayed = Vec::new();
        // 1. Route (a delayed-message exchange's delayed messages go to the timer store).
        for (i, publish) in publishes.into_iter().enumerate() {
            if honour_delay {
                match self.delay_of(&publish.exchange, &publish.message) {
                    Ok(Some(delay)) => {
                        prepared.push(None);
                        results.push(Ok(PublishOutcome {
                            routed: true,
                            rejected: false,
                            durable: DurableWait::default(),
                        }));
                        delayed.push((i, now.saturating_add(delay as i64), publish));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        prepared.push(None);
                        results.push(Err(e));
                        continue;
                    }
                }
            }
            let routed = publish
                .message
                .properties
                .validate()
                .map_err(CoreError::Precondition)
                .and_then(|()| self.route(&publish.exchange, &publish.message));
            match routed {
                Ok(queues) => {
                    let any = !queues.is_empty();
                    for queue in queues {
                        destinations.add(queue, i);
                    }
                    prepared
                        .push(any.then(|| Prepared::new(Arc::new(publish.message), now, epoch)));
                    results.push(Ok(PublishOutcome {
                        routed: any,
                        rejected: false,
                        durable: DurableWait::default(),
                    }));
                }
                Err(e) => {
                    prepared.push(None);
                    results.push(Err(e));
                }
            }
        }
        // 2. Append: one write per destination queue (and lane), all queued on the writer
        //    threads before any is awaited.
        let mut pending = Vec::with_capacity(destinations.queues.len());
        for (queue, indexes) in destinations.queues {
            let entries: Vec<&Prepared> = indexes
                .iter()
                .map(|&i| prepared[i].as_ref().expect("routed messages are prepared"))
                .collect();
            let started = queue.start_append(&entries).await?;
            pending.push((queue, indexes, started));
        }
        for (queue, indexes, started) in pending {
            let appended = started.finish().await?;
            let durable_queue = queue.definition().durable;
            for (&i, outcome) in indexes.iter().zip(appended) {
                let Ok(result) = &mut results[i] else {
                    continue;
                };
                match outcome {
                    AppendOutcome::Appended { lane, end } => {
                        let persistent = !entries_transient(&prepared[i]);
                        if persistent && durable_queue {
                            result.durable.waits.push((queue.clone(), lane, end));
                        }
                    }
                    AppendOutcome::Rejected => result.rejected = true,
                    AppendOutcome::Gone => {}
                }
            }
        }
        // Delayed messages are acknowledged once their timers are durable; scheduled together
        // so they share the timer store's fsync.
        let delays = self.broker.delayed();
        let scheduled = futures::future::join_all(delayed.iter().map(|(_, due, publish)| {
            delays.schedule_exchange(*due, &self.name, &publish.exchange, &publish.message)
        }))
        .await;
        for ((i, _, _), outcome) in delayed.iter().zip(scheduled) {
            if let Err(e) = outcome {
                results[*i] = Err(e);
            }
        }
        // 3. and 4. are the caller's: `durable.wait()`, then its protocol's acknowledgement.
        Ok(results)
    }

    /// A dead letter: routed like a publish, minus the queues it already expired out of in a
    /// cycle with no rejection (RabbitMQ drops those to stop endless loops). No confirms, no
    /// mandatory: a dead letter nobody routes is dropped.
    pub(crate) async fn publish_dead_letter(&self, exchange: &str, message: Message) -> Result<()> {
        let queues: Vec<Arc<Queue>> = self
            .route(exchange, &message)?
            .into_iter()
            .filter(|queue| {
                let cycle = is_automatic_cycle(&message, queue.name());
                if cycle {
                    tracing::debug!(queue = %queue.name(), "dead letter cycle: dropped");
                }
                !cycle
            })
            .collect();
        if queues.is_empty() {
            return Ok(());
        }
        let prepared = Prepared::new(Arc::new(message), now_ms(), self.broker.epoch());
        for queue in queues {
            queue.append_prepared(&[&prepared]).await?;
        }
        Ok(())
    }

    fn route(&self, exchange: &str, message: &Message) -> Result<Vec<Arc<Queue>>> {
        let routes = self.broker.routes(&self.name)?;
        let empty = crate::routing::Headers::new();
        let headers = message.properties.headers.as_ref().unwrap_or(&empty);
        let result = routes.route(exchange, &message.routing_key, headers)?;
        if result.depth_limit_reached {
            tracing::warn!(vhost = %self.name, exchange, "exchange-to-exchange bindings deeper than the limit were not followed");
        }
        Ok(result
            .queues
            .iter()
            .filter_map(|name| self.broker.find_queue(&self.name, name))
            .collect())
    }
}

/// An `x-delay` value as RabbitMQ's plugin reads it: an integer (or a numeric string).
fn header_integer(value: &HeaderValue) -> Option<i64> {
    match value {
        HeaderValue::I8(v) => Some((*v).into()),
        HeaderValue::U8(v) => Some((*v).into()),
        HeaderValue::I16(v) => Some((*v).into()),
        HeaderValue::U16(v) => Some((*v).into()),
        HeaderValue::I32(v) => Some((*v).into()),
        HeaderValue::U32(v) => Some((*v).into()),
        HeaderValue::I64(v) => Some(*v),
        HeaderValue::U64(v) => i64::try_from(*v).ok(),
        HeaderValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn entries_transient(prepared: &Option<Prepared>) -> bool {
    prepared.as_ref().is_some_and(Prepared::is_transient)
}

/// Gateways run publishes on spawned tasks: the pipeline's futures must stay `Send`.
#[allow(dead_code)]
fn publish_futures_are_send(vhost: &VirtualHost) {
    fn send<T: Send>(_: T) {}
    send(vhost.publish_batch(Vec::new()));
    send(vhost.publish("", Message::default()));
}
