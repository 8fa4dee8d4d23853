//! SUBSCRIBE and UNSUBSCRIBE: a subscription is a binding of the session's queue (or of a
//! shared subscription's queue) to `amq.topic`, its options kept in the binding's arguments so
//! a resumed session finds them again.

use std::sync::Arc;

use porter_core::queue::QueueDefinition;
use porter_core::routing::{Binding, Destination, FieldTable, HeaderValue};
use porter_core::CoreError;
use rumqttc::v5::mqttbytes::v5::{
    Filter, Packet, RetainForwardRule, SubAck, SubAckProperties, Subscribe, SubscribeReasonCode,
    UnsubAck, UnsubAckReason, Unsubscribe,
};

use porter_core::users::access::Access;

use crate::codec::qos_from;
use crate::error::Disconnect;
use crate::session::{bounded_queue_arguments, Session, SHARED_QUEUE_PREFIX};
use crate::store::SharedSubscription;
use crate::topic::{self, check_filter, parse_filter, to_routing_key};

const FILTER_ARG: &str = "x-mqtt-filter";
const QOS_ARG: &str = "x-mqtt-qos";
const NO_LOCAL_ARG: &str = "x-mqtt-no-local";
const RAP_ARG: &str = "x-mqtt-retain-as-published";
const ID_ARG: &str = "x-mqtt-subscription-id";
const SHARE_ARG: &str = "x-mqtt-share";

/// One subscription of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// The filter without its `$share/<group>/` prefix.
    pub filter: String,
    /// The queue it delivers into (the session's, or the shared subscription's).
    pub queue: Arc<str>,
    pub shared: bool,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub id: Option<usize>,
    /// The binding that routes its messages.
    pub binding: Binding,
}

/// Why one filter of a SUBSCRIBE is refused (its SUBACK code).
struct Refused(SubscribeReasonCode, String);

