//! Messages from the client: a PUBLISH goes through the core's publish pipeline (route through
//! `amq.topic` → append → commit-wait) and is acknowledged after its commit: PUBACK for QoS 1,
//! PUBREC for QoS 2 (then PUBREL → PUBCOMP). Acknowledgements wait in [`PendingAcks`], in the
//! order the publishes came, so a connection keeps reading while earlier publishes commit and
//! its PUBACKs leave in order (MQTT 5 §4.6). A QoS 2 packet id is remembered from PUBREC to
//! PUBREL, so a re-sent PUBLISH (DUP) is not routed twice.

use std::future::Future;
use std::pin::Pin;

use futures::stream::FuturesOrdered;
use porter_core::message::Message;
use porter_core::publish::PUBLISH_BATCH_MAX;
use porter_core::vhost::{Publish as CorePublish, PublishOutcome};
use porter_core::CoreError;
use rumqttc::v5::mqttbytes::v5::{
    DisconnectReasonCode, Packet, PubAck, PubAckProperties, PubAckReason, PubComp, PubCompReason,
    PubRec, PubRecReason, Publish,
};

use porter_core::users::access::Access;

use crate::convert::to_message;
use crate::error::{publish_reason, Disconnect};
use crate::session::Session;
use crate::topic::{check_name, from_routing_key};

/// Acknowledgements waiting for their publish's commit, in arrival order.
pub(crate) type PendingAcks = FuturesOrdered<Pin<Box<dyn Future<Output = Packet> + Send>>>;

/// A PUBLISH checked and made a message, waiting for its batch to be published.
struct Checked {
    qos: u8,
    packet_id: u16,
    message: Message,
}

impl Session {
    /// Handles the PUBLISH packets read together (at most [`PUBLISH_BATCH_MAX`]): each is
    /// checked on its own, then they go to the core as one burst (one route and one append per
    /// destination queue for all of them), and each gets its acknowledgement in arrival order
    /// once committed.
    pub async fn publish_batch(
        &mut self,
        publishes: Vec<Publish>,
        acks: &mut PendingAcks,
    ) -> Result<(), Disconnect> {
        debug_assert!(publishes.len() <= PUBLISH_BATCH_MAX);
        let mut checked = Vec::with_capacity(publishes.len());
        let mut qos1_checked = 0;
        for publish in publishes {
            if let Some(c) = self.check(publish, acks, qos1_checked).await? {
                qos1_checked += usize::from(c.qos == 1);
                checked.push(c);
            }
        }
        if checked.is_empty() {
            return Ok(());
        }
        let exchange = self.ctx.config.exchange.clone();
        let mut burst = Vec::with_capacity(checked.len());
        let mut sent = Vec::with_capacity(checked.len());
        for c in checked {
            burst.push(CorePublish {
                exchange: exchange.clone(),
                message: c.message,
            });
            sent.push((c.qos, c.packet_id));
        }
        // Connections whose packets arrived before these publishes run first: tokio runs the
        // task woken last before those woken earlier (its LIFO slot), so without this a
        // SUBSCRIBE read just before them would not yet be in `pending` (see `pending`).
        if self.ctx.pending.settling() {
            tokio::task::yield_now().await;
        }
        if self.ctx.pending.any() {
            for publish in &burst {
                let name = from_routing_key(&publish.message.routing_key);
                self.ctx.pending.wait_for(&name).await;
            }
        }
        let results = match self.ctx.vhost.publish_batch(burst).await {
            Ok(results) => results,
            Err(e) => {
                // The append failed: the messages' fate is unknown, none is acknowledged.
                tracing::warn!(client_id = %self.client_id, error = %e, "MQTT publish failed");
                return Err(Disconnect::core(e));
            }
        };
        for ((qos, packet_id), result) in sent.into_iter().zip(results) {
            match result {
                Ok(outcome) => self.acknowledge(qos, packet_id, outcome, acks),
                Err(e) => {
                    tracing::warn!(client_id = %self.client_id, error = %e, "MQTT publish refused");
                    self.refuse(qos, packet_id, publish_reason(&e), &e.to_string(), acks)?;
                }
            }
        }
        Ok(())
    }

