//! Fan-out: one publisher, `--subscribers` subscribers of one topic, every subscriber gets every
//! message. All subscriptions are acknowledged (SUBACK) before the first publish, so every
//! message is owed to every subscriber and a missing delivery is a loss, not a late joiner.
//!
//! Closed loop (no `--rate`): the publisher keeps at most `--inflight` messages per subscriber
//! undelivered ([`plan::window_open`]), so the throughput is what the broker sustains to *all*
//! subscribers, not how fast it accepts publishes into queues. Open loop: `--rate` msgs/s on a
//! fixed schedule, latency from the intended send time.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{drain, plan, Counters, Fleet, Meter, MqttArgs, Outcome};
use crate::pacing::due;
use crate::stats::{now_us, stamped_payload};

pub async fn run(args: &MqttArgs, run_id: &str, meter: Meter) -> Result<Outcome> {
    let subscribers = args.subscribers.max(1);
    let qos = args.qos();
    // A topic of this run only, so a session left over from another run never receives it.
    let topic = format!("bench/fanout/{run_id}");
    let subs = Fleet::start(args, run_id, subscribers, 1);
    for client in &subs.clients {
        client.subscribe(topic.as_str(), qos).await?;
    }
    let mut one = args.clone();
    one.tasks = 1;
    let publisher = Fleet::start(&one, run_id, 1, 0);
    subs.ready(subscribers as u64).await?;
    publisher.ready(0).await?;

    let n = subscribers as u64;
    let window = u64::from(args.inflight.max(1));
    let deadline = Instant::now() + Duration::from_secs(args.common.max_seconds);
    let first = meter.sample();
    let started = Instant::now();
    let start_us = now_us();
    let client = &publisher.clients[0];
    let delivered = &subs.counters;
    let (mut sent, mut errors) = (0u64, 0u64);
    'send: while sent < args.records {
        let stamp = match args.rate {
            Some(rate) => {
                let at = due(sent, rate);
                tokio::time::sleep_until((started + at).into()).await;
                start_us + at.as_micros() as u64
            }
            None => {
                while !plan::window_open(
                    sent,
                    delivered.deliveries.load(Ordering::Relaxed),
                    n,
                    window,
                ) {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        break 'send;
                    }
                    let _ = tokio::time::timeout(wait, delivered.progress.notified()).await;
                }
                now_us()
            }
        };
        if Instant::now() >= deadline {
            break;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let payload = stamped_payload(args.record_bytes, stamp);
        match tokio::time::timeout(wait, client.publish(topic.as_str(), qos, false, payload)).await
        {
            Ok(Ok(())) => sent += 1,
            // The event loop is gone (its error is counted by the fleet): nothing more can go.
            Ok(Err(_)) => {
                errors += 1;
                break;
            }
            Err(_) => break,
        }
    }
    let acked = |c: &Counters| qos == rumqttc::QoS::AtMostOnce || c.published(qos) >= sent;
    drain(&publisher.counters, acked, started, deadline).await;
    let produce_seconds = started.elapsed().as_secs_f64();
    let published = match qos {
        rumqttc::QoS::AtMostOnce => sent,
        _ => publisher.counters.published(qos),
    };
    let expected = published * n;
    let consume_seconds = drain(
        delivered,
        |c| c.deliveries.load(Ordering::Relaxed) >= expected,
        started,
        deadline,
    )
    .await;
    errors += publisher.counters.errors.load(Ordering::Relaxed)
        + delivered.errors.load(Ordering::Relaxed)
        + sent.saturating_sub(published);
    let deliveries = delivered.deliveries.load(Ordering::Relaxed);
    let last = meter.sample();
    publisher.stop().await;
    let latency = subs.stop().await;
    Ok(Outcome {
        scenario: match args.rate {
            None => format!("mqtt-fanout 1p/{subscribers}s qos{}", args.qos),
            Some(rate) => format!("mqtt-fanout 1p/{subscribers}s qos{} @{rate}/s", args.qos),
        },
        published,
        expected,
        deliveries,
        errors,
        produce_seconds,
        consume_seconds: consume_seconds.max(f64::EPSILON),
        latency,
        subscribers: Some(n),
        connections: n + 1,
        load: (first, last),
    })
}
