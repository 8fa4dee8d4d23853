//! An MQTT session as RabbitMQ's MQTT plugin models it: one queue per client id,
//! `mqtt-session-<client id>`, bound to `amq.topic` once per subscription. The queue holds what
//! the client has not acknowledged, on the log engine (not in the heap), and survives
//! disconnects, restarts and kill -9 when the session does:
//!
//! - a session with an expiry (`clean session = 0` in 3.1.1, Session Expiry Interval > 0 in 5.0)
//!   gets a durable queue, and the subscriptions are its bindings (their arguments keep the
//!   options: QoS, No Local, Retain As Published, Subscription Identifier); its expiry and its
//!   released QoS 2 messages are a record in the session store ([`crate::store`]), and the
//!   gateway deletes the queue when the expiry has passed with no connection;
//! - a clean session's queue is exclusive to its connection and goes with it.
//!
//! Shared subscriptions (`$share/<group>/<filter>`) are one durable queue per group and filter,
//! `mqtt-shared-<group>-<filter>`, consumed by every member: the queue's fair dispatch
//! balances them.
//!
//! This file opens and closes a session; `subscribe.rs`, `deliver.rs` and `publish.rs` hold
//! what a session does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use porter_core::queue::api::{ConsumeRequest, ConsumerEvent, OwnerId, QueueDelivery};
use porter_core::queue::{Queue, QueueDefinition};
use porter_core::routing::{FieldTable, HeaderValue};
use porter_core::users::access::Access;
use porter_core::vhost::next_owner_id;
use porter_core::CoreError;
use tokio::sync::mpsc;

use crate::codec::Version;
use crate::context::Context;
use crate::error::Refusal;
use crate::reauth::Reauthentication;
use crate::store::{Released, SessionRecord, SharedSubscription, StoredWill};
use crate::subscribe::Subscription;
use crate::topic::to_routing_key;

/// Prefix of a session's queue name.
pub const SESSION_QUEUE_PREFIX: &str = "mqtt-session-";
/// Prefix of a shared subscription's queue name.
pub const SHARED_QUEUE_PREFIX: &str = "mqtt-shared-";

/// The name of `client_id`'s session queue.
pub fn session_queue(client_id: &str) -> String {
    format!("{SESSION_QUEUE_PREFIX}{client_id}")
}

/// A message sent to the client with QoS 1 or 2, not yet acknowledged.
pub(crate) struct Inflight {
    /// The queue it came from, its tag and its offset there; `None` for a retained message
    /// sent on subscribe and for a QoS 2 message already released (nothing to acknowledge).
    pub from: Option<(Arc<Queue>, u64, i64)>,
    /// PUBREC received, PUBREL sent: waiting for PUBCOMP.
    pub released: bool,
}

/// What the client asked for in CONNECT that shapes what is sent to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientLimits {
    /// Unacknowledged QoS 1/2 messages it accepts (its Receive Maximum, within ours).
    pub receive_max: u16,
    /// The largest packet it accepts.
    pub packet_max: Option<u32>,
    /// Topic aliases it accepts from the server.
    pub topic_alias_max: u16,
}

