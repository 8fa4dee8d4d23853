//! Chat over AMQP 0-9-1, the shape `examples/chat.py` shows and the MQTT driver's chat measures
//! on Mosquitto and NATS: `--connections` clients, client i in room `i mod --rooms`. Each has one
//! exclusive, server-named queue bound to a topic exchange under `room.<r>` and `user.<i>` and
//! consumed with no-ack; chat lines are transient (latency first, as chat services run RabbitMQ).
//! A paced load of `--rate` msgs/s (always open loop: latency from the intended send time) goes
//! from a few publisher connections: a `--p2p-ratio` share to a random user's inbox (one
//! delivery), the rest to a random room (one per member). Same message mix as the MQTT driver
//! (its seeded generator), so the deliveries owed are comparable.
//!
//! Unlike the MQTT chat, messages are sent by dedicated publisher connections rather than by the
//! sending client's own connection: a lapin connection has its own I/O thread, and publishing
//! from 2,000 of them would measure the client's thread hand-offs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ExchangeKind};

use super::{connect, connect_with_frame_max, load_suffix, result, AmqpArgs, Totals};
use crate::mqtt::plan::{self, Destination, Rng};
use crate::pacing::{due, share};
use crate::proc_stats;
use crate::progress::Progress;
use crate::report::{RunResult, SetupResult};
use crate::stats::{latency_histogram, now_us, sent_at, stamped_payload};

/// Publisher connections sharing the rate.
const PUBLISHERS: usize = 4;
/// Chat is always paced; this is the rate without `--rate`.
const DEFAULT_RATE: u64 = 1000;
/// The MQTT driver's seed, so both drivers send the same mix.
const SEED: u64 = 0x6368_6174;
/// Most clients joining at once (`--joining-at-once`; each is a TCP connection, a channel, a
/// queue and two bindings, so at most this many client threads are busy connecting).
const MAX_JOINING_AT_ONCE: usize = 1024;
/// The frame size chat clients propose: the smallest lapin allows, far above a chat line (see
/// [`connect_with_frame_max`] for what the default 128 KiB costs per connection).
const CLIENT_FRAME_MAX: u32 = 8192;
/// After the last publish, how long without a new delivery counts the rest as lost.
const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// More clients than this is a typo (each is a connection and a client I/O thread).
const MAX_CONNECTIONS: usize = 20_000;

pub async fn run(args: &AmqpArgs, progress: Arc<Progress>) -> Result<RunResult> {
    let (connections, rooms) = (args.chat.connections, args.chat.rooms.max(1));
    anyhow::ensure!(
        (1..=MAX_CONNECTIONS).contains(&connections),
        "--connections must be between 1 and {MAX_CONNECTIONS}"
    );
    anyhow::ensure!(
        (1..=MAX_JOINING_AT_ONCE).contains(&args.joining_at_once),
        "--joining-at-once must be between 1 and {MAX_JOINING_AT_ONCE}"
    );
    let exchange = format!("{}-{}-chat", args.queue, now_us());
    let setup = connect(&args.url).await?;
    let channel = setup.create_channel().await?;
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("declaring the chat exchange")?;
    let outcome = measure(args, &exchange, connections, rooms, progress).await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done".into()).await;
    outcome
}

/// One connected chat client: its connection (kept open) and its delivery counter task.
struct Client {
    connection: Connection,
    reader: tokio::task::JoinHandle<()>,
}

