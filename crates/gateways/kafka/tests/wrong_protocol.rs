//! A client speaking another protocol on the Kafka port, with raw bytes over loopback: the
//! connection closes at once with a reason naming what the client speaks (the line the kit's
//! listener logs), an HTTP client gets a 400 page saying which port this is, and Kafka clients
//! are unaffected (a later oversized frame keeps the size error).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use porter_core::{Broker, BrokerConfig};
use porter_gateway_kafka::api::Context;
use porter_gateway_kafka::{connection, KafkaConfig};
use porter_gateway_kit::{CloseReason, ClosedBy, Connection, MemoryBudget, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A hang guard, not a performance bound.
const WAIT: Duration = Duration::from_secs(10);

/// Serves one loopback connection on which the client sends `bytes` and reads until the server
/// closes; returns why the server closed and what the client read.
async fn serve_one(bytes: Vec<u8>) -> (CloseReason, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap();
    let config = KafkaConfig::default();
    let limits = config.listener_limits(Duration::from_secs(5));
    let budget = MemoryBudget::new(&limits).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut read = Vec::new();
        let _ = stream.read_to_end(&mut read).await;
        read
    });
    let (stream, peer) = tcp.accept().await.unwrap();
    let registry = Registry::new("kafka", 4);
    let registration = registry.register(peer, addr).unwrap();
    let conn = Connection::new(registration, budget.connection(), Arc::new(limits));
    let ctx = Arc::new(Context::new(broker, config));
    let reason = tokio::time::timeout(WAIT, connection::run(stream, &conn, ctx))
        .await
        .expect("the connection was not closed");
    let read = tokio::time::timeout(WAIT, client)
        .await
        .expect("the client was not closed")
        .unwrap();
    (reason, read)
}

fn api_versions_frame() -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("test")))
        .encode(&mut buf, ApiKey::ApiVersions.request_header_version(3))
        .unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("test"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .encode(&mut buf, 3)
        .unwrap();
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.to_vec()
}

#[tokio::test]
async fn an_amqp_client_is_told_where_amqp_is() {
    let (reason, read) = serve_one(b"AMQP\x00\x00\x09\x01".to_vec()).await;
    assert_eq!(reason.by, ClosedBy::ProtocolError);
    assert!(
        reason
            .text
            .starts_with("an AMQP 0-9-1 client connected to the Kafka listener at 127.0.0.1:"),
        "{reason}"
    );
    assert!(
        reason
            .text
            .ends_with("(Porter serves AMQP 0-9-1 on port 5672 by default)"),
        "{reason}"
    );
    assert!(read.is_empty(), "the AMQP client was sent {read:?}");
}

#[tokio::test]
async fn an_http_client_gets_a_page_saying_this_is_the_kafka_port() {
    let (reason, read) =
        serve_one(b"GET / HTTP/1.1\r\nHost: localhost:9092\r\nUser-Agent: curl\r\n\r\n".to_vec())
            .await;
    assert!(reason.text.starts_with("an HTTP client"), "{reason}");
    let page = String::from_utf8(read).unwrap();
    assert!(page.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{page}");
    assert!(
        page.ends_with(
            "This is Porter's Kafka port: it speaks the Kafka wire protocol, not HTTP.\n"
        ),
        "{page}"
    );
}

#[tokio::test]
async fn a_tls_client_is_told_tls_is_not_enabled() {
    // The start of a TLS 1.2 ClientHello record.
    let hello = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03".to_vec();
    let (reason, read) = serve_one(hello).await;
    assert!(reason.text.starts_with("a TLS client"), "{reason}");
    assert!(
        reason.text.contains("TLS is not enabled on this listener"),
        "{reason}"
    );
    assert!(read.is_empty());
}

#[tokio::test]
async fn unknown_first_bytes_keep_the_size_error_and_show_the_bytes() {
    let (reason, _) = serve_one(b"hello there\n".to_vec()).await;
    assert!(
        reason
            .text
            .starts_with("bad framing: frame of 1751477356 bytes exceeds the limit"),
        "{reason}"
    );
    assert!(
        reason
            .text
            .contains("first bytes (68 65 6c 6c 6f 20 74 68 65 72 65 0a) are no Kafka request"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_kafka_client_is_served_and_a_later_oversized_frame_is_a_size_error() {
    let mut bytes = api_versions_frame();
    bytes.extend_from_slice(b"AMQP\x00\x00\x09\x01");
    let (reason, read) = serve_one(bytes).await;
    // The ApiVersions answer: size, then correlation id 7.
    assert!(read.len() > 8, "no answer to ApiVersions: {read:?}");
    assert_eq!(read[4..8], 7i32.to_be_bytes());
    assert_eq!(
        reason.text,
        format!(
            "bad framing: frame of 1095586128 bytes exceeds the limit of {}",
            KafkaConfig::default().request_bytes_max
        )
    );
}
