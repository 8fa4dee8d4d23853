//! `[kafka]` in the config file and the `--kafka-*` flags: the Kafka gateway's settings.

use anyhow::Result;
use std::sync::Arc;

use porter_gateway_kafka::sasl::SaslMechanism;
use porter_gateway_kafka::KafkaConfig;
use serde::Deserialize;

use super::{invalid, listener_address, resolve, split_host_port, Sources};
use crate::cli::ServeArgs;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// false: no Kafka listener (as `listen = "off"`).
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub advertised: Option<String>,
    pub request_bytes_max: Option<u32>,
    pub request_memory_bytes_max: Option<u64>,
    pub connection_memory_bytes_max: Option<u64>,
    pub write_stall_ms: Option<u64>,
    pub idle_ms: Option<u64>,
    pub inflight_requests_max: Option<usize>,
    pub connections_max: Option<usize>,
    pub fetch_wait_ms_max: Option<u64>,
    pub fetch_response_bytes_max: Option<u32>,
    /// Kafka's `sasl.enabled.mechanisms`: a list, or a comma-separated string. Empty or
    /// "none": no authentication.
    pub sasl_mechanisms: Option<Mechanisms>,
    /// Kafka's `connections.max.reauth.ms` (KIP-368); 0: never.
    pub reauth_ms: Option<u64>,
    /// Enforce Kafka ACLs (Kafka's `authorizer.class.name`).
    pub acls: Option<bool>,
}

/// `["PLAIN", "SCRAM-SHA-512"]` or `"PLAIN,SCRAM-SHA-512"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Mechanisms {
    List(Vec<String>),
    Text(String),
}

/// The Kafka settings from the flags (or env) and the file; `false` when the listener is off.
pub(super) fn load(
    k: &KafkaSection,
    args: &ServeArgs,
    src: &Sources<'_>,
) -> Result<(bool, KafkaConfig)> {
    let mut kafka = KafkaConfig::default();
    let (kafka_enabled, listen) = listener_address(
        src.pick(
            args.kafka_listen.as_deref(),
            "kafka_listen",
            k.listen.as_deref(),
            "[kafka] listen",
        ),
        k.enabled,
    );
    if let Some((listen, origin)) = listen {
        kafka.listen = resolve(listen).map_err(|problem| invalid(origin, problem))?;
    }
    // Port 0 (a listen port the OS chooses) is replaced by the bound port at start.
    let (host, port) = match src.pick(
        args.kafka_advertised.as_deref(),
        "kafka_advertised",
        k.advertised.as_deref(),
        "[kafka] advertised",
    ) {
        Some((advertised, origin)) => {
            split_host_port(advertised).map_err(|problem| invalid(origin, problem))?
        }
        None if kafka.listen.ip().is_unspecified() => {
            ("localhost".to_string(), kafka.listen.port())
        }
        None => (kafka.listen.ip().to_string(), kafka.listen.port()),
    };
    kafka.advertised_host = host;
    kafka.advertised_port = port;
    if let Some(v) = args.kafka_request_bytes_max.or(k.request_bytes_max) {
        kafka.request_bytes_max = v;
    }
    if let Some(v) = k.request_memory_bytes_max {
        kafka.request_memory_bytes_max = v;
    }
    kafka.request_memory_bytes_max = kafka
        .request_memory_bytes_max
        .max(kafka.request_bytes_max as u64);
    if let Some(v) = k.connection_memory_bytes_max {
        kafka.connection_memory_bytes_max = v.max(1024 * 1024);
    }
    kafka.connection_memory_bytes_max = kafka
        .connection_memory_bytes_max
        .min(kafka.request_memory_bytes_max);
    if let Some(v) = k.write_stall_ms {
        kafka.write_stall_ms = v.max(1);
    }
    if let Some(v) = k.idle_ms {
        kafka.idle_ms = v;
    }
    if let Some(v) = k.inflight_requests_max {
        kafka.inflight_requests_max = v.max(1);
    }
    if let Some(v) = k.connections_max {
        kafka.connections_max = v.max(1);
    }
    if let Some(v) = k.fetch_wait_ms_max {
        kafka.fetch_wait_ms_max = v;
    }
    if let Some(v) = k.fetch_response_bytes_max {
        kafka.fetch_response_bytes_max = v.max(1);
    }
    let mechanisms = src.pick(
        args.kafka_sasl_mechanisms.clone(),
        "kafka_sasl_mechanisms",
        k.sasl_mechanisms.as_ref().map(|m| match m {
            Mechanisms::List(list) => list.join(","),
            Mechanisms::Text(text) => text.clone(),
        }),
        "[kafka] sasl_mechanisms",
    );
    if let Some((list, origin)) = mechanisms {
        kafka.sasl_mechanisms = sasl_mechanisms(&list).map_err(|p| invalid(origin, p))?;
    }
    if let Some(v) = k.reauth_ms {
        kafka.reauth_ms = v;
    }
    if let Some(v) = k.acls {
        kafka.acls = v;
    }
    Ok((kafka_enabled, kafka))
}

/// `PLAIN,SCRAM-SHA-512` as mechanisms, in the order given; `none` or empty: none.
fn sasl_mechanisms(list: &str) -> Result<Arc<[SaslMechanism]>, String> {
    let mut mechanisms = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name.eq_ignore_ascii_case("none") {
            continue;
        }
        let known: Vec<&str> = SaslMechanism::ALL.iter().map(|m| m.name()).collect();
        let mechanism = SaslMechanism::from_name(&name.to_ascii_uppercase()).ok_or_else(|| {
            format!(
                "unknown SASL mechanism {name:?}: Porter offers {}",
                known.join(", ")
            )
        })?;
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    Ok(mechanisms.into())
}
