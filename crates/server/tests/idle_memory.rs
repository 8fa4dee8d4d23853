//! Issue 14: an idle connection must be cheap, and memory must go back after load. A real
//! `porter` process; 1,000 clients per protocol complete their handshake (AMQP: header,
//! `start / tune / open`, one `channel.open`; Kafka: ApiVersions and Metadata) and sit idle.
//! The broker's resident set may grow by at most [`IDLE_CONNECTION_BYTES_MAX`] per connection,
//! and after they close it must give back at least four fifths of what they added. Memory bounds, not timings:
//! the waits are hang guards.
//!
//! The target is 16 KiB per idle connection at 10,000 connections (`porter-bench idle`, release
//! build; see BENCHMARKS.md). The bound here has 50 % margin for a debug build and 1,000
//! connections; before issue 14 an idle AMQP connection cost 34 KiB and a Kafka one 81 KiB.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// Connections per protocol, fewer only if the file-descriptor hard limit says so.
const CONNECTIONS: usize = 1_000;
/// Below this many connections, noise in RSS would swamp a per-connection bound.
const CONNECTIONS_MIN: usize = 200;
/// Descriptors the test and the server need besides the connections.
const NOFILE_SLACK: u64 = 512;
/// Broker RSS growth allowed per idle connection.
const IDLE_CONNECTION_BYTES_MAX: f64 = 24.0 * 1024.0;
/// After the connections close, RSS must come back to within this share of what they added,
/// plus [`RETURNED_SLACK_BYTES`]: their memory returned to the OS, not kept by the allocator
/// (with mimalloc all of it stayed; with jemalloc 10-15 % plus about 1 MiB did, within 2 s).
const RETURNED_SHARE_MAX: u64 = 5;
const RETURNED_SLACK_BYTES: u64 = 1 << 20;
/// How long the broker gets to settle or give memory back: a hang guard.
const SETTLE_MAX: Duration = Duration::from_secs(30);

#[test]
fn idle_connections_are_cheap_and_their_memory_is_returned() {
    // The test holds a descriptor per connection, and so does the server, which inherits the
    // raised limit (one protocol's connections are open at a time).
    let connections = raise_nofile(CONNECTIONS, NOFILE_SLACK);
    let server = Server::start(&[]);
    let pid = server.pid();
    let amqp = SocketAddr::from(([127, 0, 0, 1], server.amqp_port));
    let kafka = server.addr();

    for (name, addr) in [("amqp", amqp), ("kafka", kafka)] {
        // The first connection allocates what all later ones share (the vhost, the runtime's
        // structures): not a per-connection cost.
        drop(handshake(name, addr, 0));
        std::thread::sleep(Duration::from_millis(500));
        let before = rss_bytes(pid);
        let open: Vec<TcpStream> = (1..=connections as i32)
            .map(|i| handshake(name, addr, i))
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let with_open = rss_bytes(pid);
        let per_connection = with_open.saturating_sub(before) as f64 / connections as f64;
        eprintln!(
            "{name}: rss {:.1} MiB before, {:.1} MiB with {connections} idle connections: \
             {:.1} KiB each",
            before as f64 / (1 << 20) as f64,
            with_open as f64 / (1 << 20) as f64,
            per_connection / 1024.0
        );
        assert!(
            per_connection <= IDLE_CONNECTION_BYTES_MAX,
            "{name}: an idle connection costs {per_connection:.0} bytes of broker RSS, over \
             {IDLE_CONNECTION_BYTES_MAX}"
        );

        drop(open);
        let allowed =
            before + with_open.saturating_sub(before) / RETURNED_SHARE_MAX + RETURNED_SLACK_BYTES;
        let deadline = Instant::now() + SETTLE_MAX;
        let after = loop {
            let rss = rss_bytes(pid);
            if rss <= allowed || Instant::now() > deadline {
                break rss;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        eprintln!(
            "{name}: rss {:.1} MiB after they closed",
            after as f64 / (1 << 20) as f64
        );
        assert!(
            after <= allowed,
            "{name}: rss stayed at {after} bytes after the connections closed ({before} before, \
             {with_open} with them open)"
        );
    }
}

/// Raises this process's soft RLIMIT_NOFILE (the server inherits it) to `connections` plus
/// `slack`, within the hard limit; returns how many connections that allows.
fn raise_nofile(connections: usize, slack: u64) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let want = (connections as u64 + slack).min(limit.rlim_max);
        if limit.rlim_cur < want {
            limit.rlim_cur = want;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
        let allowed = limit.rlim_cur.saturating_sub(slack) as usize;
        assert!(
            allowed >= CONNECTIONS_MIN,
            "the file-descriptor limit ({}) allows only {allowed} connections",
            limit.rlim_max
        );
        allowed.min(connections)
    }
}

fn handshake(protocol: &str, addr: SocketAddr, index: i32) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    match protocol {
        "amqp" => amqp_handshake(&mut stream),
        _ => kafka_handshake(&mut stream, index),
    }
    stream
}

