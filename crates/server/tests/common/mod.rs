//! Shared harness for the `porter` binary's integration tests: a real server process on a free
//! loopback port with a temp data dir and captured stderr, and a small raw Kafka client built on
//! `kafka-protocol` (so tests can also send requests no real client would).
//!
//! Every wait here is bounded; a `Server` is SIGKILLed on drop, so a panicking test leaves no
//! process behind.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// How long a server gets to start accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SIGTERMed server gets to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket read/write timeout of the raw client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Server {
    child: Option<Child>,
    /// Holds the data dir and the stderr file; removed on drop.
    dir: tempfile::TempDir,
    pub port: u16,
    /// The AMQP listener's port (each test server gets its own, so parallel tests never share
    /// the default 5672).
    pub amqp_port: u16,
    args: Vec<String>,
    /// How many times the process was started: restarts append to the same stderr file.
    pub starts: u32,
    /// Restarts in a row after a bind conflict (see `wait_ready`).
    bind_retries: u32,
    /// SIGTERMs this harness sent; more "SIGTERM received" lines than this means someone else
    /// signalled the process (reported when a test fails).
    sigterms_sent: u32,
}

impl Server {
    /// Starts `porter serve` with the given extra flags and waits until it accepts connections.
    pub fn start(extra_args: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("porter-it-")
            .tempdir()
            .expect("creating temp dir");
        let port = free_port();
        // Two calls in a row may return the same port (the first socket is closed by then).
        let amqp_port = std::iter::repeat_with(free_port)
            .find(|p| *p != port)
            .expect("an endless iterator");
        let mut server = Server {
            child: None,
            dir,
            port,
            amqp_port,
            args: extra_args.iter().map(|s| s.to_string()).collect(),
            starts: 0,
            bind_retries: 0,
            sigterms_sent: 0,
        };
        server.spawn();
        server
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// The partition's directory: `DATA/logs/<topic>/<partition>/`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir()
            .join("logs")
            .join(topic)
            .join(partition.to_string())
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("opening stderr file");
        let addr = self.bootstrap();
        let amqp = if self.args.iter().any(|a| a == "--amqp-listen") {
            Vec::new()
        } else {
            vec![
                "--amqp-listen".to_string(),
                format!("127.0.0.1:{}", self.amqp_port),
            ]
        };
        // RocketMQ's listener is off unless a test asks for it: its default port would be shared
        // by every test running at once.
        let rocketmq = if self.args.iter().any(|a| a == "--rocketmq-listen") {
            Vec::new()
        } else {
            vec!["--rocketmq-listen".to_string(), "off".to_string()]
        };
        // Likewise MQTT (default port 1883).
        let mqtt = if self.args.iter().any(|a| a == "--mqtt-listen") {
            Vec::new()
        } else {
            vec!["--mqtt-listen".to_string(), "off".to_string()]
        };
        // STOMP's likewise.
        let stomp = if self.args.iter().any(|a| a == "--stomp-listen") {
            Vec::new()
        } else {
            vec!["--stomp-listen".to_string(), "off".to_string()]
        };
        // The HTTP listener likewise (its default port 15672 is RabbitMQ management's too).
        let http = if self.args.iter().any(|a| a == "--http-listen") {
            Vec::new()
        } else {
            vec!["--http-listen".to_string(), "off".to_string()]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_porter"))
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--kafka-listen", &addr, "--kafka-advertised", &addr])
            .args(&amqp)
            .args(&rocketmq)
            .args(&mqtt)
            .args(&stomp)
            .args(&http)
            .args(&self.args)
            .env("NO_COLOR", "1")
            .env_remove("PORTER_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawning porter");
        self.child = Some(child);
        self.starts += 1;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                // The test's own client sockets take ephemeral ports, and while the server was
                // down the kernel may have given one of them the server's port. Such a socket
                // goes away when its connection fails; start again on the same port.
                if self.bind_retries < BIND_RETRIES_MAX && self.stderr().ends_with_bind_conflict() {
                    self.bind_retries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                    self.spawn();
                    return;
                }
                panic!(
                    "porter exited during start-up with {status}; stderr:\n{}",
                    self.stderr()
                );
            }
            // Every listener: they bind one after another (MQTT's only after its session store
            // loaded), and a bind conflict on a later one ends the process only after the Kafka
            // port already answered. A test that connects right after `restart` must find its
            // listener there.
            let accepting = |addr: &SocketAddr| {
                TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()
            };
            if accepting(&self.addr())
                && self.amqp_addr().is_none_or(|a| accepting(&a))
                && self.test_listen_addrs().iter().all(accepting)
            {
                self.bind_retries = 0;
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "porter did not accept connections within {START_TIMEOUT:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where the AMQP listener accepts: the harness's own port, or the test's `--amqp-listen`
    /// (None when that is `off`).
    fn amqp_addr(&self) -> Option<SocketAddr> {
        match self.args.iter().position(|a| a == "--amqp-listen") {
            Some(i) => self.args.get(i + 1)?.parse().ok(),
            None => Some(SocketAddr::from(([127, 0, 0, 1], self.amqp_port))),
        }
    }

    /// The addresses of the other `--<protocol>-listen` flags the test passed (not `off`).
    fn test_listen_addrs(&self) -> Vec<SocketAddr> {
        self.args
            .windows(2)
            .filter(|pair| pair[0].starts_with("--") && pair[0].ends_with("-listen"))
            .filter(|pair| pair[0] != "--amqp-listen")
            .filter_map(|pair| pair[1].parse().ok())
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    /// Panics unless the process is still running.
    pub fn assert_alive(&mut self) {
        let child = self.child.as_mut().expect("server not running");
        if let Some(status) = child.try_wait().unwrap() {
            self.child = None;
            panic!("porter died with {status}; stderr:\n{}", self.stderr());
        }
    }

    /// SIGKILL: the crash a test wants.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit 0.
    pub fn terminate(&mut self) {
        let mut child = self.child.take().expect("server not running");
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        self.sigterms_sent += 1;
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "porter did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.success(),
            "porter exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr()
        );
    }

    /// Starts the process again on the same data dir, port and flags (after `kill9` or
    /// `terminate`).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.spawn();
    }

    /// Everything the server(s) wrote to stderr so far, ANSI colours stripped.
    pub fn stderr(&self) -> String {
        let mut raw = Vec::new();
        if let Ok(mut f) = File::open(self.stderr_path()) {
            let _ = f.read_to_end(&mut raw);
        }
        strip_ansi(&String::from_utf8_lossy(&raw))
    }

    /// Waits (bounded) until a stderr line contains every one of `needles`; returns that line.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if let Some(line) = text
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
            {
                return line.to_string();
            }
            if Instant::now() > deadline {
                panic!("no stderr line contains all of {needles:?} within {timeout:?}; stderr:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Number of stderr lines containing every one of `needles`.
    pub fn count_log(&self, needles: &[&str]) -> usize {
        self.stderr()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        self.kill9();
        if std::thread::panicking() {
            if let Some(status) = exited {
                eprintln!("---- porter had already exited on its own: {status} ----");
            }
            let received = self.count_log(&["SIGTERM received"]) as u32;
            if received > self.sigterms_sent {
                eprintln!(
                    "---- porter logged {received} SIGTERMs but this test sent {}: another \
                     process signalled it ----",
                    self.sigterms_sent
                );
            }
            eprintln!(
                "---- porter stderr ({}) ----\n{}",
                self.stderr_path().display(),
                tail(&self.stderr(), 200)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Restarts after a bind conflict on the server's own port (see `Server::wait_ready`).
const BIND_RETRIES_MAX: u32 = 25;

trait BindConflict {
    fn ends_with_bind_conflict(&self) -> bool;
}

impl BindConflict for String {
    fn ends_with_bind_conflict(&self) -> bool {
        self.lines()
            .last()
            .is_some_and(|l| l.contains("Address already in use"))
    }
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A loopback port nobody listens on right now. (The OS may hand it out again before the server
/// binds it; on a test machine that race is rare enough.)
/// Resident memory of a process (VmRSS from /proc/<pid>/status), in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// The `*.log` segment files of a partition directory, oldest (lowest base offset) first.
pub fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(suffix))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// Raw Kafka client
// ---------------------------------------------------------------------------------------------

pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;

/// A blocking Kafka connection speaking through `kafka-protocol`.
pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

/// A fetched record, reduced to what tests compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            correlation_id: 0,
        }
    }

    /// Encodes a request frame (size prefix included) without sending it.
    pub fn frame<R: Request>(&mut self, version: i16, request: &R) -> BytesMut {
        self.correlation_id += 1;
        encode_frame(version, self.correlation_id, request)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame's body (after the size prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        assert!(
            (0..=256 * 1024 * 1024).contains(&size),
            "response size {size}"
        );
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Reads and decodes the next response, of a request of type `R` sent earlier (pipelined);
    /// returns its correlation id with it.
    pub fn read_response<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        let mut body = self
            .read_frame()
            .unwrap_or_else(|e| panic!("reading response to api {} v{version}: {e}", R::KEY));
        let header_version = R::Response::header_version(version);
        let header =
            kafka_protocol::messages::ResponseHeader::decode(&mut body, header_version).unwrap();
        let response = R::Response::decode(&mut body, version).expect("decoding response");
        (header.correlation_id, response)
    }

    /// Sends a request and decodes its response, checking the correlation id.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let frame = self.frame(version, request);
        self.stream.write_all(&frame).expect("sending request");
        let (correlation_id, response) = self.read_response::<R>(version);
        assert_eq!(correlation_id, self.correlation_id);
        response
    }

    /// Produces one batch with acks=-1; returns (error_code, base_offset).
    pub fn produce_batch(&mut self, topic: &str, partition: i32, batch: Bytes) -> (i16, i64) {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let response = self.call(PRODUCE_VERSION, &request);
        assert_eq!(response.responses.len(), 1, "{response:?}");
        let partitions = &response.responses[0].partition_responses;
        assert_eq!(partitions.len(), 1, "{response:?}");
        (partitions[0].error_code, partitions[0].base_offset)
    }

    /// Produces values as one uncompressed batch; panics unless acknowledged. Returns the base
    /// offset.
    pub fn produce_ok(&mut self, topic: &str, partition: i32, values: &[Vec<u8>]) -> i64 {
        let (code, base) = self.produce_batch(topic, partition, encode_batch(values));
        assert_eq!(code, 0, "produce to {topic}/{partition} failed with {code}");
        assert!(base >= 0);
        base
    }

    /// One Fetch from `offset`; returns (error_code, high_watermark, records at >= offset).
    pub fn fetch_once(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> (i16, i64, Vec<Fetched>) {
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]);
        let response = self.call(FETCH_VERSION, &request);
        assert_eq!(response.error_code, 0, "{response:?}");
        let data = &response.responses[0].partitions[0];
        let mut records = Vec::new();
        if let Some(bytes) = &data.records {
            records = decode_records(bytes.clone());
        }
        records.retain(|r| r.offset >= offset);
        (data.error_code, data.high_watermark, records)
    }

    /// Fetches every record of a partition from `from` to the high watermark (bounded time).
    pub fn fetch_all(&mut self, topic: &str, partition: i32, from: i64) -> Vec<Fetched> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        let mut next = from;
        loop {
            let (code, hw, records) = self.fetch_once(topic, partition, next, 4 * 1024 * 1024);
            assert_eq!(
                code, 0,
                "fetch {topic}/{partition}@{next} failed with {code}"
            );
            if let Some(last) = records.last() {
                next = last.offset + 1;
            }
            let empty = records.is_empty();
            out.extend(records);
            if next >= hw {
                return out;
            }
            assert!(
                !empty,
                "fetch {topic}/{partition}@{next} returned nothing below the high watermark {hw}"
            );
            assert!(Instant::now() < deadline, "fetch_all took over 60 s");
        }
    }

    /// Creates a topic with CreateTopics v5; returns the topic's error code.
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> i16 {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let response = self.call(5, &request);
        response.topics[0].error_code
    }

    /// Waits (bounded) for the server to close this connection: EOF or reset, not a timeout.
    /// Returns the bytes the server sent before closing.
    pub fn expect_closed(&mut self, within: Duration) -> Vec<u8> {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return got
                }
                Err(e) => panic!("server did not close the connection within {within:?}: {e}"),
            }
        }
    }
}

