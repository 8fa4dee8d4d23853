//! Messages to the client: a queue delivery becomes a PUBLISH with the QoS, subscription
//! identifiers and RETAIN flag its matching subscriptions give it; QoS 1 and 2 wait in
//! `inflight` for PUBACK, or PUBREC → PUBREL → PUBCOMP, and only then is the queue message
//! acknowledged, so a message the client has not confirmed is delivered again (with DUP) to
//! the session's next connection, after a restart too.
//!
//! Packet ids come from where the message sits in its queue (`offset % 65535 + 1`), so the same
//! message gets the same packet id when it is sent again, as MQTT requires of a resumed session
//! (3.1.1 §4.4, 5.0 §4.4); a message whose id is taken by another in flight waits for it.
//! Unacknowledged messages are bounded by the client's Receive Maximum (and the broker's
//! `inflight_max`), which is also the queue consumer's prefetch.

use std::sync::Arc;

use porter_core::partition::now_ms;
use porter_core::queue::api::QueueDelivery;
use porter_core::retained::Retained;
use rumqttc::v5::mqttbytes::v5::{Packet, PubRel, PubRelReason, Publish};

use crate::codec::{encoded_size, qos_from, Version};
use crate::convert::{
    publish_properties, published_qos, publisher, remaining_expiry, was_retained,
};
use crate::error::Disconnect;
use crate::limits::RETAINED_PER_SUBSCRIBE_MAX;
use crate::session::{Inflight, Session};
use crate::store::Released;
use crate::topic::{from_routing_key, matches, parse_filter};

impl Session {
    /// Whether another QoS 1/2 message may be sent now.
    fn has_credit(&self) -> bool {
        let max = self
            .client
            .receive_max
            .min(self.ctx.config.inflight_max)
            .max(1);
        self.inflight.len() < usize::from(max)
    }

    /// A delivery from one of the session's queues: sent now, or queued behind the others
    /// waiting for credit or a packet id.
    pub fn deliver(&mut self, delivery: QueueDelivery, out: &mut Vec<Packet>) {
        if !self.waiting.is_empty() {
            self.waiting.push_back(delivery);
            return;
        }
        if let Some(delivery) = self.try_deliver(delivery, out) {
            self.waiting.push_back(delivery);
        }
    }

    /// Sends waiting deliveries while credit and packet ids allow.
    pub fn drain_waiting(&mut self, out: &mut Vec<Packet>) {
        while let Some(delivery) = self.waiting.pop_front() {
            if let Some(delivery) = self.try_deliver(delivery, out) {
                self.waiting.push_front(delivery);
                return;
            }
        }
    }

