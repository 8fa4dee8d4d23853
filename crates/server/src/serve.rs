//! `porter serve`: open the broker, bind listeners, serve, and stop in a fixed order on
//! SIGTERM / SIGINT: stop accepting, ask each connection for its protocol's goodbye and let it
//! answer what it read (bounded by the drain deadline), flush and close every log, write the
//! clean-shutdown marker, exit 0.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use porter_core::bridge::BridgeSpec;
use porter_core::{Broker, CoreError};
use porter_gateway_http::{WebSocketRoute, MQTT_SUBPROTOCOLS, STOMP_SUBPROTOCOLS};
use porter_gateway_kafka::server::kafka_listener;
use porter_gateway_kafka::KafkaProtocol;
use porter_gateway_kit::Listener;
use porter_gateway_mqtt::MqttProtocol;
use porter_gateway_rocketmq::RocketmqProtocol;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::limits::{BLOCKING_THREADS_MAX, SHUTDOWN_DRAIN_MAX};
use crate::settings::{LogFormat, Settings};

/// Why `porter serve` failed: before it listened (said on stderr as one sentence, like a
/// configuration error, since there is no running broker whose log it belongs to) or after.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0:#}")]
    Startup(anyhow::Error),
    #[error("{0:#}")]
    Running(anyhow::Error),
}

pub fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_wanted())
        .with_writer(|| LogSink);
    match settings.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The log's stderr, which never fails. When stderr is gone (`porter serve | less` after `q`, a
/// killed `tee`, a closed journal pipe), tracing-subscriber reports the failed write with
/// `eprintln!`, which panics on the same broken stderr: one lost log line would take down the
/// broker mid-run and skip its clean shutdown. Losing log lines is the lesser harm, so a failed
/// write counts as written.
struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Colour only for a person watching: escape codes in a redirected log (a file, journald, a
/// pipe to grep) are noise. `NO_COLOR` (set and not empty, see no-color.org) turns it off on a
/// terminal too.
fn colour_wanted() -> bool {
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_colour
}

pub fn run(settings: Settings) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("porter")
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .build()
        .context("starting the async runtime")
        .map_err(ServeError::Startup)?;
    runtime.block_on(async {
        // Before anything binds: a SIGTERM that arrives while the broker starts (a supervisor,
        // a test that saw the first port open) then stops it cleanly once started, instead of
        // killing it with the signal's default action.
        let mut signals = Signals::install()
            .context("installing the SIGTERM, SIGINT and SIGHUP handlers")
            .map_err(ServeError::Startup)?;
        let hup = signals.hup.take().expect("installed above");
        let running = start(settings, hup).await.map_err(ServeError::Startup)?;
        running.serve(signals).await.map_err(ServeError::Running)
    })
}

/// A started broker with its listeners serving, until a signal.
struct Running {
    broker: Arc<Broker>,
    gateways: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    shutdown: CancellationToken,
}

