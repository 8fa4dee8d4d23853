//! Effective settings: defaults, overridden by the TOML file, then env vars, then flags.
//! (Clap already ranks a flag above its env var; here the pair is ranked above the file.)
//! A value that can't be used is reported with where it came from ([`crate::origin`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use porter_core::{BrokerConfig, FlushMode, TopicConfig};
use porter_gateway_amqp::{AmqpConfig, User};
use porter_gateway_kafka::KafkaConfig;
use porter_gateway_rocketmq::config::{Backoff, GroupPolicy};
use porter_gateway_rocketmq::RocketmqConfig;
use porter_gateway_stomp::StompConfig;
use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::origin::{ArgOrigins, InvalidSetting, Origin};

mod bridges;
mod http;
mod kafka;
mod mqtt;
mod stomp;
pub mod tls;

/// The TOML file. Every field is optional; see docs/configuration.md.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub kafka: kafka::KafkaSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub topics: TopicsSection,
    #[serde(default)]
    pub amqp: AmqpSection,
    #[serde(default)]
    pub rocketmq: RocketmqSection,
    #[serde(default)]
    pub mqtt: mqtt::MqttSection,
    /// Exchange ↔ Kafka topic bridges.
    #[serde(default)]
    pub bridges: Vec<bridges::BridgeSection>,
    #[serde(default)]
    pub alarms: AlarmsSection,
    #[serde(default)]
    pub stomp: stomp::StompSection,
    #[serde(default)]
    pub http: http::HttpSection,
    #[serde(default)]
    pub tls: tls::TlsSection,
    #[serde(default)]
    pub connections: ConnectionsSection,
}