    /// Sends `delivery` or gives it back if it must wait.
    fn try_deliver(
        &mut self,
        delivery: QueueDelivery,
        out: &mut Vec<Packet>,
    ) -> Option<QueueDelivery> {
        let Some(queue) = self.consuming.get(&delivery.queue).cloned() else {
            return None; // unsubscribed since: the queue took it back
        };
        if self
            .released
            .iter()
            .any(|r| *r.queue == *delivery.queue && r.offset == delivery.offset)
        {
            // Released before a crash (the record was committed, the queue's ack was not): the
            // client has it; PUBREL was sent again at connect.
            self.to_settle.push((queue, delivery.queue_tag));
            return None;
        }
        let message = &delivery.message;
        let name = from_routing_key(&message.routing_key);
        let own = publisher(message) == Some(self.client_id.as_str());
        let mut qos = None::<u8>;
        let mut ids = Vec::new();
        let mut retain = false;
        for subscription in self.matching(&delivery.queue, &name) {
            if subscription.no_local && own {
                continue;
            }
            qos = Some(qos.unwrap_or(0).max(subscription.qos));
            ids.extend(subscription.id);
            retain |= subscription.retain_as_published && was_retained(message);
        }
        let Some(granted) = qos else {
            // No subscription wants it (No Local, `$` topics under `#`, a filter removed while
            // it was queued): settled, not sent.
            self.to_settle.push((queue, delivery.queue_tag));
            return None;
        };
        let qos = granted.min(published_qos(message));
        if qos > 0 && !self.has_credit() {
            return Some(delivery);
        }
        let packet_id = if qos > 0 {
            let preferred = (delivery.offset % 65_535) as u16 + 1;
            if self.inflight.contains_key(&preferred) {
                return Some(delivery);
            }
            preferred
        } else {
            0
        };
        let expiry = remaining_expiry(message, delivery.enqueued_ms, now_ms());
        let mut publish = Publish::new(name.as_str(), qos_from(qos), message.body.clone(), None);
        publish.pkid = packet_id;
        publish.retain = retain;
        publish.dup = qos > 0 && delivery.redelivered;
        if self.version == Version::V5 {
            publish.properties = Some(publish_properties(message, expiry, ids));
        }
        if !self.fits(&publish) {
            // MQTT 5 §3.1.2.11.4: a packet over the client's maximum is discarded as if sent.
            self.ctx.stats.count_dropped();
            self.to_settle.push((queue, delivery.queue_tag));
            return None;
        }
        self.alias_topic(&mut publish);
        self.ctx.stats.count_sent();
        out.push(Packet::Publish(publish));
        if qos == 0 {
            self.to_settle.push((queue, delivery.queue_tag));
        } else {
            self.inflight.insert(
                packet_id,
                Inflight {
                    from: Some((queue, delivery.queue_tag, delivery.offset)),
                    released: false,
                },
            );
        }
        None
    }

    /// Whether `publish` is within the client's Maximum Packet Size.
    fn fits(&self, publish: &Publish) -> bool {
        self.client.packet_max.is_none_or(|max| {
            encoded_size(&Packet::Publish(publish.clone()), self.version) <= max as usize
        })
    }

    /// Replaces the topic by an alias the client accepts (MQTT 5 Topic Alias): the first
    /// `topic_alias_max` topics sent get one, later sends of them carry only the alias.
    fn alias_topic(&mut self, publish: &mut Publish) {
        if self.client.topic_alias_max == 0 {
            return;
        }
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let properties = publish.properties.get_or_insert_with(Default::default);
        if let Some(&alias) = self.aliases_out.get(&topic) {
            properties.topic_alias = Some(alias);
            publish.topic = bytes::Bytes::new();
        } else if self.aliases_out.len() < usize::from(self.client.topic_alias_max) {
            let alias = self.aliases_out.len() as u16 + 1;
            self.aliases_out.insert(topic, alias);
            properties.topic_alias = Some(alias);
        }
    }

    /// PUBACK for QoS 1.
    pub fn on_puback(&mut self, packet_id: u16, out: &mut Vec<Packet>) {
        if let Some(inflight) = self.inflight.remove(&packet_id) {
            self.settle(inflight);
        }
        self.drain_waiting(out);
    }

    /// PUBREC for QoS 2: the message is released. A persistent session records that (durably)
    /// before the queue message is acknowledged and PUBREL goes back, so after a crash PUBREL
    /// is sent again and the message is not; the packet id stays in flight until PUBCOMP.
    pub async fn on_pubrec(
        &mut self,
        packet_id: u16,
        out: &mut Vec<Packet>,
    ) -> Result<(), Disconnect> {
        let Some(inflight) = self.inflight.get_mut(&packet_id) else {
            out.push(pubrel(packet_id, PubRelReason::PacketIdentifierNotFound));
            return Ok(());
        };
        inflight.released = true;
        if let Some((queue, tag, offset)) = inflight.from.take() {
            if self.expiry_secs > 0 {
                self.released.push(Released {
                    queue: queue.name().to_string(),
                    offset,
                    packet_id,
                });
                self.ctx
                    .sessions
                    .put(&self.client_id, &self.record(None))
                    .await
                    .map_err(Disconnect::core)?;
            }
            self.to_settle.push((queue, tag));
            self.settle_pending();
        }
        out.push(pubrel(packet_id, PubRelReason::Success));
        Ok(())
    }

