//! The MQTT 3.1.1 driver (rumqttc), usable against any broker that speaks it, so Porter (once it
//! has an MQTT gateway) and its peers (Mosquitto, NATS) are measured by the same client code.
//!
//! Two scenarios (see [`fanout`] and [`chat`]): one publisher to N subscribers of one topic, and
//! thousands of chat clients each in a room and with an inbox. QoS 1 by default, persistent
//! sessions (clean session off) so the broker keeps each subscriber's session and its unacked
//! QoS 1 messages — the MQTT notion of durability; the sessions are removed after the run (a
//! clean-session reconnect of every client) unless `--keep-sessions`.
//!
//! Latency is end to end from the send time stamped in the payload; in open loop (`--rate`) from
//! the *intended* send time, so a broker stall shows in the percentiles instead of slowing the
//! sender. Connections are driven by a bounded number of tasks ([`conn`]); the driver reports
//! its own CPU seconds so a run can show the driver was not the bottleneck.

mod chat;
mod conn;
mod fanout;
pub mod plan;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use tokio::sync::{watch, Notify};

use crate::proc_stats;
use crate::progress::Progress;
use crate::report::RunResult;
use crate::stats::{latency_histogram, now_us, sent_at, Latency};
use crate::CommonArgs;

use conn::Link;

/// Requests (publishes, subscribes) a client queues ahead of its event loop.
const REQUEST_CAPACITY: usize = 64;
/// rumqttc's default largest packet is 10 KiB; records plus topic and header must fit.
const MIN_MAX_PACKET: usize = 10 * 1024;
const PACKET_OVERHEAD: usize = 1024;
/// Keep-alive: long enough that PINGs are not part of the load.
const KEEP_ALIVE: Duration = Duration::from_secs(60);
/// TCP connect + CONNACK timeout of one connection (a broker creating thousands of sessions
/// at once may take seconds for each).
const CONNECT_TIMEOUT_S: u64 = 30;
/// Connections of one task between TCP connect and CONNACK at once.
const MAX_CONNECTING_PER_TASK: usize = 16;
/// After the last publish, how long the run waits without a single new delivery or ack before it
/// counts what is missing as lost.
const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// How long all connections and subscriptions may take before the first publish.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long removing the persistent sessions after a run may take.
const PURGE_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors the driver keeps beyond one per connection.
const NOFILE_SLACK: u64 = 256;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// One publisher, `--subscribers` subscribers of one topic.
    Fanout,
    /// `--connections` clients in `--rooms` rooms, each with its own inbox; paced load.
    Chat,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MqttArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    pub scenario: Scenario,
    /// QoS of publishes and subscriptions: 0 or 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    #[arg(long, default_value_t = 100)]
    pub record_bytes: usize,
    /// Messages published (not deliveries: fan-out multiplies them).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Open loop: messages published per second (all publishers together). Chat is always paced
    /// (default 1000/s); fan-out without it is closed loop.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Fan-out closed loop: messages per subscriber sent but not yet delivered, at most; also the
    /// publisher's unacked QoS 1 publishes (rumqttc's inflight).
    #[arg(long, default_value_t = 256)]
    pub inflight: u16,
    /// Fan-out: subscribers of the one topic.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    #[command(flatten)]
    pub chat: crate::mqtt::plan::ChatArgs,
    /// Tasks that drive the connections (each polls its share of event loops).
    #[arg(long, default_value_t = 8)]
    pub tasks: usize,
    /// Clean sessions instead of persistent ones (the broker then keeps nothing per client).
    #[arg(long)]
    pub clean_session: bool,
    /// Leave the persistent sessions on the broker after the run.
    #[arg(long)]
    pub keep_sessions: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The progress line's counters (set by main for each run; not a flag).
    #[arg(skip)]
    pub progress: Option<Arc<Progress>>,
}

