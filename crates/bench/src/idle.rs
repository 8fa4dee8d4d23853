//! The "many idle connections" scenario (issue 14): what one open, idle connection costs the
//! broker. `--connections` clients each complete their protocol's handshake (AMQP: protocol
//! header, `start / tune / open`, one `channel.open`; Kafka: ApiVersions and Metadata, as every
//! Kafka client starts), then sit still. The broker's resident set is sampled before they
//! connect, while they are open, and after they close; the growth divided by the connections is
//! the broker's cost of one idle connection.
//!
//! The clients speak the protocol directly over plain sockets, a few hundred bytes of code each,
//! rather than through lapin or librdkafka: ten thousand real client objects would cost the
//! benchmark far more than the broker (librdkafka runs several threads per client), and the
//! broker only sees bytes either way. What they send is what those clients send first.
//!
//! File descriptors: the soft `RLIMIT_NOFILE` of this process is raised to cover the
//! connections. The broker needs as many; it inherits the soft limit of the shell that started
//! it (`ulimit -n`), and each listener takes at most its `connections_max` (10,000 by default
//! for both AMQP and Kafka; `[amqp] connections_max`, `[kafka] connections_max` in the TOML
//! file). Connections past either limit wait in the kernel's backlog and time out here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::proc_stats;

/// How long one client gets for its connect and handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Handshakes in progress at once: enough to keep the broker busy, few enough that the
/// listener's accept backlog (Linux's default somaxconn is 4096) never overflows.
const CONNECTING_MAX: usize = 256;
/// The largest frame a handshake answer may be (a Metadata answer for a broker with many
/// topics is the largest).
const ANSWER_BYTES_MAX: usize = 16 << 20;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Amqp,
    Kafka,
    /// MQTT 3.1.1: CONNECT (clean session, keep-alive off) and its CONNACK.
    Mqtt,
}

#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    #[arg(long, value_enum)]
    pub protocol: Protocol,
    /// The broker's listener [default: 127.0.0.1:5672 for AMQP, 127.0.0.1:9092 for Kafka].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Loopback source addresses to spread the connections over (127.0.0.1, .2, ...): one
    /// address has about 28,000 ephemeral ports, so 100,000 connections need four.
    #[arg(long, default_value_t = 1)]
    pub source_addresses: u8,
    /// AMQP user and password (PLAIN).
    #[arg(long, default_value = "guest")]
    pub user: String,
    #[arg(long, default_value = "guest")]
    pub password: String,
    /// How long the connections stay open, idle, before the broker's RSS is sampled (the
    /// broker settles: tasks park, per-connection start-up garbage is freed).
    #[arg(long, default_value_t = 5)]
    pub hold_seconds: u64,
    /// How long after closing them the broker's RSS is sampled again.
    #[arg(long, default_value_t = 5)]
    pub after_close_seconds: u64,
    /// Pid of the broker process; without it only the connection counts are reported.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What an idle-connections run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdleResult {
    pub label: String,
    pub protocol: Option<Protocol>,
    pub connections: u64,
    /// Connections that completed their handshake (the rest failed; see `errors`).
    pub opened: u64,
    pub errors: u64,
    pub connect_seconds: f64,
    /// Broker VmRSS before the clients connected, while they were open and idle, and after
    /// they closed.
    pub rss_before_kib: Option<u64>,
    pub rss_open_kib: Option<u64>,
    pub rss_after_close_kib: Option<u64>,
    /// (rss_open - rss_before) / opened.
    pub rss_bytes_per_connection: Option<f64>,
    /// Broker CPU seconds spent opening the connections.
    pub broker_cpu_seconds: Option<f64>,
}