    /// PUBRELs for the QoS 2 messages released before this connection (sent after CONNACK).
    pub fn resend_releases(&mut self, out: &mut Vec<Packet>) {
        for released in &self.released {
            self.inflight.insert(
                released.packet_id,
                Inflight {
                    from: None,
                    released: true,
                },
            );
            out.push(pubrel(released.packet_id, PubRelReason::Success));
        }
    }

    /// PUBCOMP for QoS 2. The release record is dropped in memory; it is written with the
    /// session's next change (a PUBREL sent again for it is answered with PUBCOMP, harmlessly).
    pub fn on_pubcomp(&mut self, packet_id: u16, out: &mut Vec<Packet>) {
        if let Some(inflight) = self.inflight.remove(&packet_id) {
            self.settle(inflight);
        }
        self.released.retain(|r| r.packet_id != packet_id);
        self.drain_waiting(out);
    }

    fn settle(&mut self, inflight: Inflight) {
        if let Some((queue, tag, _)) = inflight.from {
            self.to_settle.push((queue, tag));
        }
    }

    /// Acknowledges in their queues the deliveries settled this turn: one call per queue for
    /// all of them (a burst of PUBACKs is one queue operation, not one each).
    pub fn settle_pending(&mut self) {
        while let Some((queue, _)) = self.to_settle.first() {
            let queue = queue.clone();
            let mut tags = Vec::new();
            self.to_settle.retain(|(q, tag)| {
                let same = Arc::ptr_eq(q, &queue);
                if same {
                    tags.push(*tag);
                }
                !same
            });
            if let Err(e) = queue.ack(&tags) {
                tracing::debug!(client_id = %self.client_id, error = %e, "acknowledging MQTT deliveries failed");
            }
        }
    }

    /// Sends the retained messages matching subscription `path` (MQTT: RETAIN set, QoS the
    /// lower of the subscription's and the message's). None for a shared subscription.
    pub fn send_retained(&mut self, path: &str, out: &mut Vec<Packet>) {
        let Ok(parsed) = parse_filter(path) else {
            return;
        };
        let Some(subscription) = self.subscriptions.get(path).cloned() else {
            return;
        };
        if parsed.group.is_some() {
            return;
        }
        let filter = parsed.filter;
        let mut found = self.ctx.retained.matching(
            |key| matches(filter, &from_routing_key(key)),
            RETAINED_PER_SUBSCRIBE_MAX,
        );
        found.extend(self.ctx.sys.retained_matching(filter));
        let now = now_ms();
        for Retained { message, stored_ms } in found {
            let expiry = remaining_expiry(&message, stored_ms, now);
            if expiry == Some(0) {
                continue;
            }
            let qos = subscription.qos.min(published_qos(&message));
            if qos > 0 && !self.has_credit() {
                break; // the rest would overrun the client's receive maximum
            }
            let name = from_routing_key(&message.routing_key);
            let mut publish =
                Publish::new(name.as_str(), qos_from(qos), message.body.clone(), None);
            publish.retain = true;
            if self.version == Version::V5 {
                publish.properties = Some(publish_properties(
                    &message,
                    expiry,
                    subscription.id.into_iter().collect(),
                ));
            }
            if !self.fits(&publish) {
                continue;
            }
            if qos > 0 {
                let Some(packet_id) = self.free_packet_id() else {
                    break;
                };
                publish.pkid = packet_id;
                self.inflight.insert(
                    packet_id,
                    Inflight {
                        from: None,
                        released: false,
                    },
                );
            }
            self.alias_topic(&mut publish);
            self.ctx.stats.count_sent();
            out.push(Packet::Publish(publish));
        }
    }

    /// A packet id not in flight, for messages that are not in a queue.
    fn free_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}

fn pubrel(packet_id: u16, reason: PubRelReason) -> Packet {
    Packet::PubRel(PubRel {
        pkid: packet_id,
        reason,
        properties: None,
    })
}
