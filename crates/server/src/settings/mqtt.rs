//! `[mqtt]` in the config file and `--mqtt-listen`: the MQTT gateway's settings.

use anyhow::Result;
use porter_gateway_mqtt::config::Anonymous;
use porter_gateway_mqtt::MqttConfig;
use serde::Deserialize;

use super::{invalid, listener_address, resolve, Sources};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// false: no MQTT listener (as `listen = "off"`).
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    /// The virtual host MQTT sessions live in (RabbitMQ's `mqtt.vhost`).
    pub vhost: Option<String>,
    /// The exchange MQTT publishes through (RabbitMQ's `mqtt.exchange`).
    pub exchange: Option<String>,
    pub connections_max: Option<usize>,
    pub packet_bytes_max: Option<usize>,
    pub inflight_max: Option<u16>,
    pub receive_max: Option<u16>,
    pub session_queue_max: Option<u32>,
    pub topic_levels_max: Option<usize>,
    pub topic_alias_max: Option<u16>,
    pub subscriptions_max: Option<usize>,
    pub session_expiry_max_secs: Option<u32>,
    pub keep_alive_max_secs: Option<u16>,
    pub sys_interval_secs: Option<u64>,
    /// Who may connect without a user name: "loopback" (default), "any" or "none".
    pub anonymous: Option<String>,
}

/// The MQTT settings from the flag (or env) and the file; `false` when the listener is off.
pub(super) fn load(
    section: &MqttSection,
    flag: Option<&str>,
    src: &Sources<'_>,
) -> Result<(bool, MqttConfig)> {
    let mut mqtt = MqttConfig::default();
    let (enabled, listen) = listener_address(
        src.pick(
            flag,
            "mqtt_listen",
            section.listen.as_deref(),
            "[mqtt] listen",
        ),
        section.enabled,
    );
    if let Some((listen, origin)) = listen {
        mqtt.listen = resolve(listen).map_err(|problem| invalid(origin, problem))?;
    }
    let s = section;
    if let Some(v) = &s.vhost {
        mqtt.vhost = v.clone();
    }
    if let Some(v) = &s.exchange {
        mqtt.exchange = v.clone();
    }
    if let Some(v) = s.connections_max {
        mqtt.connections_max = v.max(1);
    }
    if let Some(v) = s.packet_bytes_max {
        mqtt.packet_bytes_max = v.clamp(64, 268_435_455);
    }
    if let Some(v) = s.inflight_max {
        mqtt.inflight_max = v.clamp(1, porter_gateway_mqtt::limits::INFLIGHT_MAX);
    }
    if let Some(v) = s.receive_max {
        mqtt.receive_max = v.max(1);
    }
    if let Some(v) = s.session_queue_max {
        mqtt.session_queue_max = v.max(1);
    }
    if let Some(v) = s.topic_levels_max {
        mqtt.topic_levels_max = v.max(1);
    }
    if let Some(v) = s.topic_alias_max {
        mqtt.topic_alias_max = v;
    }
    if let Some(v) = s.subscriptions_max {
        mqtt.subscriptions_max = v.max(1);
    }
    if let Some(v) = s.session_expiry_max_secs {
        mqtt.session_expiry_max_secs = v;
    }
    if let Some(v) = s.keep_alive_max_secs {
        mqtt.keep_alive_max_secs = v.max(1);
    }
    if let Some(v) = s.sys_interval_secs {
        mqtt.sys_interval_secs = v;
    }
    if let Some(v) = &s.anonymous {
        mqtt.anonymous = Anonymous::from_name(v).ok_or_else(|| {
            invalid(
                src.file_origin("[mqtt] anonymous"),
                format!("{v:?} is none of \"loopback\", \"any\", \"none\""),
            )
        })?;
    }
    Ok((enabled, mqtt))
}
