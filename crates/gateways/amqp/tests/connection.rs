//! The AMQP connection on the gateway kit's listener, with a raw client over TCP: the goodbye
//! on shutdown and on a management close (`connection.close` 320 CONNECTION_FORCED), the
//! registry entry, and the handshake deadline.

use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use amq_protocol::types::LongString;
use bytes::BytesMut;
use porter_core::message::Message;
use porter_core::queue::QueueDefinition;
use porter_core::{Broker, BrokerConfig};
use porter_gateway_amqp::connection::PROTOCOL_HEADER;
use porter_gateway_amqp::frame::{encode_method, Frame, FrameCodec};
use porter_gateway_amqp::{AmqpConfig, AmqpProtocol};
use porter_gateway_kit::{CloseReason, Drained, Listener, MemoryBudget, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

/// A hang guard, not a performance bound.
const WAIT: Duration = Duration::from_secs(10);

struct Server {
    addr: std::net::SocketAddr,
    registry: Registry,
    shutdown: CancellationToken,
    task: JoinHandle<Drained>,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

async fn start(handshake: Duration) -> Server {
    start_with(handshake, AmqpConfig::default()).await.0
}

async fn start_with(handshake: Duration, config: AmqpConfig) -> (Server, MemoryBudget) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .unwrap();
    let mut limits = config.listener_limits(Duration::from_secs(5));
    limits.deadlines.handshake = handshake;
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = Listener::new(tcp, "amqp", limits).unwrap();
    let (addr, registry) = (listener.local_addr().unwrap(), listener.registry());
    let budget = listener.budget();
    let shutdown = CancellationToken::new();
    let protocol = Arc::new(AmqpProtocol::new(broker.clone(), config));
    let task = tokio::spawn(listener.serve(protocol, shutdown.clone()));
    let server = Server {
        addr,
        registry,
        shutdown,
        task,
        broker,
        _dir: dir,
    };
    (server, budget)
}

/// A client speaking raw frames.
struct Client {
    tcp: TcpStream,
    codec: FrameCodec,
    buffer: BytesMut,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        Client {
            tcp: TcpStream::connect(addr).await.unwrap(),
            codec: FrameCodec { frame_max: 131_072 },
            buffer: BytesMut::new(),
        }
    }

    async fn send(&mut self, method: AMQPClass) {
        self.send_on(0, method).await
    }

    async fn send_on(&mut self, channel: u16, method: AMQPClass) {
        let mut bytes = Vec::new();
        encode_method(channel, method, &mut bytes);
        self.tcp.write_all(&bytes).await.unwrap();
    }

    /// The next frame, or `None` when the server closed the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buffer).unwrap() {
                return Some(frame);
            }
            let read = tokio::time::timeout(WAIT, self.tcp.read_buf(&mut self.buffer))
                .await
                .expect("the server answers or closes");
            if read.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    async fn method(&mut self) -> AMQPClass {
        match self.next().await {
            Some(Frame::Method(0, method)) => method,
            other => panic!("expected a connection method, got {other:?}"),
        }
    }

    /// Header, start-ok (PLAIN guest), tune-ok, open.
    async fn open(addr: std::net::SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        c.tcp.write_all(PROTOCOL_HEADER).await.unwrap();
        assert!(matches!(
            c.method().await,
            AMQPClass::Connection(connection::AMQPMethod::Start(_))
        ));
        c.send(AMQPClass::Connection(connection::AMQPMethod::StartOk(
            connection::StartOk {
                client_properties: Default::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from(b"\0guest\0guest".to_vec()),
                locale: "en_US".into(),
            },
        )))
        .await;
        let AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) = c.method().await else {
            panic!("expected connection.tune");
        };
        c.send(AMQPClass::Connection(connection::AMQPMethod::TuneOk(
            connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            },
        )))
        .await;
        c.send(AMQPClass::Connection(connection::AMQPMethod::Open(
            connection::Open {
                virtual_host: "/".into(),
            },
        )))
        .await;
        assert!(matches!(
            c.method().await,
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))
        ));
        c
    }

    /// Expects `connection.close`, answers `close-ok`, and returns (code, text).
    async fn closed_by_server(&mut self) -> (u16, String) {
        let AMQPClass::Connection(connection::AMQPMethod::Close(close)) = self.method().await
        else {
            panic!("expected connection.close");
        };
        self.send(AMQPClass::Connection(connection::AMQPMethod::CloseOk(
            connection::CloseOk {},
        )))
        .await;
        assert!(self.next().await.is_none(), "the server closes the stream");
        (close.reply_code, close.reply_text.as_str().to_string())
    }
}