/// Opens the broker and binds every listener; each listener is bound (and its limits checked)
/// before any serves, so a bad address or limit stops start-up instead of leaving a
/// half-started broker.
async fn start(mut settings: Settings, hup: tokio::signal::unix::Signal) -> Result<Running> {
    let started = Instant::now();
    if let Some(max) = settings.connections_per_source_max {
        porter_gateway_kit::limits::set_connections_per_source_max(max);
    }
    let chat_history = chat_history_bridge(&settings);
    let data_dir = std::path::absolute(&settings.broker.data_dir)
        .unwrap_or_else(|_| settings.broker.data_dir.clone());
    let config = settings.broker;
    let broker = tokio::task::spawn_blocking(move || Broker::open(config))
        .await?
        .map_err(|e| match e {
            // Already one sentence naming the directory.
            e @ CoreError::DataDir { .. } => anyhow::Error::new(e),
            e => anyhow::Error::new(e)
                .context(format!("opening data directory {}", data_dir.display())),
        })?;
    broker.start_background_tasks();

    for vhost in &settings.vhosts {
        broker
            .create_vhost(vhost)
            .await
            .with_context(|| format!("creating virtual host {vhost:?}"))?;
    }

    let shutdown = CancellationToken::new();
    let mut gateways = Vec::new();
    let tls = crate::tls::load(&settings.tls).await?;
    tokio::spawn(crate::tls::reload_on_sighup(
        hup,
        tls.clone(),
        shutdown.clone(),
    ));
    let mut tls_addrs: Vec<(&'static str, String)> = Vec::new();
    // Every listener's connections, for the management API's /api/connections.
    let mut registries = Vec::new();
    let mut kafka_addr = "off".to_string();
    let mut kafka_advertised = "off".to_string();
    let mut kafka_security = "off".to_string();
    let mut amqp_addr = "off".to_string();
    if settings.kafka_enabled {
        let tcp = bind("Kafka", "--kafka-listen", settings.kafka.listen).await?;
        let bound = tcp.local_addr()?;
        // Port 0 let the OS choose: clients must be told the port it chose, not 0.
        if settings.kafka.advertised_port == 0 {
            settings.kafka.advertised_port = bound.port();
        }
        let listener = kafka_listener(tcp, &settings.kafka, SHUTDOWN_DRAIN_MAX)
            .context("Kafka listener limits")?;
        registries.push(listener.registry());
        kafka_addr = bound.to_string();
        kafka_advertised = format!(
            "{}:{}",
            settings.kafka.advertised_host, settings.kafka.advertised_port
        );
        let mechanisms: Vec<&str> = settings
            .kafka
            .sasl_mechanisms
            .iter()
            .map(|m| m.name())
            .collect();
        kafka_security = if mechanisms.is_empty() {
            "PLAINTEXT (no authentication)".to_string()
        } else {
            format!("SASL_PLAINTEXT {}", mechanisms.join(","))
        };
        let protocol = Arc::new(KafkaProtocol::new(broker.clone(), settings.kafka.clone()));
        let stop = shutdown.clone();
        let served = match tls.as_ref().filter(|_| settings.tls.kafka) {
            Some(tls) => {
                kafka_security = kafka_security.replace("PLAINTEXT", "SSL");
                let listener = listener.with_acceptor(tls.acceptor());
                tokio::spawn(async move {
                    listener.serve(protocol, stop).await;
                })
            }
            None => tokio::spawn(async move {
                listener.serve(protocol, stop).await;
            }),
        };
        gateways.push(("Kafka", served));
    }
    // AMQP, STOMP and the management API log in the broker's users (crate::users).
    crate::users::seed(&broker, &settings.amqp.users, &settings.vhosts).await;
    let users = Arc::new(crate::users::BrokerUsers::new(broker.clone()));
    if settings.amqp_enabled {
        let tcp = bind("AMQP 0-9-1", "--amqp-listen", settings.amqp.listen).await?;
        amqp_addr = tcp.local_addr()?.to_string();
        let listener = porter_gateway_amqp::amqp_listener(
            tcp,
            &settings.amqp,
            SHUTDOWN_DRAIN_MAX,
            Some(users.clone()),
        )
        .context("AMQP listener limits")?;
        registries.push(listener.registry());
        gateways.push((
            "AMQP",
            tokio::spawn(porter_gateway_amqp::serve(
                listener,
                broker.clone(),
                settings.amqp.clone(),
                shutdown.clone(),
            )),
        ));
    }
    if let (Some(tls), Some(addr)) = (&tls, settings.tls.amqp_listen) {
        let tcp = bind("AMQPS", "[tls] amqp_listen", addr).await?;
        tls_addrs.push(("amqps", tcp.local_addr()?.to_string()));
        let limits = settings.amqp.listener_limits(SHUTDOWN_DRAIN_MAX);
        let listener = Listener::new(tcp, "amqps", limits)
            .context("AMQPS listener limits")?
            .with_authenticator(users.clone())
            .with_acceptor(tls.acceptor());
        registries.push(listener.registry());
        gateways.push((
            "AMQPS",
            tokio::spawn(porter_gateway_amqp::serve(
                listener,
                broker.clone(),
                settings.amqp.clone(),
                shutdown.clone(),
            )),
        ));
    }
    let mut rocketmq_addr = "off".to_string();
    let rocketmq_authentication = settings.rocketmq.authentication;
    if settings.rocketmq_enabled {
        let tcp = bind("RocketMQ", "--rocketmq-listen", settings.rocketmq.listen).await?;
        rocketmq_addr = tcp.local_addr()?.to_string();
        let limits = settings.rocketmq.listener_limits(SHUTDOWN_DRAIN_MAX);
        let listener =
            Listener::new(tcp, "rocketmq", limits).context("RocketMQ listener limits")?;
        registries.push(listener.registry());
        let (for_open, config) = (broker.clone(), settings.rocketmq);
        let protocol =
            tokio::task::spawn_blocking(move || RocketmqProtocol::open(for_open, config))
                .await?
                .context("opening the RocketMQ gateway's transaction store")?;
        let protocol = Arc::new(protocol);
        let stop = shutdown.clone();
        let served = match tls.as_ref().filter(|_| settings.tls.rocketmq) {
            Some(tls) => {
                let listener = listener.with_acceptor(tls.acceptor_with_alpn(&[b"h2"]));
                tokio::spawn(async move {
                    listener.serve(protocol, stop).await;
                })
            }
            None => tokio::spawn(async move {
                listener.serve(protocol, stop).await;
            }),
        };
        gateways.push(("RocketMQ", served));
    }
    let mut bridges = std::mem::take(&mut settings.bridges);
    bridges.extend(chat_history.clone());
    porter_core::bridge::start_all(&broker, &bridges, shutdown.clone())
        .await
        .context("starting the bridges")?;
    let mut mqtt_addr = "off".to_string();
    // The management API answers with the broker's users (RabbitMQ's API needs a login too).
    let management = Arc::new(porter_management::Management::new(
        broker.clone(),
        Some(users.clone() as Arc<dyn porter_gateway_kit::auth::Authenticator>),
    ));
    // Rates are read only through the HTTP listener: no sampling without it.
    if settings.http_enabled {
        porter_management::rates::Rates::spawn_sampler(&management);
    }
    let mut routes =
        porter_gateway_http::Routes::new().merge(porter_management::router(management.clone()));
    if let Some(BridgeSpec::ExchangeToTopic { topic, .. }) = chat_history {
        routes = routes.chat_history(broker.clone(), topic);
    }
    if settings.mqtt_enabled {
        let tcp = bind("MQTT", "--mqtt-listen", settings.mqtt.listen).await?;
        mqtt_addr = tcp.local_addr()?.to_string();
        let limits = settings.mqtt.listener_limits(SHUTDOWN_DRAIN_MAX);
        let authenticator = Some(users.clone() as Arc<dyn porter_gateway_kit::auth::Authenticator>);
        let protocol = MqttProtocol::open(
            broker.clone(),
            settings.mqtt,
            authenticator,
            shutdown.clone(),
        )
        .await
        .context("opening the MQTT gateway's retained messages")?;
        // The same protocol (client ids, sessions, retained) over WebSocket at /mqtt.
        let websocket = WebSocketRoute::new(
            "mqtt-ws",
            MQTT_SUBPROTOCOLS,
            Arc::new(protocol.clone()),
            limits,
            settings.http.websocket.clone(),
        )
        .context("MQTT WebSocket limits")?;
        routes = routes.websocket("/mqtt", websocket);
        if let (Some(tls), Some(addr)) = (&tls, settings.tls.mqtt_listen) {
            let tcp = bind("MQTTS", "[tls] mqtt_listen", addr).await?;
            tls_addrs.push(("mqtts", tcp.local_addr()?.to_string()));
            let limits = protocol.listener_limits(SHUTDOWN_DRAIN_MAX);
            let listener = Listener::new(tcp, "mqtts", limits)
                .context("MQTTS listener limits")?
                .with_acceptor(tls.acceptor());
            registries.push(listener.registry());
            gateways.push((
                "MQTTS",
                tokio::spawn(porter_gateway_mqtt::serve(
                    listener,
                    protocol.clone(),
                    shutdown.clone(),
                )),
            ));
        }
        let listener = porter_gateway_mqtt::mqtt_listener(tcp, &protocol, SHUTDOWN_DRAIN_MAX)
            .context("MQTT listener limits")?;
        registries.push(listener.registry());
        gateways.push((
            "MQTT",
            tokio::spawn(porter_gateway_mqtt::serve(
                listener,
                protocol,
                shutdown.clone(),
            )),
        ));
    }
    // One STOMP protocol for the TCP listener and (when the HTTP listener serves it) `/ws`.
    let stomp = porter_gateway_stomp::StompProtocol::new(broker.clone(), settings.stomp.clone())
        .with_authenticator(users.clone());
    let mut stomp_addr = "off".to_string();
    if settings.stomp_enabled {
        let tcp = bind("STOMP", "--stomp-listen", settings.stomp.listen).await?;
        stomp_addr = tcp.local_addr()?.to_string();
        let listener = porter_gateway_stomp::stomp_listener(
            tcp,
            &settings.stomp,
            SHUTDOWN_DRAIN_MAX,
            Some(users.clone()),
        )
        .context("STOMP listener limits")?;
        registries.push(listener.registry());
        let stop = shutdown.clone();
        gateways.push((
            "STOMP",
            tokio::spawn(porter_gateway_stomp::serve(listener, stomp.clone(), stop)),
        ));
    }
    if let (Some(tls), Some(addr)) = (&tls, settings.tls.stomp_listen) {
        let tcp = bind("STOMP over TLS", "[tls] stomp_listen", addr).await?;
        tls_addrs.push(("stomps", tcp.local_addr()?.to_string()));
        let limits = settings.stomp.listener_limits(SHUTDOWN_DRAIN_MAX);
        let listener = Listener::new(tcp, "stomps", limits)
            .context("STOMP over TLS listener limits")?
            .with_acceptor(tls.acceptor());
        registries.push(listener.registry());
        gateways.push((
            "STOMPS",
            tokio::spawn(porter_gateway_stomp::serve(
                listener,
                stomp.clone(),
                shutdown.clone(),
            )),
        ));
    }
    // The same STOMP protocol over WebSocket at /ws.
    let stomp_ws = WebSocketRoute::new(
        "stomp-ws",
        STOMP_SUBPROTOCOLS,
        Arc::new(stomp.clone()),
        settings.stomp.listener_limits(SHUTDOWN_DRAIN_MAX),
        settings.http.websocket.clone(),
    )
    .context("STOMP WebSocket limits")?;
    routes = routes.websocket("/ws", stomp_ws);
    registries.extend(routes.endpoints().iter().map(|e| e.registry()));
    let http_addr = start_http(
        settings.http_enabled,
        &settings.http,
        routes,
        &shutdown,
        &mut gateways,
        tls.as_ref().filter(|_| settings.tls.http),
    )
    .await?;
    let mut addrs = vec![
        ("kafka", &kafka_addr),
        ("amqp", &amqp_addr),
        ("rocketmq", &rocketmq_addr),
        ("mqtt", &mqtt_addr),
        ("stomp", &stomp_addr),
        ("http", &http_addr),
    ];
    addrs.extend(tls_addrs.iter().map(|(protocol, addr)| (*protocol, addr)));
    let listeners = bound_listeners(&addrs);
    let public = listeners.iter().any(|l| {
        ["amqp", "stomp", "mqtt", "http"].contains(&l.protocol) && !l.addr.ip().is_loopback()
    });
    crate::users::warn_if_only_guest(&broker, public);
    let kafka_public = listeners
        .iter()
        .any(|l| l.protocol == "kafka" && !l.addr.ip().is_loopback());
    if kafka_public && settings.kafka.sasl_mechanisms.is_empty() {
        tracing::warn!(
            "the Kafka listener on {kafka_addr} does not authenticate: anyone who reaches it may \
             produce, consume and delete topics. Set [kafka] sasl_mechanisms (docs/security.md)"
        );
    }
    let rocketmq_public = listeners
        .iter()
        .any(|l| l.protocol == "rocketmq" && !l.addr.ip().is_loopback());
    if rocketmq_public && !rocketmq_authentication {
        tracing::warn!(
            "the RocketMQ listener on {rocketmq_addr} does not authenticate: anyone who reaches \
             it may produce and consume. Set [rocketmq] authentication = true (docs/security.md)"
        );
    }
    management.mark_ready(listeners, registries);
    tracing::info!(
        kafka = %kafka_addr,
        kafka_advertised = %kafka_advertised,
        kafka_security = %kafka_security,
        amqp = %amqp_addr,
        rocketmq = %rocketmq_addr,
        mqtt = %mqtt_addr,
        stomp = %stomp_addr,
        http = %http_addr,
        data_dir = %broker.config().data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        tls = ?tls_addrs,
        "porter is listening"
    );
    Ok(Running {
        broker,
        gateways,
        shutdown,
    })
}

/// The listeners that are on (their address parses), for `/api/overview`.
fn bound_listeners(addrs: &[(&'static str, &String)]) -> Vec<porter_management::ListenerInfo> {
    addrs
        .iter()
        .filter_map(|(protocol, addr)| {
            addr.parse()
                .ok()
                .map(|addr| porter_management::ListenerInfo { protocol, addr })
        })
        .collect()
}

/// The bridge that keeps the chat page's rooms (MQTT `chat/rooms/<room>`) in a topic, so a page
/// joining a room reads its history from the log: when MQTT and the HTTP listener both run and
/// `[http] chat_history_topic` is not off.
fn chat_history_bridge(settings: &Settings) -> Option<BridgeSpec> {
    if !(settings.http_enabled && settings.mqtt_enabled) {
        return None;
    }
    Some(BridgeSpec::ExchangeToTopic {
        vhost: settings.mqtt.vhost.clone(),
        exchange: settings.mqtt.exchange.clone(),
        binding_key: "chat.rooms.*".to_string(),
        topic: settings.http.chat_history_topic.clone()?,
    })
}

/// Binds and starts the HTTP listener (WebSocket endpoints, chat page); its address or "off".
async fn start_http(
    enabled: bool,
    config: &porter_gateway_http::HttpConfig,
    routes: porter_gateway_http::Routes,
    shutdown: &CancellationToken,
    gateways: &mut Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    tls: Option<&porter_gateway_kit::tls_files::Tls>,
) -> Result<String> {
    if !enabled {
        return Ok("off".to_string());
    }
    let tcp = bind("HTTP", "--http-listen", config.listen).await?;
    let addr = tcp.local_addr()?.to_string();
    let listener =
        porter_gateway_http::HttpListener::new(tcp, config.clone(), routes, SHUTDOWN_DRAIN_MAX)
            .context("HTTP listener limits")?
            .with_tls(tls.map(|t| t.acceptor_with_alpn(&[b"http/1.1"])));
    let stop = shutdown.clone();
    gateways.push((
        "HTTP",
        tokio::spawn(async move {
            listener.serve(stop).await;
        }),
    ));
    Ok(addr)
}

impl Running {
    /// Serves until SIGTERM or SIGINT, then stops in order (see the module doc).
    async fn serve(self, signals: Signals) -> Result<()> {
        signals.wait().await;
        tracing::info!("shutting down: no new connections");
        self.shutdown.cancel();
        for (name, gateway) in self.gateways {
            gateway
                .await
                .with_context(|| format!("{name} listener task"))?;
        }
        self.broker.shutdown().await.context("closing the broker")?;
        Ok(())
    }
}

/// Binds `protocol`'s listener. A port in use is the usual first-hour trouble (the protocol's own
/// broker already runs here), so the error says which flag moves or turns off the listener.
async fn bind(protocol: &str, flag: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen for {protocol} clients on {addr}: the address is in use \
                 (another {protocol} broker?); give {flag} another address, or {flag} off"
            )
        } else {
            anyhow::anyhow!("cannot listen for {protocol} clients on {addr}: {e}")
        }
    })
}

/// The stop signals, handled from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    /// SIGHUP reloads the TLS certificate (taken by `start`).
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: Some(signal(SignalKind::hangup())?),
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
