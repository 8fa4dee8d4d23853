//! Delayed delivery through the broker, end to end: schedules delayed messages for a topic
//! (as the RocketMQ gateway does), waits until every one is published, and reports how late each
//! reached the topic (its record timestamp minus its due time), and the process's RSS while a
//! million are pending.
//!
//! ```text
//! cargo run --release -p porter-core --example delayed_bench -- fire 50000 10   # rate/s, seconds
//! cargo run --release -p porter-core --example delayed_bench -- pending 1000000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use porter_core::topic_message::TopicMessage;
use porter_core::{Broker, BrokerConfig, TopicConfig};
use porter_storage::records::decode_batches;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn message(i: u64, due_ms: i64) -> TopicMessage {
    TopicMessage {
        message_id: format!("m{i}"),
        deliver_at_ms: Some(due_ms),
        body: Bytes::from(vec![b'x'; 100]),
        ..Default::default()
    }
}

async fn schedule_all(broker: &Arc<Broker>, dues: Vec<i64>) {
    let delays = broker.delayed().clone();
    let mut tasks = Vec::new();
    // 256 schedules in flight: they share the timer store's fsyncs.
    for chunk in dues
        .into_iter()
        .enumerate()
        .collect::<Vec<_>>()
        .chunks(dues_per_task())
    {
        let chunk = chunk.to_vec();
        let delays = delays.clone();
        tasks.push(tokio::spawn(async move {
            for (i, due) in chunk {
                delays
                    .schedule_topic(due, "delayed", &message(i as u64, due))
                    .await
                    .expect("schedule");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn dues_per_task() -> usize {
    4096
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("fire");
    let dir = tempfile::tempdir_in(".").expect("temp dir");
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .expect("open broker");
    broker.start_background_tasks();
    let topic = broker
        .create_topic("delayed", 4, TopicConfig::default())
        .await
        .expect("topic");
    let base_rss = rss_mib();
    match mode {
        "pending" => {
            let n: u64 = args
                .get(2)
                .and_then(|a| a.parse().ok())
                .unwrap_or(1_000_000);
            let now = porter_core::timer::now_ms();
            // Spread over the next day: all pending while we look.
            let dues: Vec<i64> = (0..n)
                .map(|i| now + 3_600_000 + (i as i64 * 86_400_000 / n as i64))
                .collect();
            let started = Instant::now();
            schedule_all(&broker, dues).await;
            println!(
                "pending {n}: scheduled in {:.1} s; RSS {:.1} MiB (broker idle {:.1} MiB)",
                started.elapsed().as_secs_f64(),
                rss_mib(),
                base_rss
            );
        }
        _ => {
            let rate: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50_000);
            let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
            let n = rate * seconds;
            let lead_ms = 8_000 + (n / 100) as i64; // time to schedule them all first
            let first = porter_core::timer::now_ms() + lead_ms;
            let dues: Vec<i64> = (0..n)
                .map(|i| first + (i as i64 * 1000 / rate as i64))
                .collect();
            schedule_all(&broker, dues).await;
            assert!(
                porter_core::timer::now_ms() < first,
                "scheduling took longer than the lead"
            );
            let deadline = Instant::now()
                + Duration::from_millis(lead_ms as u64)
                + Duration::from_secs(seconds + 30);
            loop {
                let published: i64 = topic.partitions.iter().map(|p| p.high_watermark()).sum();
                if published as u64 >= n || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let mut late = Vec::with_capacity(n as usize);
            for p in &topic.partitions {
                let mut offset = 0;
                while offset < p.high_watermark() {
                    let batches = p.read(offset, 4 << 20).await.expect("read");
                    let records = decode_batches(batches.bytes).expect("decode");
                    for r in &records {
                        let m = TopicMessage::decode(r, p.index());
                        late.push(m.stored_ms - m.message.deliver_at_ms.expect("due"));
                    }
                    offset = records.last().map_or(p.high_watermark(), |r| r.offset + 1);
                }
            }
            late.sort_unstable();
            let q = |f: f64| late[((late.len() as f64 * f) as usize).min(late.len() - 1)];
            let early = late.iter().filter(|&&l| l < 0).count();
            println!(
                "fire {rate}/s for {seconds} s: {} of {n} published; lateness p50 {} ms, p99 {} ms, max {} ms; early {early}; RSS {:.1} MiB",
                late.len(),
                q(0.5),
                q(0.99),
                late[late.len() - 1],
                rss_mib()
            );
        }
    }
    broker.shutdown().await.expect("shutdown");
}
