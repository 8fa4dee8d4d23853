//! The WebSocket transport driven by a real WebSocket client (tokio-tungstenite), with a small
//! line protocol standing in for MQTT and STOMP: packets spanning frames and frames holding
//! several, subprotocol negotiation, the frame limit, `connections_max`, the registry, and the
//! goodbye and close frame on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use porter_gateway_http::{HttpConfig, HttpListener, Routes, WebSocketConfig, WebSocketRoute};
use porter_gateway_kit::{
    CloseReason, Connection, Drained, Endpoint, ListenerLimits, Protocol, Stream,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Reads lines and answers each upper-cased, in one write; on a close request writes "bye\n"
/// (its goodbye) and ends.
struct Shout;

impl Protocol for Shout {
    async fn serve<S: Stream>(&self, stream: S, conn: &Connection) -> CloseReason {
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        loop {
            tokio::select! {
                read = stream.read_line(&mut line) => match read {
                    Ok(0) => return CloseReason::peer("end of stream"),
                    Err(e) => return CloseReason::protocol(0, e.to_string()),
                    Ok(n) => {
                        conn.counters().count_in(n as u64);
                        let _ = stream.write_all(line.to_uppercase().as_bytes()).await;
                        let _ = stream.flush().await;
                        line.clear();
                    }
                },
                reason = conn.closing() => {
                    let _ = stream.write_all(b"bye\n").await;
                    let _ = stream.flush().await;
                    return reason;
                }
            }
        }
    }
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Server {
    addr: SocketAddr,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Drained>,
}

async fn start(websocket: WebSocketConfig) -> Server {
    let config = HttpConfig {
        websocket: websocket.clone(),
        ..HttpConfig::default()
    };
    let route = WebSocketRoute::new(
        "shout-ws",
        &["mqtt", "mqttv3.1"],
        Arc::new(Shout),
        ListenerLimits::default(),
        websocket,
    )
    .unwrap();
    let routes = Routes::new().websocket("/shout", route);
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = HttpListener::new(tcp, config, routes, Duration::from_secs(5)).unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoint = listener.endpoints()[0].clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(listener.serve(shutdown.clone()));
    Server {
        addr,
        endpoint,
        shutdown,
        task,
    }
}

async fn connect(addr: SocketAddr, subprotocol: &str) -> Result<(Client, Option<String>), WsError> {
    let mut request = format!("ws://{addr}/shout").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", subprotocol.parse().unwrap());
    let (client, response) = tokio_tungstenite::connect_async(request).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((client, chosen))
}

/// Payload bytes of data frames until `want` bytes arrived.
async fn receive(client: &mut Client, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("an answer")
            .expect("open")
            .unwrap();
        match message {
            Message::Binary(data) => got.extend_from_slice(&data),
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

/// The close frame's code, after any data frames.
async fn close_code(client: &mut Client) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("the server closes")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn packets_span_frames_and_frames_hold_several() {
    let server = start(WebSocketConfig::default()).await;
    let (mut client, chosen) = connect(server.addr, "mqtt").await.unwrap();
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    client.send(Message::binary(&b"hel"[..])).await.unwrap();
    client.send(Message::text("lo\nwor")).await.unwrap();
    client.send(Message::binary(&b"ld\n"[..])).await.unwrap();
    assert_eq!(receive(&mut client, 12).await, b"HELLO\nWORLD\n");
    let list = server.endpoint.registry().list();
    assert_eq!(list.len(), 1, "the WebSocket connection is in its registry");
    assert_eq!(list[0].protocol, "shout-ws");
    assert_eq!(list[0].bytes_in, 12);
    client.close(None).await.unwrap();
    until(|| server.endpoint.registry().is_empty()).await;
    server.shutdown.cancel();
    assert!(server.task.await.unwrap().still_open.is_empty());
}

#[tokio::test]
async fn the_older_subprotocol_is_accepted_too() {
    let server = start(WebSocketConfig::default()).await;
    let (mut client, chosen) = connect(server.addr, "mqttv3.1").await.unwrap();
    assert_eq!(chosen.as_deref(), Some("mqttv3.1"));
    client.send(Message::text("x\n")).await.unwrap();
    assert_eq!(receive(&mut client, 2).await, b"X\n");
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = start(WebSocketConfig {
        frame_bytes_max: 1024,
        message_bytes_max: 1024,
        ..WebSocketConfig::default()
    })
    .await;
    let (mut client, _) = connect(server.addr, "mqtt").await.unwrap();
    client.send(Message::text("small\n")).await.unwrap();
    assert_eq!(receive(&mut client, 6).await, b"SMALL\n");
    client
        .send(Message::binary(vec![b'a'; 2000]))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, Some(CloseCode::Size));
    until(|| server.endpoint.registry().is_empty()).await;
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn past_connections_max_the_upgrade_is_refused_until_a_slot_frees() {
    let server = start(WebSocketConfig {
        connections_max: 1,
        ..WebSocketConfig::default()
    })
    .await;
    let (mut first, _) = connect(server.addr, "mqtt").await.unwrap();
    match connect(server.addr, "mqtt").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("second connection not refused: {:?}", other.map(|_| ())),
    }
    assert_eq!(server.endpoint.registry().len(), 1);
    first.close(None).await.unwrap();
    until(|| server.endpoint.registry().is_empty()).await;
    let (mut third, _) = connect(server.addr, "mqtt").await.unwrap();
    third.send(Message::text("three\n")).await.unwrap();
    assert_eq!(receive(&mut third, 6).await, b"THREE\n");
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn shutdown_sends_the_protocol_goodbye_then_close_1001() {
    let server = start(WebSocketConfig::default()).await;
    let (mut client, _) = connect(server.addr, "mqtt").await.unwrap();
    client.send(Message::text("hi\n")).await.unwrap();
    assert_eq!(receive(&mut client, 3).await, b"HI\n");
    server.shutdown.cancel();
    assert_eq!(receive(&mut client, 4).await, b"bye\n");
    assert_eq!(close_code(&mut client).await, Some(CloseCode::Away));
    let drained = server.task.await.unwrap();
    assert!(drained.still_open.is_empty());
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the listener stopped accepting"
    );
}

/// One plain HTTP/1.1 request; the response as text.
async fn http_get(addr: SocketAddr, path: &str, extra: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn healthz_the_chat_page_and_the_header_limit() {
    let server = start(WebSocketConfig::default()).await;
    let health = http_get(server.addr, "/healthz", "").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"));
    let page = http_get(server.addr, "/chat/", "").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"));
    let script = http_get(server.addr, "/chat/mqtt.min.js", "").await;
    assert!(script.starts_with("HTTP/1.1 200"));
    let missing = http_get(server.addr, "/nothing", "").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let huge = format!("x-big: {}\r\n", "a".repeat(64 << 10));
    let refused = http_get(server.addr, "/healthz", &huge).await;
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed_at_the_idle_deadline() {
    let config = HttpConfig {
        idle: Duration::from_millis(200),
        ..HttpConfig::default()
    };
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = HttpListener::new(tcp, config, Routes::new(), Duration::from_secs(5)).unwrap();
    let (addr, registry) = (listener.local_addr().unwrap(), listener.registry());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(listener.serve(shutdown.clone()));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut rest))
        .await
        .expect("the server closes a silent connection")
        .ok();
    until(|| registry.is_empty()).await;
    shutdown.cancel();
    task.await.unwrap();
}
