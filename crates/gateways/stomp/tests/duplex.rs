//! STOMP served over an in-memory duplex stream instead of TCP: what the HTTP gateway does
//! when it hands `StompProtocol::serve` a WebSocket-backed stream. Nothing here assumes a
//! socket; the broker is real (a temp dir).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use porter_core::{Broker, BrokerConfig};
use porter_gateway_kit::auth::{StaticUser, StaticUsers};
use porter_gateway_kit::{ClosedBy, Connection, MemoryBudget, Protocol, Registry};
use porter_gateway_stomp::{StompConfig, StompProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A hang guard, not a performance bound.
const WAIT: Duration = Duration::from_secs(10);

async fn read_frame(client: &mut DuplexStream, pending: &mut Vec<u8>) -> String {
    loop {
        while pending.first().is_some_and(|b| *b == b'\n') {
            pending.remove(0);
        }
        // The body ends where content-length says (it may hold NUL), else at the first NUL.
        let head_end = pending
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|at| at + 2);
        let length = head_end.and_then(|end| {
            String::from_utf8_lossy(&pending[..end])
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.parse::<usize>().unwrap())
                })
        });
        let end = match (head_end, length) {
            (Some(h), Some(len)) if pending.len() > h + len => Some(h + len),
            (Some(_), Some(_)) => None,
            _ => pending.iter().position(|b| *b == 0),
        };
        if let Some(at) = end {
            let frame: Vec<u8> = pending.drain(..=at).collect();
            return String::from_utf8_lossy(&frame[..at]).into_owned();
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, client.read(&mut chunk))
            .await
            .expect("a frame in time")
            .unwrap();
        if n == 0 {
            return String::from_utf8_lossy(pending).into_owned();
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// Serves one connection of `protocol` over an in-memory stream; returns the client's end and
/// the serving task (what the HTTP gateway does with a WebSocket).
fn serve_duplex(
    protocol: StompProtocol,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<porter_gateway_kit::CloseReason>,
) {
    let limits = protocol.config().listener_limits(Duration::from_secs(5));
    let budget = MemoryBudget::new(&limits).unwrap();
    let registry = Registry::new("stomp", 4);
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let conn = Connection::new(
        registry.register(addr, addr).unwrap(),
        budget.connection(),
        Arc::new(limits),
    );
    let (client, server) = tokio::io::duplex(64 << 10);
    let served = tokio::spawn(async move { protocol.serve(server, &conn).await });
    (client, served)
}

fn broker(dir: &tempfile::TempDir) -> Arc<Broker> {
    Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn the_protocols_own_authenticator_checks_logins_on_a_transport_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let users = StaticUsers {
        users: vec![StaticUser {
            name: "app".into(),
            password: "s3cret".into(),
            loopback_only: false,
        }],
    };
    let protocol = StompProtocol::new(broker(&dir), StompConfig::default())
        .with_authenticator(Arc::new(users));
    for (passcode, expect) in [("wrong", "ERROR\n"), ("s3cret", "CONNECTED\n")] {
        let (mut client, served) = serve_duplex(protocol.clone());
        let connect = format!("CONNECT\naccept-version:1.2\nlogin:app\npasscode:{passcode}\n\n\0");
        client.write_all(connect.as_bytes()).await.unwrap();
        let mut pending = Vec::new();
        let answer = read_frame(&mut client, &mut pending).await;
        assert!(answer.starts_with(expect), "{passcode}: {answer}");
        drop(client);
        tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_session_over_an_in_memory_stream() {
    let dir = tempfile::tempdir().unwrap();
    let protocol = StompProtocol::new(broker(&dir), StompConfig::default());
    let (mut client, served) = serve_duplex(protocol);
    let mut pending = Vec::new();
    client
        .write_all(b"STOMP\naccept-version:1.1,1.2\nhost:/\n\n\0")
        .await
        .unwrap();
    let connected = read_frame(&mut client, &mut pending).await;
    assert!(
        connected.starts_with("CONNECTED\nversion:1.2\n"),
        "{connected}"
    );
    client
        .write_all(
            b"SUBSCRIBE\nid:0\ndestination:/queue/q\nack:client\n\n\0\
              SEND\ndestination:/queue/q\nx-note:a\\cb\ncontent-length:3\n\nh\0i\0",
        )
        .await
        .unwrap();
    let message = read_frame(&mut client, &mut pending).await;
    assert!(message.starts_with("MESSAGE\n"), "{message}");
    assert!(
        message.contains("\nx-note:a\\cb\n"),
        "escaped on the way out: {message}"
    );
    assert!(message.contains("\nack:"), "{message}");
    // A body holding NUL comes with its content-length.
    assert!(message.contains("\ncontent-length:3\n"), "{message}");
    assert!(message.ends_with("\n\nh\0i"), "{message:?}");
    client
        .write_all(b"NACK\nid:999\nreceipt:r\n\n\0")
        .await
        .unwrap();
    let error = read_frame(&mut client, &mut pending).await;
    assert!(error.starts_with("ERROR\n"), "{error}");
    assert!(error.contains("message:unknown message"), "{error}");
    assert!(error.contains("receipt-id:r"), "{error}");
    drop(client);
    let reason = tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
    assert_eq!(reason.by, ClosedBy::ProtocolError);
}