/// Header, start-ok (PLAIN guest/guest), tune-ok (heartbeats off), open "/", channel.open 1.
fn amqp_handshake(stream: &mut TcpStream) {
    stream.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    amqp_expect(stream, (10, 10));
    let mut start_ok = vec![0, 10, 0, 11, 0, 0, 0, 0]; // an empty client-properties table
    start_ok.extend_from_slice(b"\x05PLAIN");
    let response = b"\0guest\0guest";
    start_ok.extend_from_slice(&(response.len() as u32).to_be_bytes());
    start_ok.extend_from_slice(response);
    start_ok.extend_from_slice(b"\x05en_US");
    stream.write_all(&amqp_frame(0, &start_ok)).unwrap();
    let tune = amqp_expect(stream, (10, 30));
    let mut tune_ok = vec![0, 10, 0, 31];
    tune_ok.extend_from_slice(&tune[4..10]); // channel_max and frame_max as offered
    tune_ok.extend_from_slice(&[0, 0]); // heartbeat off
    let mut sent = amqp_frame(0, &tune_ok);
    sent.extend_from_slice(&amqp_frame(0, &[0, 10, 0, 40, 1, b'/', 0, 0]));
    stream.write_all(&sent).unwrap();
    amqp_expect(stream, (10, 41));
    stream
        .write_all(&amqp_frame(1, &[0, 20, 0, 10, 0]))
        .unwrap();
    amqp_expect(stream, (20, 11));
}

fn amqp_frame(channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![1u8];
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(0xCE);
    frame
}

/// Reads one method frame, checks it is `want` (class, method), returns its payload.
fn amqp_expect(stream: &mut TcpStream, want: (u16, u16)) -> Vec<u8> {
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).unwrap();
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    let mut payload = vec![0u8; size + 1];
    stream.read_exact(&mut payload).unwrap();
    assert_eq!(payload.pop(), Some(0xCE));
    let got = (
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    );
    assert_eq!(got, want, "unexpected AMQP method");
    payload
}

/// ApiVersions v0, then Metadata v1 for no topics.
fn kafka_handshake(stream: &mut TcpStream, correlation: i32) {
    kafka_request(stream, 18, 0, correlation, &[]);
    kafka_request(stream, 3, 1, correlation, &0i32.to_be_bytes());
}

fn kafka_request(
    stream: &mut TcpStream,
    api_key: i16,
    version: i16,
    correlation: i32,
    body: &[u8],
) {
    let client_id = b"idle-memory";
    let mut frame = vec![0u8; 4];
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation.to_be_bytes());
    frame.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    frame.extend_from_slice(client_id);
    frame.extend_from_slice(body);
    let size = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&frame).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut answer = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(
        answer[..4],
        correlation.to_be_bytes(),
        "answer to another request"
    );
}