    /// Checks one PUBLISH (`batched` QoS 1 ones of its burst are before it, not yet counted in
    /// `acks`) and makes its message;
    /// `None` when it is answered already (a re-sent QoS 2, `$SYS`, a refused retain).
    async fn check(
        &mut self,
        mut publish: Publish,
        acks: &mut PendingAcks,
        batched: usize,
    ) -> Result<Option<Checked>, Disconnect> {
        let name = self.resolve_topic(&mut publish)?;
        let (qos, packet_id) = (publish.qos as u8, publish.pkid);
        if qos == 2 && self.incoming_qos2.contains(&packet_id) {
            // A re-sent PUBLISH whose first copy was routed: acknowledge again, route nothing.
            self.ack_now(acks, pubrec(packet_id, PubAckReason::Success));
            return Ok(None);
        }
        let unacknowledged =
            (acks.len() + batched + self.incoming_qos2.len()).saturating_sub(self.qos2_committing);
        if qos > 0 && unacknowledged >= usize::from(self.ctx.config.receive_max) {
            return Err(Disconnect::new(
                DisconnectReasonCode::ReceiveMaximumExceeded,
                format!(
                    "more than {} QoS 1/2 publishes unacknowledged",
                    self.ctx.config.receive_max
                ),
            ));
        }
        if let Err(e) = self.authorize_exchange(Access::Write, &name) {
            tracing::warn!(client_id = %self.client_id, user = %self.user, error = %e, "MQTT publish refused");
            self.refuse(
                qos,
                packet_id,
                PubAckReason::NotAuthorized,
                &e.to_string(),
                acks,
            )?;
            return Ok(None);
        }
        if name.starts_with("$SYS/") || name == "$SYS" {
            // `$SYS` belongs to the broker's statistics. MQTT 5 is told; 3.1.1 has no negative
            // acknowledgement, so its publish is acknowledged and dropped, as Mosquitto does.
            tracing::debug!(client_id = %self.client_id, topic = %name, "dropping a publish to $SYS");
            self.ctx.stats.count_dropped();
            match (qos, self.version) {
                (0, _) => {}
                (1, crate::codec::Version::V311) => {
                    self.ack_now(acks, puback(packet_id, PubAckReason::Success))
                }
                (_, crate::codec::Version::V311) => {
                    self.incoming_qos2.insert(packet_id);
                    self.ack_now(acks, pubrec(packet_id, PubAckReason::Success));
                }
                _ => self.refuse(
                    qos,
                    packet_id,
                    PubAckReason::NotAuthorized,
                    "$SYS topics are the broker's",
                    acks,
                )?,
            }
            return Ok(None);
        }
        let message = to_message(
            &self.ctx.config.exchange,
            &name,
            &publish,
            &self.client_id,
            publish.retain,
        );
        if publish.retain {
            if let Err(e) = self.retain(&message).await {
                self.refuse(qos, packet_id, publish_reason(&e), &e.to_string(), acks)?;
                return Ok(None);
            }
        }
        self.ctx.stats.count_received();
        if qos == 2 {
            self.incoming_qos2.insert(packet_id);
        }
        Ok(Some(Checked {
            qos,
            packet_id,
            message,
        }))
    }

    /// Queues the acknowledgement of a published message, sent once it is committed.
    fn acknowledge(
        &mut self,
        qos: u8,
        packet_id: u16,
        outcome: PublishOutcome,
        acks: &mut PendingAcks,
    ) {
        let reason = if outcome.rejected {
            PubAckReason::QuotaExceeded
        } else if !outcome.routed {
            PubAckReason::NoMatchingSubscribers
        } else {
            PubAckReason::Success
        };
        if qos == 0 {
            if outcome.rejected {
                self.ctx.stats.count_dropped();
            }
            return;
        }
        if qos == 2 {
            self.qos2_committing += 1;
        }
        let durable = outcome.durable;
        acks.push_back(Box::pin(async move {
            let reason = match durable.wait().await {
                Ok(()) => reason,
                Err(e) => {
                    tracing::warn!(error = %e, "an MQTT publish did not commit");
                    publish_reason(&e)
                }
            };
            if qos == 1 {
                puback(packet_id, reason)
            } else {
                pubrec(packet_id, reason)
            }
        }));
    }

    /// Queues an acknowledgement that needs no commit, behind those that do (MQTT 5 §4.6:
    /// acknowledgements leave in the order the publishes came).
    fn ack_now(&mut self, acks: &mut PendingAcks, packet: Packet) {
        if matches!(packet, Packet::PubRec(_)) {
            self.qos2_committing += 1;
        }
        acks.push_back(Box::pin(std::future::ready(packet)));
    }

    /// `packet` leaves for the client: a PUBREC saying the message was routed leaves its
    /// packet id waiting for PUBREL (in the session's record too); one refusing it (0x80 or
    /// more) ends that exchange (MQTT 5 §4.3.3), so the id is free for a new message.
    pub fn sending(&mut self, packet: &Packet) {
        let Packet::PubRec(rec) = packet else { return };
        self.qos2_committing = self.qos2_committing.saturating_sub(1);
        if matches!(
            rec.reason,
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers
        ) {
            self.received_qos2.insert(rec.pkid);
        } else {
            self.incoming_qos2.remove(&rec.pkid);
            self.received_qos2.remove(&rec.pkid);
        }
    }