/// Limits every listener shares.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsSection {
    /// Connections one client address may have open on each listener (Kafka's
    /// `max.connections.per.ip`); unset: no limit but each listener's `connections_max`.
    pub per_source_max: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocketmqSection {
    /// false: no RocketMQ listener (as `listen = "off"`).
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub body_bytes_max: Option<usize>,
    pub connections_max: Option<usize>,
    /// Create topics on first use (RocketMQ's `autoCreateTopicEnable`).
    pub auto_create_topics: Option<bool>,
    /// Message queues (partitions) of an auto-created topic.
    pub auto_create_queues: Option<u32>,
    /// Accept any consumer group (off: only those under [rocketmq.groups]).
    pub auto_create_groups: Option<bool>,
    /// Transaction check-back: first check after, interval, and checks before a drop.
    pub transaction_check_after_ms: Option<i64>,
    pub transaction_check_interval_ms: Option<i64>,
    pub transaction_checks_max: Option<u32>,
    /// Deliveries of a message to a consumer group before it is dead-lettered.
    pub max_delivery_attempts: Option<u32>,
    /// Per consumer group retry policies: `[rocketmq.groups.<name>]`.
    #[serde(default)]
    pub groups: std::collections::HashMap<String, GroupSection>,
    /// Every call signed with a user's access secret (AccessKey/SecretKey).
    pub authentication: Option<bool>,
    /// Calls checked against the broker's ACLs per topic and group.
    pub acls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub max_delivery_attempts: Option<u32>,
    /// `ladder` (RocketMQ's 1 s, 5 s, 10 s … 2 h; the default) or `exponential`.
    pub backoff: Option<String>,
    pub backoff_initial_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub backoff_multiplier: Option<f32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSection {
    /// false: no AMQP listener (as `listen = "off"`).
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub frame_max: Option<u32>,
    pub channel_max: Option<u16>,
    pub heartbeat_s: Option<u16>,
    pub connections_max: Option<usize>,
    pub message_bytes_max: Option<u64>,
    pub confirms_pending_max: Option<usize>,
    /// Virtual hosts created at start if missing (`/` always exists).
    pub vhosts: Option<Vec<String>>,
    /// Replaces the default `guest` user.
    pub users: Option<Vec<UserEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub loopback_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsSection {
    /// Resident memory above which publishers are blocked; 0 disables.
    pub memory_high_watermark_bytes: Option<u64>,
    /// Free disk below which publishers are blocked; 0 disables.
    pub disk_free_limit_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<String>,
    pub filter: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub flush: Option<String>,
    pub flush_interval_ms: Option<u64>,
    pub segment_bytes: Option<u64>,
    pub segment_ms: Option<u64>,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    pub max_message_bytes: Option<u32>,
    pub index_interval_bytes: Option<u32>,
    pub open_files_max: Option<usize>,
    pub retention_check_interval_ms: Option<u64>,
    pub compaction_interval_ms: Option<u64>,
    /// Writer threads doing every log write and fsync (see docs/architecture.md, the commit seam).
    pub writer_threads: Option<usize>,
    /// Jobs each writer's queue holds before publishers wait.
    pub writer_queue_jobs: Option<usize>,
    /// How long a writer fed by streaming clients gathers a small batch before its fsync (µs).
    pub commit_delay_us: Option<u64>,
    /// Fewest durable logs one writer batch must have written to share one `syncfs`; 0: never.
    pub syncfs_min_logs: Option<usize>,
    /// Undelivered queue message bodies kept in memory, all queues together.
    pub queue_cache_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsSection {
    pub auto_create: Option<bool>,
    pub default_partitions: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug)]
pub struct Settings {
    pub broker: BrokerConfig,
    /// Whether the Kafka listener runs; `kafka` holds its settings either way.
    pub kafka_enabled: bool,
    pub kafka: KafkaConfig,
    /// Whether the AMQP listener runs.
    pub amqp_enabled: bool,
    pub amqp: AmqpConfig,
    /// Whether the RocketMQ listener runs.
    pub rocketmq_enabled: bool,
    pub rocketmq: RocketmqConfig,
    /// Whether the MQTT listener runs.
    pub mqtt_enabled: bool,
    pub mqtt: porter_gateway_mqtt::MqttConfig,
    pub bridges: Vec<porter_core::bridge::BridgeSpec>,
    /// Whether the STOMP listener runs.
    pub stomp_enabled: bool,
    pub stomp: StompConfig,
    /// Whether the HTTP listener (WebSocket endpoints, chat page) runs.
    pub http_enabled: bool,
    pub http: porter_gateway_http::HttpConfig,
    /// The TLS listeners and their certificate.
    pub tls: tls::TlsSettings,
    /// `[connections] per_source_max`.
    pub connections_per_source_max: Option<usize>,
    /// Virtual hosts to create at start.
    pub vhosts: Vec<String>,
    pub log_format: LogFormat,
    pub log_filter: String,
}

impl Settings {
    pub fn load(args: &ServeArgs, origins: &ArgOrigins) -> Result<Settings> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let sources = Sources {
            args: origins,
            file: args.config.as_deref(),
        };
        Settings::merge(args, &sources, file)
    }

    fn merge(args: &ServeArgs, src: &Sources, file: FileConfig) -> Result<Settings> {
        let mut broker = BrokerConfig::default();
        if let Some(dir) = args.data_dir.clone().or(file.data_dir) {
            broker.data_dir = dir;
        }
        let s = &file.storage;
        let log = &mut broker.log_defaults;
        if let Some((mode, origin)) = src.pick(
            args.flush.as_deref(),
            "flush",
            s.flush.as_deref(),
            "[storage] flush",
        ) {
            log.flush = match mode {
                "group" => FlushMode::Group,
                "interval" => FlushMode::Interval,
                "never" => FlushMode::Never,
                other => {
                    return Err(invalid(
                        origin,
                        format!("must be group, interval or never, not {other:?}"),
                    ))
                }
            };
        }
        if let Some(v) = args.flush_interval_ms.or(s.flush_interval_ms) {
            log.flush_interval_ms = v.max(1);
        }
        if let Some(v) = args.segment_bytes.or(s.segment_bytes) {
            log.segment_bytes = v;
        }
        if let Some(v) = s.segment_ms {
            log.segment_ms = v;
        }
        if let Some(v) = args.retention_ms.or(s.retention_ms) {
            log.retention_ms = (v >= 0).then_some(v as u64);
        }
        if let Some(v) = args.retention_bytes.or(s.retention_bytes) {
            log.retention_bytes = (v >= 0).then_some(v as u64);
        }
        if let Some(v) = args.max_message_bytes.or(s.max_message_bytes) {
            log.max_batch_bytes = v;
        }
        if let Some(v) = s.index_interval_bytes {
            log.index_interval_bytes = v;
        }
        if let Some(v) = s.open_files_max {
            broker.open_files_max = v.max(16);
        }
        if let Some(v) = s.queue_cache_bytes {
            broker.queue_cache_bytes_max = v;
        }
        if let Some(v) = s.retention_check_interval_ms {
            broker.retention_check_interval_ms = v;
        }
        if let Some(v) = s.compaction_interval_ms {
            broker.compaction_interval_ms = v;
        }
        // Clamped to the named limits by the committer itself (porter_core::commit::limits).
        if let Some(v) = s.writer_threads {
            broker.commit.writer_threads = v;
        }
        if let Some(v) = s.writer_queue_jobs {
            broker.commit.writer_queue_jobs = v;
        }
        if let Some(v) = s.commit_delay_us {
            broker.commit.commit_delay = std::time::Duration::from_micros(v);
        }
        if let Some(v) = s.syncfs_min_logs {
            broker.commit.syncfs_min_logs = v;
        }
        if let Some(v) = args.auto_create_topics.or(file.topics.auto_create) {
            broker.auto_create_topics = v;
        }
        if let Some((v, origin)) = src.pick(
            args.default_partitions,
            "default_partitions",
            file.topics.default_partitions,
            "[topics] default_partitions",
        ) {
            if v == 0 {
                return Err(invalid(origin, "must be at least 1, not 0".to_string()));
            }
            broker.default_partitions = v;
        }
        // The defaults must themselves be valid topic settings.
        TopicConfig::default().log_config(&broker.log_defaults);

        let (kafka_enabled, kafka) = kafka::load(&file.kafka, args, src)?;

        let a = &file.amqp;
        let mut amqp = AmqpConfig::default();
        let (amqp_enabled, listen) = listener_address(
            src.pick(
                args.amqp_listen.as_deref(),
                "amqp_listen",
                a.listen.as_deref(),
                "[amqp] listen",
            ),
            a.enabled,
        );
        if let Some((listen, origin)) = listen {
            amqp.listen = resolve(listen).map_err(|problem| invalid(origin, problem))?;
        }
        if let Some(v) = a.frame_max {
            amqp.frame_max = v.max(porter_gateway_amqp::config::FRAME_MIN_SIZE);
        }
        if let Some(v) = a.channel_max {
            amqp.channel_max = v.max(1);
        }
        if let Some(v) = a.heartbeat_s {
            amqp.heartbeat_s = v;
        }
        if let Some(v) = a.connections_max {
            amqp.connections_max = v.max(1);
        }
        if let Some(v) = a.message_bytes_max {
            amqp.message_bytes_max = v;
        }
        if let Some(v) = a.confirms_pending_max {
            amqp.confirms_pending_max = v.max(1);
        }
        if let Some(users) = &file.amqp.users {
            amqp.users = users
                .iter()
                .map(|u| User {
                    name: u.name.clone(),
                    password: u.password.clone(),
                    loopback_only: u.loopback_only,
                })
                .collect();
        }
        let vhosts = file.amqp.vhosts.clone().unwrap_or_default();

        let r = &file.rocketmq;
        let mut rocketmq = RocketmqConfig::default();
        let (rocketmq_enabled, listen) = listener_address(
            src.pick(
                args.rocketmq_listen.as_deref(),
                "rocketmq_listen",
                r.listen.as_deref(),
                "[rocketmq] listen",
            ),
            r.enabled,
        );
        if let Some((listen, origin)) = listen {
            rocketmq.listen = resolve(listen).map_err(|problem| invalid(origin, problem))?;
        }
        if let Some(v) = r.body_bytes_max {
            rocketmq.body_bytes_max = v.max(1);
        }
        if let Some(v) = r.connections_max {
            rocketmq.connections_max = v.max(1);
        }
        if let Some(v) = r.auto_create_topics {
            rocketmq.auto_create_topics = v;
        }
        if let Some(v) = r.transaction_check_after_ms {
            rocketmq.transaction_check_after_ms = v.max(0);
        }
        if let Some(v) = r.transaction_check_interval_ms {
            rocketmq.transaction_check_interval_ms = v.max(1);
        }
        if let Some(v) = r.transaction_checks_max {
            rocketmq.transaction_checks_max = v;
        }
        if let Some(v) = r.auto_create_groups {
            rocketmq.auto_create_groups = v;
        }
        if let Some(v) = r.auto_create_queues {
            rocketmq.auto_create_queues = v.clamp(1, 1024);
        }
        if let Some(v) = r.max_delivery_attempts {
            rocketmq.max_delivery_attempts = v.max(1);
        }
        if let Some(v) = r.authentication {
            rocketmq.authentication = v;
        }
        if let Some(v) = r.acls {
            rocketmq.acls = v;
        }
        for (name, g) in &r.groups {
            let backoff = match g.backoff.as_deref() {
                None | Some("ladder") => Backoff::Ladder,
                Some("exponential") => Backoff::Exponential {
                    initial_ms: g.backoff_initial_ms.unwrap_or(1_000).max(1),
                    max_ms: g.backoff_max_ms.unwrap_or(7_200_000).max(1),
                    multiplier: g.backoff_multiplier.unwrap_or(2.0).max(1.0),
                },
                Some(other) => bail!(
                    "[rocketmq.groups.{name}] backoff must be ladder or exponential, not {other:?}"
                ),
            };
            rocketmq.groups.insert(
                name.clone(),
                GroupPolicy {
                    max_delivery_attempts: g.max_delivery_attempts.map(|v| v.max(1)),
                    backoff,
                },
            );
        }
        let bridges = bridges::load(&file.bridges)?;
        let (mqtt_enabled, mqtt) = mqtt::load(&file.mqtt, args.mqtt_listen.as_deref(), src)?;
        let (http_enabled, http) = http::merge(args, src, &file.http)?;
        let alarms = &mut broker.alarms;
        if let Some(v) = file.alarms.memory_high_watermark_bytes {
            alarms.memory_high_watermark_bytes = (v > 0).then_some(v);
        }
        if let Some(v) = file.alarms.disk_free_limit_bytes {
            alarms.disk_free_limit_bytes = (v > 0).then_some(v);
        }

        let log_format = match src.pick(
            args.log_format.as_deref(),
            "log_format",
            file.log.format.as_deref(),
            "[log] format",
        ) {
            None | Some(("human", _)) => LogFormat::Human,
            Some(("json", _)) => LogFormat::Json,
            Some((other, origin)) => {
                return Err(invalid(
                    origin,
                    format!("must be human or json, not {other:?}"),
                ))
            }
        };
        let log_filter = args
            .log
            .clone()
            .or(file.log.filter)
            .unwrap_or_else(|| "info".to_string());
        let (stomp_enabled, stomp) = stomp::load(&file.stomp, args.stomp_listen.as_deref(), src)?;
        let tls = tls::load(&file.tls, src)?;
        if !kafka_enabled
            && !amqp_enabled
            && !rocketmq_enabled
            && !mqtt_enabled
            && !stomp_enabled
            && tls.amqp_listen.is_none()
        {
            bail!("every listener is off: enable kafka, amqp, rocketmq, mqtt or stomp");
        }
        if tls.mqtt_listen.is_some() && !mqtt_enabled {
            bail!(
                "[tls] mqtt_listen serves the MQTT gateway, which is off: keep plain MQTT on \
                 loopback only with [mqtt] listen = \"127.0.0.1:1883\""
            );
        }
        Ok(Settings {
            broker,
            kafka_enabled,
            kafka,
            amqp_enabled,
            amqp,
            rocketmq_enabled,
            rocketmq,
            mqtt_enabled,
            mqtt,
            bridges,
            stomp_enabled,
            stomp,
            http_enabled,
            http,
            tls,
            connections_per_source_max: file.connections.per_source_max,
            vhosts,
            log_format,
            log_filter,
        })
    }
}

/// The word that turns a listener off where an address is expected.
const OFF: &str = "off";

/// Where [`Settings::merge`] reads from: which arguments came from flags or env vars, and the
/// file's path, so that an unusable value is reported where the user can find it.
struct Sources<'a> {
    args: &'a ArgOrigins,
    file: Option<&'a Path>,
}