pub async fn run(args: IdleArgs) -> Result<IdleResult> {
    ensure!(args.connections > 0, "--connections must be at least 1");
    crate::mqtt::raise_nofile(args.connections)?;
    let addr = args.addr.unwrap_or_else(|| match args.protocol {
        Protocol::Amqp => SocketAddr::from(([127, 0, 0, 1], 5672)),
        Protocol::Kafka => SocketAddr::from(([127, 0, 0, 1], 9092)),
        Protocol::Mqtt => SocketAddr::from(([127, 0, 0, 1], 1883)),
    });
    let pid = args.broker_pid;
    // One connection opened and closed first: the broker's first connection allocates what
    // every later one shares (runtime structures, the vhost, metadata), which is no per-connection
    // cost.
    drop(handshake(args.protocol, addr, &args, 0).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = pid.and_then(proc_stats::rss_kib);
    let cpu_before = pid.and_then(proc_stats::sample);

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(CONNECTING_MAX));
    let errors = Arc::new(AtomicU64::new(0));
    let args = Arc::new(args);
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let (gate, errors, args) = (gate.clone(), errors.clone(), args.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                match handshake(args.protocol, addr, &args, i as i32 + 1).await {
                    Ok(stream) => Some(stream),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("connection {i} failed: {e:#}");
                        }
                        None
                    }
                }
            })
        })
        .collect();
    let mut open = Vec::with_capacity(args.connections);
    for task in tasks {
        if let Some(stream) = task.await? {
            open.push(stream);
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let cpu_after = pid.and_then(proc_stats::sample);
    eprintln!(
        "{} of {} connections open in {connect_seconds:.1} s; holding them idle for {} s",
        open.len(),
        args.connections,
        args.hold_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    let rss_open = pid.and_then(proc_stats::rss_kib);
    let opened = open.len() as u64;
    drop(open);
    tokio::time::sleep(Duration::from_secs(args.after_close_seconds)).await;
    let rss_after_close = pid.and_then(proc_stats::rss_kib);
    let per_connection = match (rss_before, rss_open) {
        (Some(before), Some(open)) if opened > 0 => {
            Some((open as f64 - before as f64) * 1024.0 / opened as f64)
        }
        _ => None,
    };
    let result = IdleResult {
        label: args.label.clone(),
        protocol: Some(args.protocol),
        connections: args.connections as u64,
        opened,
        errors: errors.load(Ordering::Relaxed),
        connect_seconds,
        rss_before_kib: rss_before,
        rss_open_kib: rss_open,
        rss_after_close_kib: rss_after_close,
        rss_bytes_per_connection: per_connection,
        broker_cpu_seconds: cpu_before
            .zip(cpu_after)
            .map(|(b, a)| a.cpu_seconds - b.cpu_seconds),
    };
    print(&result);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(result)
}

fn print(r: &IdleResult) {
    let mib =
        |kib: Option<u64>| kib.map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "== {} / idle connections, {:?}: {} opened of {} ({} errors) in {:.1} s",
        r.label,
        r.protocol.unwrap_or(Protocol::Amqp),
        r.opened,
        r.connections,
        r.errors,
        r.connect_seconds
    );
    println!(
        "broker rss  before {}  open {}  after close {}",
        mib(r.rss_before_kib),
        mib(r.rss_open_kib),
        mib(r.rss_after_close_kib)
    );
    if let Some(bytes) = r.rss_bytes_per_connection {
        println!(
            "broker rss per idle connection {:.1} KiB ({bytes:.0} bytes)",
            bytes / 1024.0
        );
    }
    if let Some(cpu) = r.broker_cpu_seconds {
        println!("broker cpu opening them {cpu:.2} s");
    }
    if r.connect_seconds > 0.0 {
        println!(
            "connection set-up rate {:.0} handshakes/s",
            r.opened as f64 / r.connect_seconds
        );
    }
}

/// One client: connects and completes `protocol`'s handshake, then hands back the open socket.
async fn handshake(
    protocol: Protocol,
    addr: SocketAddr,
    args: &IdleArgs,
    index: i32,
) -> Result<TcpStream> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let source = std::net::Ipv4Addr::new(
            127,
            0,
            0,
            1 + (index.max(0) as u32 % u32::from(args.source_addresses.max(1))) as u8,
        );
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let mut stream = socket
            .connect(addr)
            .await
            .with_context(|| format!("connecting to {addr} from {source}"))?;
        stream.set_nodelay(true)?;
        match protocol {
            Protocol::Amqp => amqp_handshake(&mut stream, &args.user, &args.password).await?,
            Protocol::Kafka => kafka_handshake(&mut stream, index).await?,
            Protocol::Mqtt => mqtt_handshake(&mut stream, index).await?,
        }
        Ok(stream)
    })
    .await
    .context("handshake timed out")?
}

/// AMQP 0-9-1: header, start-ok (PLAIN), tune-ok (the server's channel_max and frame_max,
/// heartbeats off: nothing is sent while idle), open "/", then `channel.open` on channel 1.
pub async fn amqp_handshake(stream: &mut TcpStream, user: &str, password: &str) -> Result<()> {
    stream.write_all(b"AMQP\x00\x00\x09\x01").await?;
    amqp_expect(stream, (10, 10)).await?; // connection.start
    let mut start_ok = method(10, 11);
    start_ok.extend_from_slice(&0u32.to_be_bytes()); // client-properties: an empty table
    short_str(&mut start_ok, "PLAIN");
    let response = format!("\0{user}\0{password}");
    start_ok.extend_from_slice(&(response.len() as u32).to_be_bytes());
    start_ok.extend_from_slice(response.as_bytes());
    short_str(&mut start_ok, "en_US");
    stream.write_all(&amqp_frame(0, &start_ok)).await?;
    let tune = amqp_expect(stream, (10, 30)).await?;
    ensure!(tune.len() >= 12, "connection.tune too short");
    let mut tune_ok = method(10, 31);
    tune_ok.extend_from_slice(&tune[4..10]); // channel_max, frame_max as offered
    tune_ok.extend_from_slice(&0u16.to_be_bytes()); // heartbeat off
    let mut open = method(10, 40);
    short_str(&mut open, "/");
    short_str(&mut open, "");
    open.push(0);
    let mut sent = amqp_frame(0, &tune_ok);
    sent.extend_from_slice(&amqp_frame(0, &open));
    stream.write_all(&sent).await?;
    amqp_expect(stream, (10, 41)).await?; // connection.open-ok
    let mut channel_open = method(20, 10);
    short_str(&mut channel_open, "");
    stream.write_all(&amqp_frame(1, &channel_open)).await?;
    amqp_expect(stream, (20, 11)).await?; // channel.open-ok
    Ok(())
}