    /// PUBREL: the QoS 2 exchange for `packet_id` is over.
    pub fn on_pubrel(&mut self, packet_id: u16, out: &mut Vec<Packet>) {
        // A PUBREL for an id not held (already completed before a reconnect) is still
        // completed: the client only needs to learn it is done.
        self.incoming_qos2.remove(&packet_id);
        self.received_qos2.remove(&packet_id);
        out.push(Packet::PubComp(PubComp {
            pkid: packet_id,
            reason: PubCompReason::Success,
            properties: None,
        }));
    }

    /// The topic a PUBLISH names, through its Topic Alias if it has one (MQTT 5 §3.3.2.3.4).
    fn resolve_topic(&mut self, publish: &mut Publish) -> Result<String, Disconnect> {
        let topic = std::str::from_utf8(&publish.topic)
            .map_err(|_| Disconnect::malformed("topic name is not UTF-8"))?
            .to_string();
        let alias = publish.properties.as_ref().and_then(|p| p.topic_alias);
        let name = match alias {
            None => topic,
            Some(alias) => {
                if alias == 0 || alias > self.ctx.config.topic_alias_max {
                    return Err(Disconnect::new(
                        DisconnectReasonCode::TopicAliasInvalid,
                        format!(
                            "topic alias {alias} outside 1..={}",
                            self.ctx.config.topic_alias_max
                        ),
                    ));
                }
                if topic.is_empty() {
                    self.aliases_in.get(&alias).cloned().ok_or_else(|| {
                        Disconnect::protocol(format!("topic alias {alias} was never set"))
                    })?
                } else {
                    self.aliases_in.insert(alias, topic.clone());
                    topic
                }
            }
        };
        check_name(&name, self.ctx.config.topic_levels_max)
            .map_err(|e| Disconnect::new(DisconnectReasonCode::TopicNameInvalid, e.to_string()))?;
        Ok(name)
    }

    /// Retains `message` for its topic, or clears the topic for an empty payload.
    async fn retain(&self, message: &Message) -> Result<(), CoreError> {
        if message.body.is_empty() {
            self.ctx.retained.clear(&message.routing_key).await
        } else {
            self.ctx
                .retained
                .retain(std::sync::Arc::new(message.clone()))
                .await
        }
    }

    /// Answers a publish the broker did not take: MQTT 5 PUBACK/PUBREC with `reason`; 3.1.1
    /// has no negative acknowledgement, so a QoS 1/2 publish there ends the connection (the
    /// client sends it again on its next one). QoS 0 is dropped and counted.
    fn refuse(
        &mut self,
        qos: u8,
        packet_id: u16,
        reason: PubAckReason,
        text: &str,
        acks: &mut PendingAcks,
    ) -> Result<(), Disconnect> {
        if qos == 2 {
            self.incoming_qos2.remove(&packet_id);
        }
        match (qos, self.version) {
            (0, _) => {
                self.ctx.stats.count_dropped();
                Ok(())
            }
            (_, crate::codec::Version::V311) => Err(Disconnect::new(
                DisconnectReasonCode::ImplementationSpecificError,
                text.to_string(),
            )),
            (1, _) => {
                self.ack_now(acks, with_reason_string(puback(packet_id, reason), text));
                Ok(())
            }
            _ => {
                self.ack_now(acks, with_reason_string(pubrec(packet_id, reason), text));
                Ok(())
            }
        }
    }
}

fn puback(packet_id: u16, reason: PubAckReason) -> Packet {
    Packet::PubAck(PubAck {
        pkid: packet_id,
        reason,
        properties: None,
    })
}

fn pubrec(packet_id: u16, reason: PubAckReason) -> Packet {
    let reason = match reason {
        PubAckReason::Success => PubRecReason::Success,
        PubAckReason::NoMatchingSubscribers => PubRecReason::NoMatchingSubscribers,
        PubAckReason::UnspecifiedError => PubRecReason::UnspecifiedError,
        PubAckReason::ImplementationSpecificError => PubRecReason::ImplementationSpecificError,
        PubAckReason::NotAuthorized => PubRecReason::NotAuthorized,
        PubAckReason::TopicNameInvalid => PubRecReason::TopicNameInvalid,
        PubAckReason::PacketIdentifierInUse => PubRecReason::PacketIdentifierInUse,
        PubAckReason::QuotaExceeded => PubRecReason::QuotaExceeded,
        PubAckReason::PayloadFormatInvalid => PubRecReason::PayloadFormatInvalid,
    };
    Packet::PubRec(PubRec {
        pkid: packet_id,
        reason,
        properties: None,
    })
}

fn with_reason_string(mut packet: Packet, text: &str) -> Packet {
    let reason_string = Some(text.to_string());
    match &mut packet {
        Packet::PubAck(ack) => {
            ack.properties = Some(PubAckProperties {
                reason_string,
                user_properties: Vec::new(),
            })
        }
        Packet::PubRec(rec) => {
            rec.properties = Some(rumqttc::v5::mqttbytes::v5::PubRecProperties {
                reason_string,
                user_properties: Vec::new(),
            })
        }
        _ => {}
    }
    packet
}