/// One connection's session.
pub(crate) struct Session {
    pub ctx: Arc<Context>,
    pub version: Version,
    pub client_id: String,
    /// The user the client logged in as, and whether its permissions are checked (a broker
    /// user: not `anonymous`, not a test harness's).
    pub user: String,
    pub permissions_checked: bool,
    pub owner: OwnerId,
    /// The session's queue, made at the first subscription (a client that only publishes, or
    /// sits idle, costs no queue), or found when a persistent session resumes.
    pub queue: Option<Arc<Queue>>,
    /// Seconds the session outlives its connection; 0 ends it with the connection.
    pub expiry_secs: u32,
    pub client: ClientLimits,
    /// By the filter as the client sent it (`$share/...` included).
    pub subscriptions: HashMap<String, Subscription>,
    /// Queues consumed (the session's and shared ones), by name.
    pub consuming: HashMap<Arc<str>, Arc<Queue>>,
    /// Where the session's queues deliver; made with the first consumer (an idle connection
    /// holds no channel). The receiving end goes to the event loop ([`Session::take_deliveries`]).
    pub sink: Option<mpsc::Sender<ConsumerEvent>>,
    deliveries: Option<mpsc::Receiver<ConsumerEvent>>,
    /// Sent, not yet acknowledged, by packet id.
    pub inflight: HashMap<u16, Inflight>,
    /// Deliveries waiting for a packet id or for the client's receive maximum, in order.
    pub waiting: VecDeque<QueueDelivery>,
    /// The next packet id to try when a message's own is taken.
    pub next_packet_id: u16,
    /// QoS 2 publishes received, waiting for the client's PUBREL (their PUBREC sent or
    /// waiting for the publish to commit).
    pub incoming_qos2: HashSet<u16>,
    /// Of `incoming_qos2`, those whose message was routed and whose PUBREC went out: kept in
    /// the session's record, so the client's PUBLISH sent again on its next connection (it
    /// may not have seen the PUBREC) is acknowledged, not routed twice (MQTT §4.1: the
    /// session's state includes QoS 2 messages received and not completely acknowledged).
    pub received_qos2: HashSet<u16>,
    /// Of `incoming_qos2`, those whose PUBREC still waits for the commit (counted once towards
    /// the receive maximum, not twice).
    pub qos2_committing: usize,
    /// Topic aliases the client set (alias → topic).
    pub aliases_in: HashMap<u16, String>,
    /// Topic aliases the server set (topic → alias).
    pub aliases_out: HashMap<String, u16>,
    /// QoS 2 messages released (PUBREC received) and not yet completed, as recorded.
    pub released: Vec<Released>,
    /// Deliveries settled this turn, acknowledged in their queues together at its end.
    pub to_settle: Vec<(Arc<Queue>, u64)>,
    /// The delayed will to record with the session's end (set just before `close`).
    pub pending_will: Option<StoredWill>,
    /// MQTT 5 re-authentication (AUTH after CONNACK), for a client that logged in with SCRAM.
    pub reauth: Reauthentication,
}

/// Consumer tag of a session's consumer on `queue` (unique per connection: members of a
/// shared subscription consume one queue).
fn consumer_tag(owner: OwnerId, queue: &str) -> String {
    format!("mqtt:{owner}:{queue}")
}

/// The queue a consumer tag of [`consumer_tag`] names.
pub(crate) fn queue_of_tag(tag: &str) -> &str {
    tag.splitn(3, ':').nth(2).unwrap_or(tag)
}

/// What opening a session found.
pub(crate) struct Opened {
    pub session: Session,
    pub present: bool,
}

/// Whether a session's queue is to be dropped at open: a clean start, or an expiry that passed.
fn discard(clean: bool, record: Option<&SessionRecord>) -> bool {
    clean || record.is_some_and(|r| r.expired(porter_core::partition::now_ms()))
}

impl Session {
    /// The broker's permission check for this session's user on the MQTT exchange (see
    /// [`porter_core::users::access`]): publishing to `topic` writes to it, subscribing to a
    /// `topic` filter reads from it; then the topic, as a routing key, against the user's topic
    /// permission on the exchange ([`porter_core::users::topic_access`]).
    pub fn authorize_exchange(
        &self,
        access: Access,
        topic: &str,
    ) -> Result<(), porter_core::CoreError> {
        if !self.permissions_checked {
            return Ok(());
        }
        let (exchange, key) = (&self.ctx.config.exchange, to_routing_key(topic));
        self.ctx
            .vhost
            .authorize_routing(&self.user, Some(&self.client_id), access, exchange, &key)
    }

