//! A client speaking another protocol on the AMQP port, with raw bytes over loopback: as the
//! spec asks, it gets the AMQP 0-9-1 protocol header back and the connection closes, at once
//! (not at the handshake deadline), with a reason naming what the client speaks (the line the
//! kit's listener logs).

use std::sync::Arc;
use std::time::Duration;

use porter_core::{Broker, BrokerConfig};
use porter_gateway_amqp::connection::PROTOCOL_HEADER;
use porter_gateway_amqp::{AmqpConfig, AmqpProtocol};
use porter_gateway_kit::{CloseReason, ClosedBy, Connection, MemoryBudget, Protocol, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A hang guard, not a performance bound. The handshake deadline is set far beyond it, so a
/// connection that waited for more header bytes would fail the test rather than be cut.
const WAIT: Duration = Duration::from_secs(10);

/// Serves one loopback connection on which the client sends `bytes` and reads until the server
/// closes; returns why the server closed and what the client read.
async fn serve_one(bytes: &'static [u8]) -> (CloseReason, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap();
    let config = AmqpConfig::default();
    let mut limits = config.listener_limits(Duration::from_secs(5));
    limits.deadlines.handshake = WAIT * 10;
    let budget = MemoryBudget::new(&limits).unwrap();
    let protocol = AmqpProtocol::new(broker, config);
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut read = Vec::new();
        let _ = stream.read_to_end(&mut read).await;
        read
    });
    let (stream, peer) = tcp.accept().await.unwrap();
    let registry = Registry::new("amqp", 4);
    let registration = registry.register(peer, addr).unwrap();
    let conn = Connection::new(registration, budget.connection(), Arc::new(limits));
    let reason = tokio::time::timeout(WAIT, protocol.serve(stream, &conn))
        .await
        .expect("the connection was not closed");
    let read = tokio::time::timeout(WAIT, client)
        .await
        .expect("the client was not closed")
        .unwrap();
    (reason, read)
}

/// What librdkafka sends first: ApiVersions v3 (31 bytes after the size).
const KAFKA_API_VERSIONS: &[u8] =
    b"\x00\x00\x00\x1f\x00\x12\x00\x03\x00\x00\x00\x01\x00\x07rdkafka\x00\x07rdkafka\x062.3.0\x00";

#[tokio::test]
async fn a_kafka_client_gets_our_header_and_is_named() {
    let (reason, read) = serve_one(KAFKA_API_VERSIONS).await;
    assert_eq!(read, PROTOCOL_HEADER);
    assert_eq!(reason.by, ClosedBy::ProtocolError);
    assert!(
        reason
            .text
            .starts_with("a Kafka client connected to the AMQP listener at 127.0.0.1:"),
        "{reason}"
    );
    assert!(
        reason
            .text
            .contains("(Porter serves Kafka on port 9092 by default); answered with the AMQP 0-9-1 protocol header"),
        "{reason}"
    );
}

#[tokio::test]
async fn http_and_tls_clients_get_our_header_and_are_named() {
    for (bytes, named) in [
        (&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], "an HTTP client"),
        (
            b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03",
            "a TLS client",
        ),
        // Fewer than 8 bytes: the client waits for an answer, and gets one.
        (b"*1\r\n", "a Redis client"),
    ] {
        let (reason, read) = serve_one(bytes).await;
        assert_eq!(read, PROTOCOL_HEADER);
        assert!(reason.text.starts_with(named), "{reason}");
    }
}

#[tokio::test]
async fn an_amqp_1_0_client_is_told_it_is_not_supported() {
    let (reason, read) = serve_one(b"AMQP\x03\x01\x00\x00").await;
    assert_eq!(read, PROTOCOL_HEADER);
    assert!(reason.text.starts_with("an AMQP 1.0 client"), "{reason}");
    assert!(
        reason.text.contains("Porter does not support AMQP 1.0"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_unknown_header_is_shown() {
    let (reason, read) = serve_one(b"HELO porter\r\n").await;
    assert_eq!(read, PROTOCOL_HEADER);
    assert!(
        reason
            .text
            .contains(r#"sent the AMQP listener at 127.0.0.1:"#)
            && reason.text.contains(r#""HELO por"#),
        "{reason}"
    );
}
