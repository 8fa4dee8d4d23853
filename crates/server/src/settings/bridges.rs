//! `[[bridges]]` in the config file: exchange ↔ Kafka topic bridges (porter-core's `bridge`).
//!
//! ```toml
//! [[bridges]]            # MQTT telemetry (through amq.topic) into a Kafka topic
//! from_exchange = "amq.topic"
//! binding_key = "sensors.#"
//! to_topic = "telemetry"
//!
//! [[bridges]]            # a Kafka topic feeding an exchange
//! from_topic = "orders"
//! to_exchange = "amq.topic"
//! routing_key = "orders.created"   # optional: each record's key otherwise
//! ```

use anyhow::{bail, Result};
use porter_core::bridge::BridgeSpec;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    pub from_exchange: Option<String>,
    pub binding_key: Option<String>,
    pub to_topic: Option<String>,
    pub from_topic: Option<String>,
    pub to_exchange: Option<String>,
    pub routing_key: Option<String>,
    /// The virtual host of the exchange. [default: /]
    pub vhost: Option<String>,
}

/// The bridges the file asks for, checked.
pub(super) fn load(sections: &[BridgeSection]) -> Result<Vec<BridgeSpec>> {
    sections
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let vhost = b.vhost.clone().unwrap_or_else(|| "/".to_string());
            match (&b.from_exchange, &b.to_topic, &b.from_topic, &b.to_exchange) {
                (Some(exchange), Some(topic), None, None) => Ok(BridgeSpec::ExchangeToTopic {
                    vhost,
                    exchange: exchange.clone(),
                    binding_key: b.binding_key.clone().unwrap_or_else(|| "#".to_string()),
                    topic: topic.clone(),
                }),
                (None, None, Some(topic), Some(exchange)) => Ok(BridgeSpec::TopicToExchange {
                    topic: topic.clone(),
                    vhost,
                    exchange: exchange.clone(),
                    routing_key: b.routing_key.clone(),
                }),
                _ => bail!(
                    "[[bridges]] entry {}: give either from_exchange and to_topic, or from_topic \
                     and to_exchange",
                    i + 1
                ),
            }
        })
        .collect()
}
