//! `porter serve`: open the broker, bind listeners, serve, and stop in a fixed order on
//! SIGTERM / SIGINT: stop accepting, ask each connection for its protocol's goodbye and let it
//! answer what it read (bounded by the drain deadline), flush and close every log, write the
//! clean-shutdown marker, exit 0.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use porter_core::Broker;
use porter_gateway_kafka::server::kafka_listener;
use porter_gateway_kafka::KafkaProtocol;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::limits::{BLOCKING_THREADS_MAX, SHUTDOWN_DRAIN_MAX};
use crate::settings::{LogFormat, Settings};

pub fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(settings: Settings) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("porter")
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> Result<()> {
    let started = Instant::now();
    let data_dir = settings.broker.data_dir.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(settings.broker))
        .await?
        .with_context(|| format!("opening data directory {}", data_dir.display()))?;
    broker.start_background_tasks();

    for vhost in &settings.vhosts {
        broker
            .create_vhost(vhost)
            .await
            .with_context(|| format!("creating virtual host {vhost:?}"))?;
    }

    // Each listener is bound (and its limits checked) before any serves, so a bad address or
    // limit stops start-up instead of leaving a half-started broker.
    let shutdown = CancellationToken::new();
    let mut gateways = Vec::new();
    let mut kafka_addr = "off".to_string();
    let mut amqp_addr = "off".to_string();
    if settings.kafka_enabled {
        let tcp = TcpListener::bind(settings.kafka.listen)
            .await
            .with_context(|| format!("binding Kafka listener {}", settings.kafka.listen))?;
        let listener = kafka_listener(tcp, &settings.kafka, SHUTDOWN_DRAIN_MAX)
            .context("Kafka listener limits")?;
        kafka_addr = listener.local_addr()?.to_string();
        let protocol = Arc::new(KafkaProtocol::new(broker.clone(), settings.kafka.clone()));
        let stop = shutdown.clone();
        gateways.push((
            "Kafka",
            tokio::spawn(async move {
                listener.serve(protocol, stop).await;
            }),
        ));
    }
    if settings.amqp_enabled {
        let tcp = TcpListener::bind(settings.amqp.listen)
            .await
            .with_context(|| format!("binding AMQP listener {}", settings.amqp.listen))?;
        amqp_addr = tcp.local_addr()?.to_string();
        gateways.push((
            "AMQP",
            tokio::spawn(porter_gateway_amqp::serve(
                tcp,
                broker.clone(),
                settings.amqp,
                shutdown.clone(),
                SHUTDOWN_DRAIN_MAX,
            )),
        ));
    }
    tracing::info!(
        kafka = %kafka_addr,
        amqp = %amqp_addr,
        advertised = %format!("{}:{}", settings.kafka.advertised_host, settings.kafka.advertised_port),
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "porter is listening"
    );

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections");
    shutdown.cancel();
    for (name, gateway) in gateways {
        gateway
            .await
            .with_context(|| format!("{name} listener task"))?;
    }
    broker.shutdown().await.context("closing the broker")?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