pub fn encode_frame<R: Request>(version: i16, correlation_id: i32, request: &R) -> BytesMut {
    let api_key = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("porter-it")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn record(value: &[u8]) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms(),
        key: None,
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    }
}

/// One uncompressed v2 batch holding `values`, offsets 0..n relative.
pub fn encode_batch(values: &[Vec<u8>]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = record(v);
            r.offset = i as i64;
            r
        })
        .collect();
    encode_records(&records, Compression::None)
}

/// Encodes `records` as v2 batches. kafka-protocol starts a new batch whenever
/// `offset - sequence` changes, so sequences are set to `offset - 1`: one batch for consecutive
/// offsets, with base sequence -1 as a non-idempotent producer sends.
pub fn encode_records(records: &[Record], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .map(|r| Record {
            sequence: r.offset as i32 - 1,
            ..r.clone()
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding batch");
    buf.freeze()
}

/// Decodes the complete batches of a Fetch response's records; a partial trailing batch (which
/// Kafka allows) is skipped.
pub fn decode_records(mut bytes: Bytes) -> Vec<Fetched> {
    let mut out = Vec::new();
    while bytes.remaining() >= 12 {
        let length = i32::from_be_bytes(bytes[8..12].try_into().unwrap());
        let total = 12 + length.max(0) as usize;
        if bytes.remaining() < total {
            break;
        }
        let mut batch = bytes.split_to(total);
        let set = RecordBatchDecoder::decode(&mut batch).expect("decoding fetched batch");
        out.extend(set.records.into_iter().map(|r| Fetched {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
        }));
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