impl MqttArgs {
    fn qos(&self) -> QoS {
        if self.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    /// A client and its event loop, named `<run>-<index>` so runs never share a session.
    fn client(&self, run: &str, index: usize, clean_session: bool) -> (AsyncClient, Link) {
        let mut options = MqttOptions::new(format!("pb{run}-{index}"), &self.host, self.port);
        let max_packet = (self.record_bytes + PACKET_OVERHEAD).max(MIN_MAX_PACKET);
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_clean_session(clean_session)
            .set_max_packet_size(max_packet, max_packet)
            .set_inflight(self.inflight.max(1));
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(CONNECT_TIMEOUT_S);
        // Nagle would hold a small PUBLISH or PUBACK back until the previous segment is acked.
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        (
            client,
            Link {
                id: index,
                eventloop,
            },
        )
    }
}

/// What every connection's events add up to, shared by the tasks that drive them.
#[derive(Default)]
pub struct Counters {
    pub connacks: AtomicU64,
    pub subacks: AtomicU64,
    /// PUBLISH packets written (QoS 0: the publish count).
    pub written: AtomicU64,
    /// PUBACKs received (QoS 1: the publish count).
    pub pubacks: AtomicU64,
    pub deliveries: AtomicU64,
    pub errors: AtomicU64,
    /// Poked on every delivery and ack, for a publisher waiting on its window or a drain.
    pub progress: Notify,
    /// The progress line: publishes written count as produced, deliveries as consumed.
    pub view: Option<Arc<Progress>>,
}

impl Counters {
    /// Counts one event; a delivery's latency goes into the calling task's `histogram`.
    pub fn on_event(&self, event: Event, histogram: &mut Histogram<u64>) {
        match event {
            Event::Incoming(Packet::Publish(publish)) => {
                if let Some(sent) = sent_at(&publish.payload) {
                    let _ = histogram.record(now_us().saturating_sub(sent).max(1));
                }
                self.deliveries.fetch_add(1, Ordering::Relaxed);
                self.progress.notify_one();
                if let Some(view) = &self.view {
                    view.consumed(1);
                }
            }
            Event::Incoming(Packet::PubAck(_)) => {
                self.pubacks.fetch_add(1, Ordering::Relaxed);
                self.progress.notify_one();
            }
            Event::Outgoing(Outgoing::Publish(_)) => {
                self.written.fetch_add(1, Ordering::Relaxed);
                if let Some(view) = &self.view {
                    view.produced(1);
                }
            }
            Event::Incoming(Packet::ConnAck(_)) => {
                self.connacks.fetch_add(1, Ordering::Relaxed);
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    if let Some(view) = &self.view {
                        view.error(1);
                    }
                }
                let counter = if refused { &self.errors } else { &self.subacks };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Publishes the broker took: PUBACKs at QoS 1, writes at QoS 0.
    pub fn published(&self, qos: QoS) -> u64 {
        match qos {
            QoS::AtMostOnce => self.written.load(Ordering::Relaxed),
            _ => self.pubacks.load(Ordering::Relaxed),
        }
    }
}

/// Connections of the run split over `tasks` tasks, each polling its event loops; every task
/// returns the latency histogram of the deliveries it saw.
pub struct Fleet {
    pub clients: Vec<AsyncClient>,
    pub counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Histogram<u64>>>,
}

impl Fleet {
    pub fn start(args: &MqttArgs, run: &str, count: usize, first_id: usize) -> Fleet {
        let counters = Counters {
            view: args.progress.clone(),
            ..Counters::default()
        };
        Fleet::start_with(args, run, count, first_id, Arc::new(counters))
    }

    pub fn start_with(
        args: &MqttArgs,
        run: &str,
        count: usize,
        first_id: usize,
        counters: Arc<Counters>,
    ) -> Fleet {
        let (stop, stopped) = watch::channel(false);
        let mut clients = Vec::with_capacity(count);
        let mut links: Vec<Option<Link>> = Vec::with_capacity(count);
        for index in 0..count {
            let (client, link) = args.client(run, first_id + index, args.clean_session);
            clients.push(client);
            links.push(Some(link));
        }
        let shards = args.tasks.clamp(1, count.max(1));
        let tasks = (0..shards)
            .map(|shard| {
                let mine: Vec<Link> = plan::shard_ids(count, shard, shards)
                    .into_iter()
                    .filter_map(|i| links[i].take())
                    .collect();
                let (counters, stopped) = (counters.clone(), stopped.clone());
                tokio::spawn(async move {
                    let mut histogram = latency_histogram();
                    conn::drive(
                        mine,
                        MAX_CONNECTING_PER_TASK,
                        stopped,
                        &counters.errors,
                        |_, event| counters.on_event(event, &mut histogram),
                    )
                    .await;
                    histogram
                })
            })
            .collect();
        Fleet {
            clients,
            counters,
            stop,
            tasks,
        }
    }

    /// Waits until every client has its CONNACK and `subacks` SUBACKs arrived.
    pub async fn ready(&self, subacks: u64) -> Result<()> {
        let started = Instant::now();
        let want = self.clients.len() as u64;
        loop {
            let (c, s) = (
                self.counters.connacks.load(Ordering::Relaxed),
                self.counters.subacks.load(Ordering::Relaxed),
            );
            if c >= want && s >= subacks {
                return Ok(());
            }
            // A refused connection or subscription would leave the run waiting for good.
            let errors = self.counters.errors.load(Ordering::Relaxed);
            anyhow::ensure!(
                errors == 0 && started.elapsed() < SETUP_TIMEOUT,
                "setup failed: {c}/{want} connected, {s}/{subacks} subscribed, {errors} errors \
                 after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Disconnects every client and returns the merged latency histogram.
    pub async fn stop(self) -> Histogram<u64> {
        for client in &self.clients {
            let _ = client.try_disconnect();
        }
        let _ = self.stop.send(true);
        let mut histogram = latency_histogram();
        for task in self.tasks {
            if let Ok(h) = task.await {
                let _ = histogram.add(&h);
            }
        }
        histogram
    }
}

/// Removes the persistent sessions of clients `0..count` of run `run`: each reconnects with a
/// clean session (which drops its stored session) and disconnects at once.
async fn purge_sessions(args: &MqttArgs, run: &str, count: usize) {
    let mut clean = args.clone();
    clean.clean_session = true;
    let fleet = Fleet::start(&clean, run, count, 0);
    let _ = tokio::time::timeout(PURGE_TIMEOUT, fleet.ready(0)).await;
    fleet.stop().await;
}

/// Raises the soft RLIMIT_NOFILE to cover `connections` sockets (up to the hard limit): Debian's
/// default soft limit of 1024 is below the chat scenario's thousands of connections.
pub(crate) fn raise_nofile(connections: usize) -> Result<()> {
    let want = connections as u64 + NOFILE_SLACK;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        anyhow::ensure!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0,
            "getrlimit"
        );
        if limit.rlim_cur >= want {
            return Ok(());
        }
        anyhow::ensure!(
            limit.rlim_max >= want,
            "{connections} connections need {want} file descriptors; the hard limit is {}",
            limit.rlim_max
        );
        let old = limit.rlim_cur;
        limit.rlim_cur = want;
        anyhow::ensure!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0,
            "setrlimit"
        );
        eprintln!("raised RLIMIT_NOFILE (soft) from {old} to {want}");
    }
    Ok(())
}

/// CPU of the broker and of the driver itself, sampled around the load phase only: connecting
/// and subscribing thousands of persistent sessions costs a broker seconds of CPU (NATS creates a
/// JetStream consumer per QoS 1 subscription) that are not a cost per message.
#[derive(Clone, Copy)]
pub struct Meter {
    broker_pid: Option<u32>,
}

/// The broker's and the driver's samples at one instant.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    broker: Option<proc_stats::ProcSample>,
    driver: Option<proc_stats::ProcSample>,
    machine_busy: Option<f64>,
}

impl Meter {
    pub fn sample(&self) -> Sample {
        Sample {
            broker: self.broker_pid.and_then(proc_stats::sample),
            driver: proc_stats::sample(std::process::id()),
            machine_busy: proc_stats::machine_busy_seconds(),
        }
    }
}

/// What a scenario measured, before broker and driver costs are added.
pub struct Outcome {
    pub scenario: String,
    pub published: u64,
    pub expected: u64,
    pub deliveries: u64,
    pub errors: u64,
    pub produce_seconds: f64,
    pub consume_seconds: f64,
    pub latency: Histogram<u64>,
    pub subscribers: Option<u64>,
    pub connections: u64,
    /// Samples at the first publish and after the last delivery.
    pub load: (Sample, Sample),
}

/// Waits after the last publish until `done(counters)`, the deadline, or [`DRAIN_IDLE`] without a
/// single new delivery or ack. Returns when the last delivery arrived, in seconds from `started`.
pub async fn drain(
    counters: &Counters,
    done: impl Fn(&Counters) -> bool,
    started: Instant,
    deadline: Instant,
) -> f64 {
    let progress =
        |c: &Counters| c.deliveries.load(Ordering::Relaxed) + c.pubacks.load(Ordering::Relaxed);
    let mut last = (progress(counters), Instant::now());
    let mut last_delivery = (
        counters.deliveries.load(Ordering::Relaxed),
        started.elapsed(),
    );
    loop {
        let notified = counters.progress.notified();
        let now = progress(counters);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let deliveries = counters.deliveries.load(Ordering::Relaxed);
        if deliveries != last_delivery.0 {
            last_delivery = (deliveries, started.elapsed());
        }
        if done(counters) || Instant::now() >= deadline || last.1.elapsed() >= DRAIN_IDLE {
            return last_delivery.1.as_secs_f64();
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
    }
}

pub async fn run(args: MqttArgs) -> Result<RunResult> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.chat.p2p_ratio),
        "--p2p-ratio must be in 0..=1"
    );
    let run_id = format!("{:x}", now_us() % 0xFFFF_FFFF);
    let clients = match args.scenario {
        Scenario::Fanout => args.subscribers + 1,
        Scenario::Chat => args.chat.connections,
    };
    raise_nofile(clients)?;
    let meter = Meter {
        broker_pid: args.common.broker_pid,
    };
    let outcome = match args.scenario {
        Scenario::Fanout => fanout::run(&args, &run_id, meter).await,
        Scenario::Chat => chat::run(&args, &run_id, meter).await,
    };
    if !args.clean_session && !args.keep_sessions {
        purge_sessions(&args, &run_id, clients).await;
    }
    let outcome = outcome?;

