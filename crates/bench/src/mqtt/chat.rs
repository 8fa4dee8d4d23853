//! Chat: `--connections` clients; client i joins room `i mod --rooms` (`chat/room/<r>`) and has
//! its own inbox (`chat/user/<i>`), both subscribed with one SUBSCRIBE before the first message.
//! A paced load of `--rate` msgs/s in total, each from a random client: a `--p2p-ratio` share to
//! a random user's inbox (one delivery), the rest to a random room (one delivery per member,
//! the sender included). Always open loop: latency from the intended send time.
//!
//! A few pacer tasks ([`PACERS`]) share the rate; they never wait on a sender: a sender whose
//! request queue is full (its connection cannot keep up) is a counted error, so one slow
//! connection cannot hold back the schedule of all the others.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use rumqttc::{AsyncClient, QoS, SubscribeFilter};

use super::plan::{self, Rng};
use super::{drain, Counters, Fleet, Meter, MqttArgs, Outcome};
use crate::pacing::{due, share};
use crate::stats::{now_us, stamped_payload};

/// Tasks that generate the paced load.
const PACERS: usize = 4;
/// Chat is always paced; this is the rate without `--rate`.
const DEFAULT_RATE: u64 = 1000;
/// Seed of pacer 0 (pacer i uses SEED + i): every run and broker sees the same message mix.
const SEED: u64 = 0x6368_6174;

/// What one pacer sent: publishes queued, deliveries they owe, publishes that could not be queued.
#[derive(Default)]
struct Paced {
    sent: u64,
    expected: u64,
    refused: u64,
}

pub async fn run(args: &MqttArgs, run_id: &str, meter: Meter) -> Result<Outcome> {
    let (connections, rooms) = (args.chat.connections.max(1), args.chat.rooms.max(1));
    let qos = args.qos();
    let rate = args.rate.unwrap_or(DEFAULT_RATE).max(1);
    let fleet = Fleet::start(args, run_id, connections, 0);
    for (id, client) in fleet.clients.iter().enumerate() {
        client
            .subscribe_many([
                SubscribeFilter::new(plan::room_topic(plan::room_of(id, rooms)), qos),
                SubscribeFilter::new(plan::inbox_topic(id), qos),
            ])
            .await?;
    }
    let setup = Instant::now();
    fleet.ready(connections as u64).await?;
    eprintln!(
        "{connections} clients connected and subscribed in {:.1}s",
        setup.elapsed().as_secs_f64()
    );

    let clients: Arc<Vec<AsyncClient>> = Arc::new(fleet.clients.clone());
    let deadline = Instant::now() + Duration::from_secs(args.common.max_seconds);
    let first = meter.sample();
    let started = Instant::now();
    let start_us = now_us();
    let pacers: Vec<_> = (0..PACERS)
        .map(|i| {
            let clients = clients.clone();
            let (records, rate) = (share(args.records, i, PACERS), share(rate, i, PACERS));
            let (bytes, ratio) = (args.record_bytes, args.chat.p2p_ratio);
            tokio::spawn(async move {
                let mut rng = Rng::new(SEED + i as u64);
                let mut paced = Paced::default();
                for k in 0..records {
                    let at = due(k, rate.max(1));
                    if at >= deadline.saturating_duration_since(started) {
                        break;
                    }
                    tokio::time::sleep_until((started + at).into()).await;
                    let (sender, to) = plan::pick(&mut rng, connections, rooms, ratio);
                    let payload = stamped_payload(bytes, start_us + at.as_micros() as u64);
                    match clients[sender].try_publish(to.topic(), qos, false, payload) {
                        Ok(()) => {
                            paced.sent += 1;
                            paced.expected += to.deliveries(connections, rooms);
                        }
                        Err(_) => paced.refused += 1,
                    }
                }
                paced
            })
        })
        .collect();
    let mut paced = Paced::default();
    for pacer in pacers {
        let p = pacer.await?;
        paced.sent += p.sent;
        paced.expected += p.expected;
        paced.refused += p.refused;
    }
    // The schedule's length, not the drain's: publishes/s is the offered rate actually sent.
    let produce_seconds = started.elapsed().as_secs_f64();
    let counters: &Counters = &fleet.counters;
    let (sent, expected) = (paced.sent, paced.expected);
    let consume_seconds = drain(
        counters,
        |c| {
            c.deliveries.load(Ordering::Relaxed) >= expected
                && (qos == QoS::AtMostOnce || c.published(qos) >= sent)
        },
        started,
        deadline,
    )
    .await;
    let published = match qos {
        QoS::AtMostOnce => sent,
        _ => counters.published(qos),
    };
    let errors =
        paced.refused + sent.saturating_sub(published) + counters.errors.load(Ordering::Relaxed);
    let deliveries = counters.deliveries.load(Ordering::Relaxed);
    let last = meter.sample();
    drop(clients);
    let latency = fleet.stop().await;
    Ok(Outcome {
        scenario: format!(
            "mqtt-chat {connections}c/{rooms}r p2p {} qos{} @{rate}/s",
            args.chat.p2p_ratio, args.qos
        ),
        published,
        expected,
        deliveries,
        errors,
        produce_seconds,
        consume_seconds: consume_seconds.max(f64::EPSILON),
        latency,
        subscribers: None,
        connections: connections as u64,
        load: (first, last),
    })
}