impl Session {
    /// Rebuilds the subscriptions of a resumed session from its queue's bindings.
    pub fn restore_subscriptions(
        &mut self,
        queue: &porter_core::queue::Queue,
    ) -> Result<(), CoreError> {
        let queue: Arc<str> = Arc::from(queue.name());
        for binding in self.ctx.vhost.bindings_to_queue(&queue)? {
            let args = &binding.arguments;
            let Some(filter) = args.get(FILTER_ARG).and_then(|v| v.as_str()) else {
                continue;
            };
            let flag = |key| matches!(args.get(key), Some(HeaderValue::Bool(true)));
            let subscription = Subscription {
                filter: filter.to_string(),
                queue: queue.clone(),
                shared: false,
                qos: args
                    .get(QOS_ARG)
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0)
                    .clamp(0, 2) as u8,
                no_local: flag(NO_LOCAL_ARG),
                retain_as_published: flag(RAP_ARG),
                id: args
                    .get(ID_ARG)
                    .and_then(|v| v.as_i64())
                    .map(|id| id as usize),
                binding: binding.clone(),
            };
            self.subscriptions
                .insert(subscription.filter.clone(), subscription);
        }
        Ok(())
    }

    /// Subscribes a resumed session to its recorded shared subscriptions again (their queues
    /// are the groups', so the session's own queue does not hold them). One that fails is
    /// logged and dropped; the client can subscribe again.
    pub async fn restore_shared(&mut self, shared: &[SharedSubscription]) {
        for recorded in shared {
            let filter = Filter {
                path: recorded.path.clone(),
                qos: qos_from(recorded.qos.min(2)),
                nolocal: false,
                preserve_retain: recorded.retain_as_published,
                retain_forward_rule: RetainForwardRule::Never,
            };
            let restored = match self.subscribe_one(&filter, recorded.id).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(Refused(_, reason))) => Err(reason),
                Err(disconnect) => Err(disconnect.reason),
            };
            if let Err(reason) = restored {
                tracing::warn!(client_id = %self.client_id, filter = %recorded.path, %reason, "a shared subscription of a resumed session could not be restored");
            }
        }
    }

    /// Records the session's shared subscriptions after they changed (a session with an
    /// expiry only: a clean session's end takes them with it).
    async fn record_shared(&self) -> Result<(), Disconnect> {
        if self.expiry_secs == 0 {
            return Ok(());
        }
        self.ctx
            .sessions
            .put(&self.client_id, &self.record(None))
            .await
            .map_err(Disconnect::core)
    }

    /// Handles a SUBSCRIBE: SUBACK first, then the retained messages of each new filter.
    pub async fn subscribe(
        &mut self,
        subscribe: Subscribe,
        out: &mut Vec<Packet>,
    ) -> Result<(), Disconnect> {
        let id = subscribe.properties.as_ref().and_then(|p| p.id);
        if id == Some(0) {
            return Err(Disconnect::protocol("subscription identifier 0"));
        }
        // Publishes matching these filters wait until they are bound (see `pending`).
        let ctx = self.ctx.clone();
        let _binding = ctx
            .pending
            .start(subscribe.filters.iter().map(|f| f.path.as_str()));
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut reasons = Vec::new();
        let mut retained_for = Vec::new();
        for filter in &subscribe.filters {
            match self.subscribe_one(filter, id).await? {
                Ok((granted, existed)) => {
                    codes.push(SubscribeReasonCode::Success(qos_from(granted)));
                    let send_retained = match filter.retain_forward_rule {
                        RetainForwardRule::OnEverySubscribe => true,
                        RetainForwardRule::OnNewSubscribe => !existed,
                        RetainForwardRule::Never => false,
                    };
                    if send_retained {
                        retained_for.push(filter.path.clone());
                    }
                }
                Err(Refused(code, reason)) => {
                    tracing::debug!(client_id = %self.client_id, filter = %filter.path, %reason, "subscription refused");
                    reasons.push(format!("{}: {reason}", filter.path));
                    codes.push(code);
                }
            }
        }
        if subscribe
            .filters
            .iter()
            .any(|f| f.path.starts_with("$share/"))
        {
            self.record_shared().await?;
        }
        let properties = (!reasons.is_empty()).then(|| SubAckProperties {
            reason_string: Some(reasons.join("; ")),
            user_properties: Vec::new(),
        });
        out.push(Packet::SubAck(SubAck {
            pkid: subscribe.pkid,
            return_codes: codes,
            properties,
        }));
        for path in retained_for {
            self.send_retained(&path, out);
        }
        Ok(())
    }

    /// One filter: `Ok(Ok((granted QoS, already subscribed)))`, `Ok(Err(refusal))` for a
    /// refused filter, `Err` for a protocol error that ends the connection.
    async fn subscribe_one(
        &mut self,
        filter: &Filter,
        id: Option<usize>,
    ) -> Result<Result<(u8, bool), Refused>, Disconnect> {
        let invalid =
            |e: topic::TopicError| Refused(SubscribeReasonCode::TopicFilterInvalid, e.to_string());
        let parsed = match parse_filter(&filter.path) {
            Ok(parsed) => parsed,
            Err(e) => return Ok(Err(invalid(e))),
        };
        if let Err(e) = check_filter(parsed.filter, self.ctx.config.topic_levels_max) {
            return Ok(Err(invalid(e)));
        }
        if parsed.group.is_some() && filter.nolocal {
            return Err(Disconnect::protocol(
                "No Local on a shared subscription (MQTT 5 §3.8.3.1)",
            ));
        }
        let existing = self.subscriptions.get(&filter.path).cloned();
        if existing.is_none() && self.subscriptions.len() >= self.ctx.config.subscriptions_max {
            return Ok(Err(Refused(
                SubscribeReasonCode::QuotaExceeded,
                format!(
                    "{} subscriptions is this session's limit",
                    self.ctx.config.subscriptions_max
                ),
            )));
        }
        if let Err(e) = self.authorize_exchange(Access::Read, parsed.filter) {
            return Ok(Err(Refused(
                SubscribeReasonCode::NotAuthorized,
                e.to_string(),
            )));
        }
        let qos = (filter.qos as u8).min(2);
        let routing_key = to_routing_key(parsed.filter);
        let queue = match parsed.group {
            None => match self.session_queue().await {
                Ok(queue) => queue,
                Err(e) => {
                    return Ok(Err(Refused(
                        SubscribeReasonCode::Unspecified,
                        e.to_string(),
                    )))
                }
            },
            Some(group) => match self.shared_queue(group, &routing_key).await {
                Ok(queue) => queue,
                Err(refused) => return Ok(Err(refused)),
            },
        };
        let mut arguments = FieldTable::new();
        if let Some(group) = parsed.group {
            arguments.insert(SHARE_ARG.into(), HeaderValue::from(group));
        } else {
            arguments.insert(FILTER_ARG.into(), HeaderValue::from(parsed.filter));
            arguments.insert(QOS_ARG.into(), HeaderValue::U8(qos));
            arguments.insert(NO_LOCAL_ARG.into(), HeaderValue::Bool(filter.nolocal));
            arguments.insert(RAP_ARG.into(), HeaderValue::Bool(filter.preserve_retain));
            if let Some(id) = id {
                arguments.insert(ID_ARG.into(), HeaderValue::I64(id as i64));
            }
        }
        let binding = Binding::new(
            self.ctx.config.exchange.clone(),
            Destination::Queue(queue.name().to_string()),
            routing_key,
        )
        .with_arguments(arguments);
        let vhost = &self.ctx.vhost;
        if let Some(old) = &existing {
            if old.binding != binding && !old.shared {
                vhost
                    .unbind(old.binding.clone(), self.owner)
                    .await
                    .map_err(Disconnect::core)?;
            }
        }
        vhost
            .bind(binding.clone(), self.owner)
            .await
            .map_err(Disconnect::core)?;
        if parsed.group.is_some() {
            self.consume(queue.clone()).map_err(Disconnect::core)?;
        }
        self.subscriptions.insert(
            filter.path.clone(),
            Subscription {
                filter: parsed.filter.to_string(),
                queue: Arc::from(queue.name()),
                shared: parsed.group.is_some(),
                qos,
                no_local: filter.nolocal,
                retain_as_published: filter.preserve_retain,
                id,
                binding,
            },
        );
        Ok(Ok((qos, existing.is_some())))
    }

    /// The queue of shared subscription `group` on `routing_key`, declared on first use.
    async fn shared_queue(
        &self,
        group: &str,
        routing_key: &str,
    ) -> Result<Arc<porter_core::queue::Queue>, Refused> {
        let name = format!("{SHARED_QUEUE_PREFIX}{group}-{routing_key}");
        if name.len() > 255 {
            return Err(Refused(
                SubscribeReasonCode::ImplementationSpecific,
                "group and filter too long for a shared queue name".into(),
            ));
        }
        let mut arguments = bounded_queue_arguments(&self.ctx);
        arguments.insert(
            "x-expires".into(),
            HeaderValue::I64(i64::from(self.ctx.config.session_expiry_max_secs) * 1000),
        );
        let definition = QueueDefinition {
            name: name.clone(),
            id: Default::default(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments,
        };
        let unspecified = |e: CoreError| Refused(SubscribeReasonCode::Unspecified, e.to_string());
        self.ctx
            .vhost
            .declare_queue(definition, false, self.owner)
            .await
            .map_err(unspecified)?;
        self.ctx.vhost.queue(&name, self.owner).map_err(unspecified)
    }

    /// Handles an UNSUBSCRIBE.
    pub async fn unsubscribe(
        &mut self,
        unsubscribe: Unsubscribe,
        out: &mut Vec<Packet>,
    ) -> Result<(), Disconnect> {
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        let mut shared_changed = false;
        for path in &unsubscribe.filters {
            let Some(subscription) = self.subscriptions.remove(path) else {
                reasons.push(UnsubAckReason::NoSubscriptionExisted);
                continue;
            };
            if subscription.shared {
                shared_changed = true;
                let still_used = self
                    .subscriptions
                    .values()
                    .any(|s| s.queue == subscription.queue);
                if !still_used {
                    self.stop_consuming(&subscription.queue);
                }
            } else {
                self.ctx
                    .vhost
                    .unbind(subscription.binding, self.owner)
                    .await
                    .map_err(Disconnect::core)?;
            }
            reasons.push(UnsubAckReason::Success);
        }
        if shared_changed {
            self.record_shared().await?;
        }
        out.push(Packet::UnsubAck(UnsubAck {
            pkid: unsubscribe.pkid,
            reasons,
            properties: None,
        }));
        Ok(())
    }

    /// The subscriptions of `queue` matching topic `name`.
    pub fn matching<'a>(
        &'a self,
        queue: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Subscription> + 'a {
        self.subscriptions
            .values()
            .filter(move |s| &*s.queue == queue && topic::matches(&s.filter, name))
    }
}