impl Sources<'_> {
    /// The argument `id`'s value (from its flag or env var) if given, else the file's value of
    /// `key` (as `[section] key`), each with its origin.
    /// Where a file-only key came from, for its error message.
    fn file_origin(&self, key: &'static str) -> Origin {
        let path = self.file.unwrap_or(Path::new("config file"));
        Origin::File {
            path: path.to_path_buf(),
            key,
        }
    }

    fn pick<T>(
        &self,
        flag: Option<T>,
        id: &str,
        file: Option<T>,
        key: &'static str,
    ) -> Option<(T, Origin)> {
        match flag {
            Some(value) => Some((value, self.args.of(id))),
            None => file.map(|value| (value, self.file_origin(key))),
        }
    }
}

fn invalid(origin: Origin, problem: String) -> anyhow::Error {
    InvalidSetting { origin, problem }.into()
}

/// Whether a listener runs, and the address to bind if one was given (with its origin). A flag
/// (or its env var) wins over the file: `off` turns the listener off, an address turns it on
/// even if the file says `enabled = false`. Without a flag, the file's `enabled` (default true)
/// and `listen` (which may also be `off`) decide.
fn listener_address(
    listen: Option<(&str, Origin)>,
    enabled: Option<bool>,
) -> (bool, Option<(&str, Origin)>) {
    match listen {
        Some((addr, _)) if addr.eq_ignore_ascii_case(OFF) => (false, None),
        Some((addr, origin @ (Origin::Flag(_) | Origin::Env(_)))) => (true, Some((addr, origin))),
        listen => (enabled.unwrap_or(true), listen),
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        anyhow::anyhow!(
            "cannot read config file {}: {}",
            shown.display(),
            io_reason(&e)
        )
    })?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// The OS's description of `error` as a sentence fragment: without its error number (the text