    /// Opens (or resumes) `client_id`'s session. `clean` discards an existing one.
    pub async fn open(
        ctx: Arc<Context>,
        version: Version,
        client_id: String,
        clean: bool,
        expiry_secs: u32,
        client: ClientLimits,
    ) -> Result<Opened, Refusal> {
        ctx.pending.arrived();
        let owner = next_owner_id();
        let name = session_queue(&client_id);
        let vhost = &ctx.vhost;
        let existing = vhost.find_queue(&name, owner).map_err(Refusal::core)?;
        let record = ctx.sessions.get(&client_id);
        let discarded = discard(clean, record.as_ref());
        if discarded {
            if existing.is_some() {
                vhost
                    .delete_queue(&name, false, false, owner)
                    .await
                    .map_err(Refusal::core)?;
            }
            if record.is_some() {
                ctx.sessions
                    .remove(&client_id)
                    .await
                    .map_err(Refusal::core)?;
            }
        }
        let present = !discarded && (existing.is_some() || record.is_some());
        let (released, shared, received_qos2) = match (record, present) {
            (Some(record), true) => (record.released, record.shared, record.received_qos2),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        let received_qos2: HashSet<u16> = received_qos2.into_iter().collect();
        if expiry_secs > 0 {
            let record = SessionRecord {
                expiry_secs,
                ended_ms: None,
                released: released.clone(),
                shared: shared.clone(),
                will: None,
                received_qos2: sorted(&received_qos2),
            };
            ctx.sessions
                .put(&client_id, &record)
                .await
                .map_err(Refusal::core)?;
        }
        let queue = existing.filter(|_| present);
        let mut session = Session {
            ctx: ctx.clone(),
            version,
            client_id,
            user: String::new(),
            permissions_checked: false,
            owner,
            queue: queue.clone(),
            expiry_secs,
            client,
            subscriptions: HashMap::new(),
            consuming: HashMap::new(),
            sink: None,
            deliveries: None,
            inflight: HashMap::new(),
            waiting: VecDeque::new(),
            next_packet_id: 1,
            incoming_qos2: received_qos2.clone(),
            received_qos2,
            qos2_committing: 0,
            aliases_in: HashMap::new(),
            aliases_out: HashMap::new(),
            released,
            to_settle: Vec::new(),
            pending_will: None,
            reauth: Reauthentication::default(),
        };
        if let Some(queue) = queue {
            session
                .restore_subscriptions(&queue)
                .map_err(Refusal::core)?;
            session.consume(queue).map_err(Refusal::core)?;
        }
        session.restore_shared(&shared).await;
        Ok(Opened { session, present })
    }

    /// The session's queue, declared (and consumed) on first use.
    pub async fn session_queue(&mut self) -> Result<Arc<Queue>, CoreError> {
        if let Some(queue) = &self.queue {
            return Ok(queue.clone());
        }
        let name = session_queue(&self.client_id);
        let definition = session_definition(&self.ctx, &name, self.expiry_secs, self.owner);
        self.ctx
            .vhost
            .declare_queue(definition, false, self.owner)
            .await?;
        let queue = self.ctx.vhost.queue(&name, self.owner)?;
        self.consume(queue.clone())?;
        self.queue = Some(queue.clone());
        Ok(queue)
    }

    /// The sending end of the delivery channel, made on first use.
    fn sink(&mut self) -> &mpsc::Sender<ConsumerEvent> {
        if self.sink.is_none() {
            let (sink, deliveries) = mpsc::channel(porter_core::queue::api::CONSUMER_BUFFER_MAX);
            self.sink = Some(sink);
            self.deliveries = Some(deliveries);
        }
        self.sink.as_ref().expect("made above")
    }

    /// The receiving end of the delivery channel, once it exists (taken once).
    pub fn take_deliveries(&mut self) -> Option<mpsc::Receiver<ConsumerEvent>> {
        self.deliveries.take()
    }

    /// Consumes `queue` into the session's sink (once per queue).
    pub fn consume(&mut self, queue: Arc<Queue>) -> Result<(), CoreError> {
        let name: Arc<str> = Arc::from(queue.name());
        if self.consuming.contains_key(&name) {
            return Ok(());
        }
        let prefetch = self.client.receive_max.min(self.ctx.config.inflight_max);
        queue.consume(ConsumeRequest {
            consumer_tag: consumer_tag(self.owner, &name),
            prefetch,
            no_ack: false,
            exclusive: false,
            owner: self.owner,
            sink: self.sink().clone(),
        })?;
        self.consuming.insert(name, queue);
        Ok(())
    }

    /// Stops consuming `queue`; its unacknowledged messages go back to it.
    pub fn stop_consuming(&mut self, name: &str) {
        self.settle_pending();
        if let Some(queue) = self.consuming.remove(name) {
            queue.cancel(&consumer_tag(self.owner, name), true);
            self.inflight.retain(|_, i| {
                i.from
                    .as_ref()
                    .is_none_or(|(q, _, _)| !Arc::ptr_eq(q, &queue))
            });
            self.waiting.retain(|d| &*d.queue != name);
        }
    }

    /// Ends the connection's hold on the session: consumers cancelled (unacknowledged messages
    /// back in their queues, sent again with DUP on the next connection), and a session
    /// without expiry deleted with its subscriptions.
    pub async fn close(mut self) {
        self.settle_pending();
        let names: Vec<Arc<str>> = self.consuming.keys().cloned().collect();
        for name in names {
            self.stop_consuming(&name);
        }
        if self.expiry_secs == 0 {
            let name = session_queue(&self.client_id);
            if let Err(e) = self
                .ctx
                .vhost
                .delete_queue(&name, false, false, self.owner)
                .await
            {
                tracing::warn!(client_id = %self.client_id, error = %e, "deleting an ended MQTT session failed");
            }
            if let Err(e) = self.ctx.sessions.remove(&self.client_id).await {
                tracing::warn!(client_id = %self.client_id, error = %e, "removing an ended MQTT session's record failed");
            }
        } else {
            let record = self.record(Some(porter_core::partition::now_ms()));
            if let Err(e) = self.ctx.sessions.put(&self.client_id, &record).await {
                tracing::warn!(client_id = %self.client_id, error = %e, "recording an MQTT session's end failed");
            }
        }
        self.ctx.vhost.release_owner(self.owner).await;
    }
}

impl Session {
    /// The session's record as it stands (for a session with an expiry): its released QoS 2
    /// messages and shared subscriptions, and when its connection ended, if it did.
    pub(crate) fn record(&self, ended_ms: Option<i64>) -> SessionRecord {
        let mut shared: Vec<SharedSubscription> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.shared)
            .map(|(path, s)| SharedSubscription {
                path: path.clone(),
                qos: s.qos,
                retain_as_published: s.retain_as_published,
                id: s.id,
            })
            .collect();
        shared.sort_by(|a, b| a.path.cmp(&b.path));
        SessionRecord {
            expiry_secs: self.expiry_secs,
            ended_ms,
            released: self.released.clone(),
            shared,
            will: self.pending_will.clone(),
            received_qos2: sorted(&self.received_qos2),
        }
    }
}

fn sorted(ids: &HashSet<u16>) -> Vec<u16> {
    let mut ids: Vec<u16> = ids.iter().copied().collect();
    ids.sort_unstable();
    ids
}

/// The queue of a session: durable when it outlives its connection (the gateway expires it),
/// exclusive otherwise; bounded by `session_queue_max`, refusing publishes beyond.
fn session_definition(
    ctx: &Context,
    name: &str,
    expiry_secs: u32,
    owner: OwnerId,
) -> QueueDefinition {
    let arguments = bounded_queue_arguments(ctx);
    QueueDefinition {
        name: name.to_string(),
        id: Default::default(),
        durable: expiry_secs > 0,
        exclusive_owner: (expiry_secs == 0).then_some(owner),
        auto_delete: false,
        arguments,
    }
}

/// `x-max-length` with `reject-publish`: what a session or shared queue holds at most.
pub(crate) fn bounded_queue_arguments(ctx: &Context) -> FieldTable {
    let mut arguments = FieldTable::new();
    arguments.insert(
        "x-max-length".into(),
        HeaderValue::I64(i64::from(ctx.config.session_queue_max)),
    );
    arguments.insert("x-overflow".into(), HeaderValue::from("reject-publish"));
    arguments
}
