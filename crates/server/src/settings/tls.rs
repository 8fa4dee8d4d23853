//! `[tls]` in the config file: the certificate and key every TLS listener serves, and which
//! listeners speak TLS (AMQPS and MQTTS on ports of their own, as RabbitMQ and Mosquitto do;
//! the Kafka listener itself, whose advertised address clients come back to).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use porter_gateway_kit::client_cert::CertLoginFrom;
use porter_gateway_kit::principal_rules::PrincipalRules;
use porter_gateway_kit::tls_files::TlsFiles;
use serde::Deserialize;

use super::{invalid, resolve, Sources};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: which part of a client certificate's subject is its user,
    /// `distinguished_name` (the default, RabbitMQ's and Kafka's) or `common_name`.
    pub cert_login_from: Option<String>,
    /// Kafka's `ssl.principal.mapping.rules`, in its syntax: rewrites a certificate's
    /// distinguished name into a user name on every protocol (`RULE:^CN=(.*?),.*$/$1/L,DEFAULT`).
    pub principal_mapping_rules: Option<String>,
    /// AMQPS (RabbitMQ's 5671).
    pub amqp_listen: Option<String>,
    /// MQTTS (8883).
    pub mqtt_listen: Option<String>,
    /// The Kafka listener speaks TLS: SSL, or SASL_SSL with `[kafka] sasl_mechanisms`.
    pub kafka: Option<bool>,
    /// STOMP over TLS (RabbitMQ's 61614).
    pub stomp_listen: Option<String>,
    /// The RocketMQ gRPC listener speaks TLS (the clients' `enableSsl`).
    pub rocketmq: Option<bool>,
    /// The HTTP listener speaks HTTPS (the management API, the UI, WSS).
    pub http: Option<bool>,
}

/// The TLS listeners to run and the files they serve.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// `None`: no TLS listener.
    pub files: Option<TlsFiles>,
    pub amqp_listen: Option<SocketAddr>,
    pub mqtt_listen: Option<SocketAddr>,
    pub stomp_listen: Option<SocketAddr>,
    pub kafka: bool,
    pub rocketmq: bool,
    pub http: bool,
}

pub(super) fn load(section: &TlsSection, src: &Sources<'_>) -> Result<TlsSettings> {
    let listen = |value: &Option<String>, key: &'static str| -> Result<Option<SocketAddr>> {
        match value.as_deref() {
            None | Some("off") => Ok(None),
            Some(addr) => {
                Ok(Some(resolve(addr).map_err(|problem| {
                    invalid(src.file_origin(key), problem)
                })?))
            }
        }
    };
    let amqp_listen = listen(&section.amqp_listen, "[tls] amqp_listen")?;
    let mqtt_listen = listen(&section.mqtt_listen, "[tls] mqtt_listen")?;
    let stomp_listen = listen(&section.stomp_listen, "[tls] stomp_listen")?;
    let kafka = section.kafka.unwrap_or(false);
    let rocketmq = section.rocketmq.unwrap_or(false);
    let http = section.http.unwrap_or(false);
    let wanted = amqp_listen.is_some()
        || mqtt_listen.is_some()
        || stomp_listen.is_some()
        || kafka
        || rocketmq
        || http;
    let cert_login_from = match section.cert_login_from.as_deref() {
        None => CertLoginFrom::default(),
        Some(text) => CertLoginFrom::parse(text).ok_or_else(|| {
            invalid(
                src.file_origin("[tls] cert_login_from"),
                format!("{text:?}: use distinguished_name or common_name"),
            )
        })?,
    };
    let principal_rules = match section.principal_mapping_rules.as_deref() {
        None => None,
        Some(_) if cert_login_from == CertLoginFrom::CommonName => {
            return Err(invalid(
                src.file_origin("[tls] principal_mapping_rules"),
                "the rules rewrite the distinguished name: use them with cert_login_from = \"distinguished_name\"".to_string(),
            ))
        }
        Some(text) => Some(Arc::new(PrincipalRules::parse(text).map_err(|e| {
            invalid(src.file_origin("[tls] principal_mapping_rules"), e)
        })?)),
    };
    let files = match (&section.cert_file, &section.key_file) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert_file: cert.clone(),
            key_file: key.clone(),
            client_ca_file: section.client_ca_file.clone(),
            cert_login_from,
            principal_rules,
        }),
        _ if wanted => {
            return Err(invalid(
                src.file_origin("[tls] cert_file"),
                "TLS listeners need cert_file and key_file".to_string(),
            ))
        }
        _ => None,
    };
    Ok(TlsSettings {
        files: files.filter(|_| wanted),
        amqp_listen,
        mqtt_listen,
        stomp_listen,
        kafka,
        rocketmq,
        http,
    })
}