    let lost = outcome.expected.saturating_sub(outcome.deliveries);
    let mut result = RunResult {
        label: args.common.label.clone(),
        scenario: outcome.scenario,
        record_bytes: args.record_bytes,
        produced: outcome.published,
        consumed: outcome.deliveries,
        errors: outcome.errors + lost,
        produce_seconds: outcome.produce_seconds,
        consume_seconds: outcome.consume_seconds,
        produce_records_per_sec: outcome.published as f64 / outcome.produce_seconds,
        produce_mb_per_sec: outcome.published as f64 * args.record_bytes as f64
            / outcome.produce_seconds
            / 1e6,
        consume_records_per_sec: outcome.deliveries as f64 / outcome.consume_seconds,
        end_to_end: Latency::of(&outcome.latency),
        json_path: args.common.json.clone(),
        qos: Some(args.qos),
        subscribers: outcome.subscribers.map(|n| n as usize),
        connections: Some(outcome.connections),
        expected_deliveries: Some(outcome.expected),
        lost: Some(lost),
        rate: args.rate,
        ..RunResult::default()
    };
    let (before, after) = outcome.load;
    if let (Some(b), Some(a)) = (before.broker, after.broker) {
        let cpu = a.cpu_seconds - b.cpu_seconds;
        result.broker = Some(proc_stats::ProcSample {
            cpu_seconds: cpu,
            rss_peak_kib: a.rss_peak_kib,
        });
        if outcome.deliveries > 0 {
            // Per million deliveries: the work a fan-out broker does grows with them.
            result.broker_cpu_seconds_per_million = Some(cpu / (outcome.deliveries as f64 / 1e6));
        }
    }
    if let (Some(b), Some(a)) = (before.driver, after.driver) {
        result.driver_cpu_seconds = Some(a.cpu_seconds - b.cpu_seconds);
    }
    if let (Some(b), Some(a)) = (before.machine_busy, after.machine_busy) {
        result.machine_busy_cpu_seconds = Some(a - b);
    }
    Ok(result)
}