async fn join(
    args: &AmqpArgs,
    exchange: &str,
    id: usize,
    rooms: usize,
    delivered: Arc<AtomicU64>,
    histogram: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    progress: Arc<Progress>,
) -> Result<Client> {
    let connection = connect_with_frame_max(&args.url, CLIENT_FRAME_MAX).await?;
    let channel = connection.create_channel().await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let room = plan::room_of(id, rooms);
    for key in [format!("room.{room}"), format!("user.{id}")] {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut deliveries = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let reader = tokio::spawn(async move {
        let mut local = latency_histogram();
        while let Some(Ok(delivery)) = deliveries.next().await {
            if let Some(sent) = sent_at(&delivery.data) {
                let _ = local.record(now_us().saturating_sub(sent).max(1));
            }
            delivered.fetch_add(1, Ordering::Relaxed);
            progress.consumed(1);
        }
        let _ = histogram.lock().expect("histogram lock").add(&local);
    });
    Ok(Client { connection, reader })
}

/// The AMQP routing key of a chat destination (the MQTT topics use `/`).
fn routing_key(destination: Destination) -> String {
    match destination {
        Destination::Room(room) => format!("room.{room}"),
        Destination::User(id) => format!("user.{id}"),
    }
}

/// Sends `count` chat lines at `rate`/s on a fixed schedule; returns (sent, deliveries owed).
async fn pace(
    args: &AmqpArgs,
    exchange: &str,
    index: usize,
    count: u64,
    rate: u64,
    start: Instant,
    progress: Arc<Progress>,
) -> Result<(u64, u64)> {
    let connection = connect(&args.url).await?;
    let channel = connection.create_channel().await?;
    let mut rng = Rng::new(SEED + index as u64);
    let (mut sent, mut owed) = (0, 0);
    let deadline = start + Duration::from_secs(args.common.max_seconds);
    for n in 0..count {
        let intended = start + due(n, rate);
        if intended > deadline {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(intended)).await;
        let (_, destination) = plan::pick(
            &mut rng,
            args.chat.connections,
            args.chat.rooms.max(1),
            args.chat.p2p_ratio,
        );
        // Stamped with the intended time: a late send shows in the latency.
        let lateness = Instant::now()
            .saturating_duration_since(intended)
            .as_micros() as u64;
        let payload = stamped_payload(args.record_bytes, now_us().saturating_sub(lateness));
        let published = channel
            .basic_publish(
                exchange.into(),
                routing_key(destination).into(),
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default(),
            )
            .await;
        if published.is_err() {
            progress.error(1);
            continue;
        }
        sent += 1;
        owed += destination.deliveries(args.chat.connections, args.chat.rooms.max(1));
        progress.produced(1);
    }
    let _ = connection.close(200, "done".into()).await;
    Ok((sent, owed))
}

async fn measure(
    args: &AmqpArgs,
    exchange: &str,
    connections: usize,
    rooms: usize,
    progress: Arc<Progress>,
) -> Result<RunResult> {
    let delivered = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let setup = Instant::now();
    let (broker_before, driver_before) = (
        args.common.broker_pid.and_then(proc_stats::sample),
        proc_stats::sample(std::process::id()),
    );
    let mut clients = Vec::with_capacity(connections);
    let mut joining = futures::stream::iter(0..connections)
        .map(|id| {
            join(
                args,
                exchange,
                id,
                rooms,
                delivered.clone(),
                histogram.clone(),
                progress.clone(),
            )
        })
        // A window, not batches: one slow client does not hold up the rest of its batch.
        .buffer_unordered(args.joining_at_once);
    while let Some(client) = joining.next().await {
        clients.push(client.context("a chat client joining")?);
    }
    drop(joining);
    let setup = SetupResult {
        clients: connections as u64,
        seconds: setup.elapsed().as_secs_f64(),
        broker_cpu_seconds: proc_stats::cost(
            broker_before,
            args.common.broker_pid.and_then(proc_stats::sample),
            0.0,
        )
        .0
        .map(|s| s.cpu_seconds),
        driver_cpu_seconds: proc_stats::cost(
            driver_before,
            proc_stats::sample(std::process::id()),
            0.0,
        )
        .0
        .map_or(0.0, |s| s.cpu_seconds),
    };
    eprintln!(
        "{connections} AMQP chat clients connected and bound in {:.1}s",
        setup.seconds
    );

    let rate = args.rate.unwrap_or(DEFAULT_RATE).max(1);
    let before = args.common.broker_pid.and_then(proc_stats::sample);
    let start = Instant::now();
    let pacers: Vec<_> = (0..PUBLISHERS)
        .map(|index| {
            let count = share(args.records, index, PUBLISHERS);
            let pacer_rate = share(rate, index, PUBLISHERS).max(1);
            pace(
                args,
                exchange,
                index,
                count,
                pacer_rate,
                start,
                progress.clone(),
            )
        })
        .collect();
    let (mut sent, mut owed) = (0, 0);
    for outcome in futures::future::join_all(pacers).await {
        let (s, o) = outcome?;
        sent += s;
        owed += o;
    }
    let produce_seconds = start.elapsed().as_secs_f64();
    // Drain: until every owed delivery arrived, or nothing arrived for DRAIN_IDLE.
    let (mut seen, mut idle_since) = (delivered.load(Ordering::Relaxed), Instant::now());
    while seen < owed && idle_since.elapsed() < DRAIN_IDLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now_seen = delivered.load(Ordering::Relaxed);
        if now_seen != seen {
            (seen, idle_since) = (now_seen, Instant::now());
        }
    }
    let consume_seconds = start.elapsed().as_secs_f64();
    let after = args.common.broker_pid.and_then(proc_stats::sample);
    // Closed as they joined, a window at a time: each close deletes the client's queue.
    futures::stream::iter(clients)
        .for_each_concurrent(args.joining_at_once, |client| async move {
            let _ = client.connection.close(200, "done".into()).await;
            let _ = client.reader.await;
        })
        .await;
    let consumed = delivered.load(Ordering::Relaxed);
    let lost = owed.saturating_sub(consumed);
    let scenario = format!(
        "amqp-chat {connections}c/{rooms}r p2p {}{}",
        args.chat.p2p_ratio,
        load_suffix(Some(rate))
    );
    let totals = Totals {
        produced: sent,
        consumed,
        errors: progress.errors() + lost,
        produce_seconds,
        consume_seconds,
    };
    let cost = proc_stats::cost(before, after, consumed as f64);
    let mut r = result(args, scenario, totals, &histogram, cost);
    r.rate = Some(rate);
    r.connections = Some(connections as u64);
    r.expected_deliveries = Some(owed);
    r.lost = Some(lost);
    r.setup = Some(setup);
    Ok(r)
}