fn method(class: u16, method: u16) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&method.to_be_bytes());
    payload
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn amqp_frame(channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![1u8]; // method frame
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(0xCE);
    frame
}

/// Reads one method frame and checks it is `(class, method)`; returns its payload.
async fn amqp_expect(stream: &mut TcpStream, want: (u16, u16)) -> Result<Vec<u8>> {
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).await?;
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    ensure!(size <= ANSWER_BYTES_MAX, "frame of {size} bytes");
    let mut payload = vec![0u8; size + 1];
    stream.read_exact(&mut payload).await?;
    ensure!(payload.pop() == Some(0xCE), "bad frame end");
    ensure!(header[0] == 1 && payload.len() >= 4, "not a method frame");
    let got = (
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    );
    if got == (10, 50) {
        bail!(
            "the broker closed the connection: {:?}",
            String::from_utf8_lossy(&payload[6..])
        );
    }
    ensure!(got == want, "expected method {want:?}, got {got:?}");
    Ok(payload)
}

/// MQTT 3.1.1: CONNECT with clean session and keep-alive 0 (nothing is sent while idle), then
/// the 4-byte CONNACK, which must accept.
pub async fn mqtt_handshake(stream: &mut TcpStream, index: i32) -> Result<()> {
    let client_id = format!("idle-{index}");
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    stream.write_all(&packet).await?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await?;
    ensure!(connack == [0x20, 0x02, 0x00, 0x00], "CONNACK {connack:?}");
    Ok(())
}

/// Kafka: ApiVersions v0, then Metadata v1 for no topics (what a client asks first to learn the
/// brokers), each answered before the next is sent.
pub async fn kafka_handshake(stream: &mut TcpStream, correlation: i32) -> Result<()> {
    const API_VERSIONS: i16 = 18;
    const METADATA: i16 = 3;
    kafka_request(stream, API_VERSIONS, 0, correlation, &[]).await?;
    // topics: an empty array (v1: no topics; null would ask for all of them).
    kafka_request(stream, METADATA, 1, correlation, &0i32.to_be_bytes()).await?;
    Ok(())
}

async fn kafka_request(
    stream: &mut TcpStream,
    api_key: i16,
    version: i16,
    correlation: i32,
    body: &[u8],
) -> Result<()> {
    const CLIENT_ID: &str = "porter-bench-idle";
    let mut frame = vec![0u8; 4];
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation.to_be_bytes());
    frame.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    frame.extend_from_slice(CLIENT_ID.as_bytes());
    frame.extend_from_slice(body);
    let size = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&frame).await?;
    let size = stream.read_u32().await? as usize;
    ensure!(
        (4..=ANSWER_BYTES_MAX).contains(&size),
        "answer of {size} bytes"
    );
    let mut answer = vec![0u8; size];
    stream.read_exact(&mut answer).await?;
    let got = i32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]);
    ensure!(got == correlation, "answer to {got}, asked {correlation}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_frames_are_laid_out_as_the_spec_says() {
        let mut payload = method(20, 10);
        short_str(&mut payload, "");
        assert_eq!(
            amqp_frame(1, &payload),
            [1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xCE]
        );
    }

    #[test]
    fn json_round_trip() {
        let r = IdleResult {
            label: "porter".into(),
            protocol: Some(Protocol::Kafka),
            connections: 10,
            opened: 9,
            errors: 1,
            connect_seconds: 0.5,
            rss_before_kib: Some(1000),
            rss_open_kib: Some(1100),
            rss_after_close_kib: Some(1010),
            rss_bytes_per_connection: Some(11377.8),
            broker_cpu_seconds: Some(0.1),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"kafka\""));
        assert_eq!(serde_json::from_str::<IdleResult>(&text).unwrap(), r);
    }
}