#[tokio::test]
async fn shutdown_says_goodbye_with_320_and_drains() {
    let server = start(Duration::from_secs(10)).await;
    let mut a = Client::open(server.addr).await;
    let mut b = Client::open(server.addr).await;
    assert_eq!(server.registry.len(), 2);
    server.shutdown.cancel();
    for client in [&mut a, &mut b] {
        let (code, text) = client.closed_by_server().await;
        assert_eq!(code, 320);
        assert_eq!(text, "CONNECTION_FORCED - broker shutdown");
    }
    let drained = tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(drained.still_open.is_empty());
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn the_registry_lists_the_user_and_closes_a_connection_with_a_goodbye() {
    let server = start(Duration::from_secs(10)).await;
    let mut c = Client::open(server.addr).await;
    let listed = server.registry.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].protocol, "amqp");
    assert_eq!(listed[0].user.as_deref(), Some("guest"));
    assert_eq!(listed[0].peer, c.tcp.local_addr().unwrap());
    assert!(listed[0].bytes_in > 8 && listed[0].bytes_out > 0);
    assert!(server
        .registry
        .close(listed[0].id, CloseReason::local(0, "closed by operator")));
    let (code, text) = c.closed_by_server().await;
    assert_eq!(code, 320);
    assert_eq!(text, "CONNECTION_FORCED - closed by operator");
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_cut_at_the_deadline() {
    let server = start(Duration::from_millis(200)).await;
    let mut silent = Client::connect(server.addr).await;
    assert!(silent.next().await.is_none(), "closed without a word");
    let mut stalled = Client::connect(server.addr).await;
    stalled.tcp.write_all(PROTOCOL_HEADER).await.unwrap();
    assert!(matches!(
        stalled.next().await,
        Some(Frame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Start(_))
        ))
    ));
    // No start-ok: the deadline covers the negotiation too.
    assert!(stalled.next().await.is_none());
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_consumer_that_never_reads_is_closed_at_the_write_stall_with_its_memory_bounded() {
    const SHARE: u64 = 1 << 20;
    const BODY: usize = 64 << 10;
    const MESSAGES: usize = 400;
    let config = AmqpConfig {
        connection_share_bytes: SHARE,
        write_stall: Duration::from_millis(300),
        message_bytes_max: 2 * BODY as u64,
        ..AmqpConfig::default()
    };
    let message_bytes_max = config.message_bytes_max;
    let (server, budget) = start_with(Duration::from_secs(10), config).await;
    let vhost = server.broker.vhost("/").unwrap();
    vhost
        .declare_queue(
            QueueDefinition {
                name: "big".into(),
                id: Default::default(),
                durable: false,
                exclusive_owner: None,
                auto_delete: false,
                arguments: Default::default(),
            },
            false,
            0,
        )
        .await
        .unwrap();
    // 25 MiB waiting: more than the kernel's socket buffers and the connection's share.
    for _ in 0..MESSAGES {
        let message = Message {
            exchange: String::new(),
            routing_key: "big".into(),
            properties: Default::default(),
            body: vec![7u8; BODY].into(),
        };
        vhost.publish("", message).await.unwrap();
    }
    let mut c = Client::open(server.addr).await;
    c.send_on(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    c.send_on(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "big".into(),
            consumer_tag: "never-reads".into(),
            no_ack: true,
            ..Default::default()
        })),
    )
    .await;
    // The client reads nothing from here on. The connection holds at most its share plus one
    // burst, then the write stalls and the connection is closed, its memory released.
    let bound = SHARE + porter_gateway_amqp::limits::burst_bytes_max(message_bytes_max);
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    while !server.registry.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still open: {:?}",
            server.registry.list()
        );
        most = most.max(budget.used_bytes());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(most > 0, "the queued answers were charged");
    assert!(most <= bound, "held {most} bytes, bound {bound}");
    assert_eq!(budget.used_bytes(), 0, "everything released at close");
    drop(c);
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
}
