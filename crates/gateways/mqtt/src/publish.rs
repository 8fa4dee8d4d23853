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
use porter_core::CoreError;
use rumqttc::v5::mqttbytes::v5::{
    DisconnectReasonCode, Packet, PubAck, PubAckProperties, PubAckReason, PubComp, PubCompReason,
    PubRec, PubRecReason, Publish,
};

use crate::convert::to_message;
use crate::error::{publish_reason, Disconnect};
use crate::session::Session;
use crate::topic::check_name;

/// Acknowledgements waiting for their publish's commit, in arrival order.
pub(crate) type PendingAcks = FuturesOrdered<Pin<Box<dyn Future<Output = Packet> + Send>>>;

impl Session {
    /// Handles a PUBLISH from the client.
    pub async fn publish(
        &mut self,
        mut publish: Publish,
        acks: &mut PendingAcks,
        out: &mut Vec<Packet>,
    ) -> Result<(), Disconnect> {
        let name = self.resolve_topic(&mut publish)?;
        let qos = publish.qos as u8;
        if qos == 2 && self.incoming_qos2.contains(&publish.pkid) {
            // A re-sent PUBLISH whose first copy was routed: acknowledge again, route nothing.
            out.push(pubrec(publish.pkid, PubAckReason::Success));
            return Ok(());
        }
        let unacknowledged =
            (acks.len() + self.incoming_qos2.len()).saturating_sub(self.qos2_committing);
        if qos > 0 && unacknowledged >= usize::from(self.ctx.config.receive_max) {
            return Err(Disconnect::new(
                DisconnectReasonCode::ReceiveMaximumExceeded,
                format!(
                    "more than {} QoS 1/2 publishes unacknowledged",
                    self.ctx.config.receive_max
                ),
            ));
        }
        if name.starts_with("$SYS/") || name == "$SYS" {
            // `$SYS` belongs to the broker's statistics. MQTT 5 is told; 3.1.1 has no negative
            // acknowledgement, so its publish is acknowledged and dropped, as Mosquitto does.
            tracing::debug!(client_id = %self.client_id, topic = %name, "dropping a publish to $SYS");
            self.ctx.stats.count_dropped();
            match (qos, self.version) {
                (0, _) => {}
                (_, crate::codec::Version::V311) if qos == 1 => {
                    out.push(puback(publish.pkid, PubAckReason::Success))
                }
                (_, crate::codec::Version::V311) => {
                    self.incoming_qos2.insert(publish.pkid);
                    out.push(pubrec(publish.pkid, PubAckReason::Success));
                }
                _ => self.refuse(
                    &publish,
                    PubAckReason::NotAuthorized,
                    "$SYS topics are the broker's",
                    out,
                )?,
            }
            return Ok(());
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
                self.refuse(&publish, publish_reason(&e), &e.to_string(), out)?;
                return Ok(());
            }
        }
        self.ctx.stats.count_received();
        let outcome = match self
            .ctx
            .vhost
            .publish(&self.ctx.config.exchange, message)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(client_id = %self.client_id, topic = %name, error = %e, "MQTT publish failed");
                self.refuse(&publish, publish_reason(&e), &e.to_string(), out)?;
                return Ok(());
            }
        };
        let reason = if outcome.rejected {
            PubAckReason::QuotaExceeded
        } else if !outcome.routed {
            PubAckReason::NoMatchingSubscribers
        } else {
            PubAckReason::Success
        };
        match qos {
            0 => {
                if outcome.rejected {
                    self.ctx.stats.count_dropped();
                }
            }
            _ => {
                let packet_id = publish.pkid;
                if qos == 2 {
                    self.incoming_qos2.insert(packet_id);
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
        }
        Ok(())
    }

    /// PUBREL: the QoS 2 exchange for `packet_id` is over.
    pub fn on_pubrel(&mut self, packet_id: u16, out: &mut Vec<Packet>) {
        // A PUBREL for an id not held (already completed before a reconnect) is still
        // completed: the client only needs to learn it is done.
        self.incoming_qos2.remove(&packet_id);
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
        &self,
        publish: &Publish,
        reason: PubAckReason,
        text: &str,
        out: &mut Vec<Packet>,
    ) -> Result<(), Disconnect> {
        match (publish.qos as u8, self.version) {
            (0, _) => {
                self.ctx.stats.count_dropped();
                Ok(())
            }
            (_, crate::codec::Version::V311) => Err(Disconnect::new(
                DisconnectReasonCode::ImplementationSpecificError,
                text.to_string(),
            )),
            (1, _) => {
                out.push(with_reason_string(puback(publish.pkid, reason), text));
                Ok(())
            }
            _ => {
                out.push(with_reason_string(pubrec(publish.pkid, reason), text));
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
