//! The Kafka-protocol driver (librdkafka through the rdkafka crate), usable against any broker
//! that speaks Kafka.
//!
//! Closed loop (no `--rate`): producers send as fast as librdkafka batches, then consumers read
//! everything back: produce and consume throughput measured separately.
//! Open loop (`--rate R`): one producer sends R records/s on a fixed schedule while a consumer
//! reads concurrently; latency is measured from each record's *intended* send time, so a stall
//! shows up in the percentiles instead of silently slowing the sender (coordinated omission).
//! `--rates` sweeps several open-loop points (see `main`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::pacing::{due, share};
use crate::proc_stats;
use crate::progress::Progress;
use crate::report::{rate_suffix, RunResult};
use crate::stats::{latency_histogram, now_us, sent_at, stamped_payload, Latency};
use crate::CommonArgs;
use crate::{kafka_raw, kafka_slow};

/// Open-loop pacing granularity.
const PACING_TICK: Duration = Duration::from_micros(500);

#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic name prefix; each run uses a fresh topic.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    #[arg(long, default_value_t = 100)]
    pub record_bytes: usize,
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Producer threads (closed loop).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer threads (closed loop); partitions are dealt out among them.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Open loop: records per second, produced and consumed concurrently.
    #[arg(long, conflicts_with = "rates")]
    pub rate: Option<u64>,
    /// Closed loop: connections that pipeline Fetch requests for the whole topic and never read
    /// them, held open while the consumers run (the "slow reader" scenario, see `kafka_slow`).
    #[arg(long, default_value_t = 0)]
    pub slow_readers: usize,
    /// Closed loop: consume with raw Fetch clients that count records from batch headers (see
    /// `kafka_raw`) instead of librdkafka consumers, to show the broker's fetch ceiling when
    /// the client's per-message path is the limit.
    #[arg(long)]
    pub raw_consumers: bool,
    /// Fetch requests each slow reader pipelines.
    #[arg(long, default_value_t = 40)]
    pub slow_reader_fetches: usize,
    /// max_bytes (overall and per partition) of each slow reader's fetches.
    #[arg(long, default_value_t = 50 << 20)]
    pub slow_reader_max_bytes: i32,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: KafkaArgs, progress: Arc<Progress>) -> Result<RunResult> {
    let topic = format!("{}-{}", args.topic, now_us());
    create_topic(&args, &topic).await?;
    let before = args.common.broker_pid.and_then(proc_stats::sample);
    let mut result = tokio::task::spawn_blocking({
        let args = args.clone();
        move || match args.rate {
            None => closed_loop(&args, &topic, &progress),
            Some(rate) => open_loop(&args, &topic, rate, &progress),
        }
    })
    .await??;
    let after = args.common.broker_pid.and_then(proc_stats::sample);
    let records = (result.produced + result.consumed) as f64 / 2.0;
    (result.broker, result.broker_cpu_seconds_per_million) =
        proc_stats::cost(before, after, records);
    result.rate = args.rate;
    result.label = args.common.label.clone();
    result.record_bytes = args.record_bytes;
    result.json_path = args.common.json.clone();
    Ok(result)
}

async fn create_topic(args: &KafkaArgs, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()?;
    let new = NewTopic::new(topic, args.partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        if let Err((name, code)) = r {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                bail!("creating topic {name}: {code}");
            }
        }
    }
    Ok(())
}

fn producer(args: &KafkaArgs, linger_ms: u64) -> Result<BaseProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .context("creating producer")
}

/// A consumer of partitions `p` with `p % of == index`.
fn consumer(args: &KafkaArgs, topic: &str, index: usize, of: usize) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "262144")
        .create()
        .context("creating consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in (0..args.partitions).filter(|p| *p as usize % of.max(1) == index) {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Sends one record, waiting for queue room instead of failing when librdkafka's queue is full.
fn send(producer: &BaseProducer, topic: &str, payload: &[u8], progress: &Progress) {
    let mut record = BaseRecord::<(), [u8]>::to(topic).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => {
                progress.produced(1);
                return;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(1));
            }
            Err(_) => {
                progress.error(1);
                return;
            }
        }
    }
}