/// already says it) and starting in lower case, as it follows a colon.
fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match error.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(text.clone(), str::to_string),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The address to bind, or why `addr` is not one (said for [`InvalidSetting`]).
fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let unusable = |why: String| format!("{addr:?} is not HOST:PORT or off ({why})");
    addr.to_socket_addrs()
        .map_err(|e| unusable(e.to_string()))?
        .next()
        .ok_or_else(|| unusable("it resolves to no address".to_string()))
}

/// Host and port of an advertised address, or why `s` is not one.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{s:?} is not HOST:PORT: {port:?} is not a port"))?;
    Ok((
        host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merges with every argument taken as a flag and no file path.
    pub(super) fn merge(args: &ServeArgs, file: FileConfig) -> Result<Settings> {
        let origins = ArgOrigins::default();
        let sources = Sources {
            args: &origins,
            file: None,
        };
        Settings::merge(args, &sources, file)
    }

    #[test]
    fn zero_config_defaults() {
        let s = merge(&ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(s.broker.data_dir, PathBuf::from("porter-data"));
        assert_eq!(s.kafka.listen.to_string(), "0.0.0.0:9092");
        assert_eq!(
            (s.kafka.advertised_host.as_str(), s.kafka.advertised_port),
            ("localhost", 9092)
        );
        assert!(matches!(s.broker.log_defaults.flush, FlushMode::Group));
    }

    #[test]
    fn flags_beat_file() {
        let file: FileConfig = toml::from_str(
            r#"
            data_dir = "/from/file"
            [kafka]
            listen = "127.0.0.1:1111"
            [storage]
            flush = "never"
            retention_ms = -1
            compaction_interval_ms = 200
            writer_threads = 4
            syncfs_min_logs = 0
            "#,
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some("/from/flag".into()),
            kafka_listen: Some("127.0.0.1:2222".into()),
            ..ServeArgs::default()
        };
        let s = merge(&args, file).unwrap();
        assert_eq!(s.broker.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(s.kafka.listen.port(), 2222);
        assert_eq!(s.kafka.advertised_host, "127.0.0.1");
        assert!(matches!(s.broker.log_defaults.flush, FlushMode::Never));
        assert_eq!(s.broker.log_defaults.retention_ms, None);
        assert_eq!(s.broker.compaction_interval_ms, 200);
        assert_eq!(s.broker.commit.writer_threads, 4);
        assert_eq!(s.broker.commit.syncfs_min_logs, 0);
        assert_eq!(
            s.broker.commit.writer_queue_jobs,
            porter_core::commit::WRITER_QUEUE_JOBS_DEFAULT
        );
    }

    #[test]
    fn listeners_turn_off_by_flag_or_file() {
        let off_flag = ServeArgs {
            kafka_listen: Some("off".into()),
            ..ServeArgs::default()
        };
        let s = merge(&off_flag, FileConfig::default()).unwrap();
        assert!(!s.kafka_enabled && s.amqp_enabled);

        let file: FileConfig = toml::from_str(
            r#"
            [amqp]
            enabled = false
            [kafka]
            write_stall_ms = 500
            idle_ms = 0
            connection_memory_bytes_max = 8388608
            "#,
        )
        .unwrap();
        let s = merge(&ServeArgs::default(), file).unwrap();
        assert!(s.kafka_enabled && !s.amqp_enabled);
        assert_eq!(
            (
                s.kafka.write_stall_ms,
                s.kafka.idle_ms,
                s.kafka.connection_memory_bytes_max
            ),
            (500, 0, 8 << 20)
        );

        // An address given as a flag turns a listener back on.
        let file: FileConfig = toml::from_str("[amqp]\nlisten = \"off\"").unwrap();
        let args = ServeArgs {
            amqp_listen: Some("127.0.0.1:5673".into()),
            ..ServeArgs::default()
        };
        let s = merge(&args, file).unwrap();
        assert!(s.amqp_enabled);
        assert_eq!(s.amqp.listen.port(), 5673);

        let two_off = ServeArgs {
            kafka_listen: Some("off".into()),
            amqp_listen: Some("OFF".into()),
            ..ServeArgs::default()
        };
        let s = merge(&two_off, FileConfig::default()).unwrap();
        assert!(s.rocketmq_enabled, "RocketMQ alone is a broker too");
        let all_off = ServeArgs {
            rocketmq_listen: Some("off".into()),
            stomp_listen: Some("off".into()),
            mqtt_listen: Some("off".into()),
            ..two_off
        };
        assert!(merge(&all_off, FileConfig::default()).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("nonsense = 1").is_err());
        let args = ServeArgs {
            flush: Some("sometimes".into()),
            ..ServeArgs::default()
        };
        assert!(merge(&args, FileConfig::default()).is_err());
    }

    #[test]
    fn an_unusable_value_names_where_it_came_from() {
        let file: FileConfig = toml::from_str("[storage]\nflush = \"bogus\"").unwrap();
        let origins = ArgOrigins::default();
        let sources = Sources {
            args: &origins,
            file: Some(Path::new("c.toml")),
        };
        let e = Settings::merge(&ServeArgs::default(), &sources, file).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml: [storage] flush: must be group, interval or never, not \"bogus\""
        );
        let args = ServeArgs {
            default_partitions: Some(0),
            ..ServeArgs::default()
        };
        let e = merge(&args, FileConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--default-partitions: must be at least 1, not 0"
        );
    }
}