fn closed_loop(args: &KafkaArgs, topic: &str, progress: &Arc<Progress>) -> Result<RunResult> {
    let deadline = Instant::now() + Duration::from_secs(args.common.max_seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..args.producers.max(1))
        .map(|index| {
            let (args, topic, progress) = (args.clone(), topic.to_string(), progress.clone());
            let per_producer = share(args.records, index, args.producers);
            std::thread::spawn(move || -> Result<u64> {
                let producer = producer(&args, args.linger_ms)?;
                let payload = stamped_payload(args.record_bytes, 0);
                let mut sent = 0;
                while sent < per_producer && Instant::now() < deadline {
                    send(&producer, &topic, &payload, &progress);
                    sent += 1;
                    if sent % 10_000 == 0 {
                        producer.poll(Duration::ZERO);
                    }
                }
                producer.flush(Duration::from_secs(60))?;
                Ok(sent)
            })
        })
        .collect();
    let mut produced = 0;
    for h in handles {
        produced += h
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    }
    let produce_seconds = started.elapsed().as_secs_f64();

    let slow = match args.slow_readers {
        0 => None,
        readers => Some(kafka_slow::start(
            &args.brokers,
            topic,
            args.partitions,
            readers,
            args.slow_reader_fetches,
            args.slow_reader_max_bytes,
            args.common.broker_pid,
        )?),
    };
    let consumed = Arc::new(AtomicU64::new(0));
    let cpu_before = args.common.broker_pid.and_then(proc_stats::sample);
    let started = Instant::now();
    let readers = args.consumers.max(1).min(args.partitions.max(1) as usize);
    let handles: Vec<_> = (0..readers)
        .map(|index| {
            let (args, topic) = (args.clone(), topic.to_string());
            let (consumed, progress) = (consumed.clone(), progress.clone());
            std::thread::spawn(move || -> Result<()> {
                let give_up = deadline + Duration::from_secs(30);
                if args.raw_consumers {
                    let mine: Vec<i32> = (0..args.partitions)
                        .filter(|p| *p as usize % readers == index)
                        .collect();
                    let until = produced;
                    return kafka_raw::consume(
                        &args.brokers,
                        &topic,
                        &mine,
                        &consumed,
                        until,
                        give_up,
                        &progress,
                    );
                }
                let consumer = consumer(&args, &topic, index, readers)?;
                while consumed.load(Ordering::Relaxed) < produced && Instant::now() < give_up {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(_)) => {
                            consumed.fetch_add(1, Ordering::Relaxed);
                            progress.consumed(1);
                        }
                        Some(Err(_)) => progress.error(1),
                        None => {}
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    }
    let consumed = consumed.load(Ordering::Relaxed);
    let consume_seconds = started.elapsed().as_secs_f64();
    let cpu_after = args.common.broker_pid.and_then(proc_stats::sample);
    let (_, consume_cpu) = proc_stats::cost(cpu_before, cpu_after, consumed as f64);
    Ok(RunResult {
        consume_broker_cpu_seconds_per_million: consume_cpu,
        slow_readers: slow.map(kafka_slow::SlowReaders::finish),
        scenario: format!(
            "kafka closed loop, {} partitions, acks={}{}",
            args.partitions,
            args.acks,
            if args.raw_consumers {
                ", raw consumers"
            } else {
                ""
            }
        ),
        produced,
        consumed,
        errors: progress.errors(),
        produce_seconds,
        consume_seconds,
        produce_records_per_sec: produced as f64 / produce_seconds,
        produce_mb_per_sec: produced as f64 * args.record_bytes as f64 / produce_seconds / 1e6,
        consume_records_per_sec: consumed as f64 / consume_seconds,
        ..RunResult::default()
    })
}

fn open_loop(
    args: &KafkaArgs,
    topic: &str,
    rate: u64,
    progress: &Arc<Progress>,
) -> Result<RunResult> {
    let total = args
        .records
        .min(rate.saturating_mul(args.common.max_seconds).max(1));
    // Consumer threads share a counter; each keeps its own histogram, merged at the end.
    let consumed_total = Arc::new(AtomicU64::new(0));
    let readers = args.consumers.max(1).min(args.partitions.max(1) as usize);
    let consumer_handles: Vec<_> = (0..readers)
        .map(|index| {
            let (args, topic, progress) = (args.clone(), topic.to_string(), progress.clone());
            let consumed_total = consumed_total.clone();
            std::thread::spawn(move || -> Result<(hdrhistogram::Histogram<u64>, Instant)> {
                let consumer = consumer(&args, &topic, index, readers)?;
                let mut histogram = latency_histogram();
                let started = Instant::now();
                let deadline = started + Duration::from_secs(args.common.max_seconds + 30);
                while consumed_total.load(Ordering::Relaxed) < total && Instant::now() < deadline {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            if let Some(sent) = m.payload().and_then(sent_at) {
                                let _ = histogram.record(now_us().saturating_sub(sent).max(1));
                            }
                            consumed_total.fetch_add(1, Ordering::Relaxed);
                            progress.consumed(1);
                        }
                        Some(Err(_)) => progress.error(1),
                        None => {}
                    }
                }
                Ok((histogram, Instant::now()))
            })
        })
        .collect();
    // Give the consumer time to connect and be assigned before the clock starts.
    std::thread::sleep(Duration::from_millis(500));
    let producer = producer(args, args.linger_ms)?;
    let started = Instant::now();
    let started_us = now_us();
    for i in 0..total {
        let intended = due(i, rate);
        // Sleep only when a whole tick ahead: a sleep overshoots by tens of microseconds, so
        // sleeping per record would throttle the sender below the asked rate.
        if let Some(wait) = intended.checked_sub(started.elapsed()) {
            if wait >= PACING_TICK {
                std::thread::sleep(wait);
            }
        }
        let payload = stamped_payload(args.record_bytes, started_us + intended.as_micros() as u64);
        send(&producer, topic, &payload, progress);
        if i % 1000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let produce_seconds = started.elapsed().as_secs_f64();
    let mut histogram = latency_histogram();
    // From the first send, not from the consumers' start: the achieved rate is what a
    // latency-vs-throughput curve plots, and the consumers' setup is not part of it.
    let mut consume_seconds: f64 = 0.0;
    for h in consumer_handles {
        let (part, finished) = h
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
        histogram.add(part)?;
        consume_seconds = consume_seconds.max(finished.duration_since(started).as_secs_f64());
    }
    let consumed = consumed_total.load(Ordering::Relaxed);
    Ok(RunResult {
        scenario: format!(
            "kafka open loop, {} partitions, acks={}{}",
            args.partitions,
            args.acks,
            rate_suffix(rate)
        ),
        produced: total,
        consumed,
        errors: progress.errors(),
        produce_seconds,
        consume_seconds,
        produce_records_per_sec: total as f64 / produce_seconds,
        produce_mb_per_sec: total as f64 * args.record_bytes as f64 / produce_seconds / 1e6,
        consume_records_per_sec: consumed as f64 / consume_seconds,
        end_to_end: Latency::of(&histogram),
        ..RunResult::default()
    })
}
