//! The commands driven without a socket: frames go into [`Channels`] over a real broker in a
//! temporary directory, and what the server would send is read back from the [`Out`] buffer,
//! as a client would see it.

use std::sync::Arc;
use std::time::Duration;

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::{channel, confirm, exchange, queue, tx, AMQPClass};
use bytes::Bytes;
use porter_core::{Broker, BrokerConfig};
use porter_gateway_amqp::commands::{Channels, Flow};
use porter_gateway_amqp::error::AmqpError;
use porter_gateway_amqp::frame::Frame;
use porter_gateway_amqp::out::Out;
use porter_gateway_amqp::session::{Capabilities, Session, SessionFeeds};
use porter_gateway_amqp::AmqpConfig;

/// A hang guard for events that come from the broker's tasks, not a performance bound.
const WAIT: Duration = Duration::from_secs(10);

/// One connection's command layer over a fresh broker, with no socket.
struct Harness {
    channels: Channels,
    feeds: SessionFeeds,
    out: Out,
    _broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn open() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        })
        .unwrap();
        let (session, feeds) = Session::new(
            broker.vhost("/").unwrap(),
            "guest".into(),
            Arc::new(AmqpConfig::default()),
            Capabilities {
                consumer_cancel_notify: true,
                connection_blocked: true,
            },
            Default::default(),
        );
        Harness {
            channels: Channels::new(session, 16),
            feeds,
            out: Out::new(131_072),
            _broker: broker,
            _dir: dir,
        }
    }

    /// One frame as a burst of its own, as the connection hands it over: then the batched
    /// publishes go to the core and the gathered acks are applied.
    async fn frame(&mut self, frame: Frame) -> Result<Vec<Frame>, AmqpError> {
        let flow = self.channels.on_frame(frame, &mut self.out).await?;
        assert_eq!(flow, Flow::Continue);
        self.channels.end_burst(&mut self.out).await?;
        Ok(self.out.take_frames())
    }

    async fn send(&mut self, channel: u16, method: AMQPClass) -> Vec<Frame> {
        self.frame(Frame::Method(channel, method))
            .await
            .expect("not a connection error")
    }

    /// `basic.publish` with its header and body frames; returns what the server answered.
    async fn publish(&mut self, channel: u16, publish: basic::Publish, body: &str) -> Vec<Frame> {
        let mut answered = self
            .send(
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
            )
            .await;
        let header = AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: AMQPProperties::default(),
        };
        answered.extend(self.frame(Frame::Header(channel, header)).await.unwrap());
        if !body.is_empty() {
            let bytes = Bytes::copy_from_slice(body.as_bytes());
            answered.extend(self.frame(Frame::Body(channel, bytes)).await.unwrap());
        }
        answered
    }

    /// Frames of a burst still being read: handled, but the burst does not end.
    async fn feed(&mut self, frames: Vec<Frame>) {
        for frame in frames {
            let flow = self.channels.on_frame(frame, &mut self.out).await.unwrap();
            assert_eq!(flow, Flow::Continue);
        }
    }

    /// The next event a queue sends this connection's consumers, handled.
    async fn next_delivery(&mut self) -> Vec<Frame> {
        let event = tokio::time::timeout(WAIT, self.feeds.deliveries.recv())
            .await
            .expect("a delivery arrives")
            .expect("the feed is open");
        self.channels.on_consumer_event(event, &mut self.out);
        self.out.take_frames()
    }

    async fn open_channel(&mut self, channel: u16) {
        let answer = self
            .send(
                channel,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            )
            .await;
        assert!(
            matches!(
                answer.as_slice(),
                [Frame::Method(c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))] if *c == channel
            ),
            "{answer:?}"
        );
    }

    async fn declare_queue(&mut self, channel: u16, name: &str, passive: bool) -> queue::DeclareOk {
        let answer = self
            .send(
                channel,
                AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: name.into(),
                    passive,
                    ..Default::default()
                })),
            )
            .await;
        match answer.as_slice() {
            [Frame::Method(_, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)))] => ok.clone(),
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    async fn get(&mut self, channel: u16, queue: &str) -> Vec<Frame> {
        self.send(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: queue.into(),
                no_ack: false,
            })),
        )
        .await
    }

    async fn ack(&mut self, channel: u16, delivery_tag: u64) -> Vec<Frame> {
        self.send(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag,
                multiple: false,
            })),
        )
        .await
    }
}

/// The frames of one `basic.publish` with its content.
fn publish_frames(channel: u16, publish: basic::Publish, body: &str) -> Vec<Frame> {
    vec![
        Frame::Method(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
        ),
        Frame::Header(
            channel,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: AMQPProperties::default(),
            },
        ),
        Frame::Body(channel, Bytes::copy_from_slice(body.as_bytes())),
    ]
}

fn to(exchange: &str, routing_key: &str) -> basic::Publish {
    basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        ..Default::default()
    }
}

/// The body carried by the body frames among `frames`.
fn body(frames: &[Frame]) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body(_, b) => Some(b.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// The `channel.close` in `frames`: (code, text, class, method).
fn channel_close(frames: &[Frame]) -> (u16, String, u16, u16) {
    match frames {
        [Frame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(c)))] => (
            c.reply_code,
            c.reply_text.as_str().to_string(),
            c.class_id,
            c.method_id,
        ),
        other => panic!("expected channel.close, got {other:?}"),
    }
}

#[tokio::test]
async fn declare_bind_publish_get_returns_the_message() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    let answer = h
        .send(
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: "orders".into(),
                kind: "direct".into(),
                ..Default::default()
            })),
        )
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))
        )]
    ));
    // A server-named queue; the empty name in bind and get means it.
    let declared = h.declare_queue(1, "", false).await;
    assert!(
        declared.queue.as_str().starts_with("amq.gen-"),
        "{declared:?}"
    );
    let answer = h
        .send(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: "".into(),
                exchange: "orders".into(),
                routing_key: "eu".into(),
                ..Default::default()
            })),
        )
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::BindOk(_))
        )]
    ));
    assert!(h
        .publish(1, to("orders", "us"), "elsewhere")
        .await
        .is_empty());
    assert!(h.publish(1, to("orders", "eu"), "hello").await.is_empty());

    let got = h.get(1, "").await;
    match &got[0] {
        Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(ok))) => {
            assert_eq!(ok.delivery_tag, 1);
            assert_eq!(ok.exchange.as_str(), "orders");
            assert_eq!(ok.routing_key.as_str(), "eu");
            assert_eq!(ok.message_count, 0);
            assert!(!ok.redelivered);
        }
        other => panic!("expected basic.get-ok, got {other:?}"),
    }
    assert!(matches!(&got[1], Frame::Header(1, h) if h.body_size == 5));
    assert_eq!(body(&got), "hello");
    let again = h.get(1, "").await;
    assert!(matches!(
        again.as_slice(),
        [Frame::Method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))
        )]
    ));

    // Acked once it is settled; a second ack of the same tag is a 406 on basic.ack.
    assert!(h.ack(1, 1).await.is_empty());
    let (code, text, class, method) = channel_close(&h.ack(1, 1).await);
    assert_eq!((code, class, method), (406, 60, 80));
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 1");
    assert!(!h.channels.is_open(1));
}

#[tokio::test]
async fn consume_with_prefetch_2_delivers_2_and_the_third_after_an_ack() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    h.declare_queue(1, "jobs", false).await;
    for i in 1..=3 {
        h.publish(1, to("", "jobs"), &format!("m{i}")).await;
    }
    let answer = h
        .send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 2,
                global: false,
            })),
        )
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_))
        )]
    ));
    let answer = h
        .send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "jobs".into(),
                consumer_tag: "worker".into(),
                ..Default::default()
            })),
        )
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)))] if ok.consumer_tag.as_str() == "worker"
    ));
    for i in 1..=2u64 {
        let delivered = h.next_delivery().await;
        match &delivered[0] {
            Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                assert_eq!(d.consumer_tag.as_str(), "worker");
                assert_eq!(d.delivery_tag, i);
            }
            other => panic!("expected basic.deliver, got {other:?}"),
        }
        assert_eq!(body(&delivered), format!("m{i}"));
    }
    // The queue handed out its first batch with both deliveries: the third is still ready,
    // held back by the prefetch.
    assert_eq!(h.declare_queue(1, "jobs", true).await.message_count, 1);
    assert!(h.ack(1, 1).await.is_empty());
    let third = h.next_delivery().await;
    assert!(matches!(
        &third[0],
        Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) if d.delivery_tag == 3
    ));
    assert_eq!(body(&third), "m3");
    assert_eq!(h.declare_queue(1, "jobs", true).await.message_count, 0);
}

#[tokio::test]
async fn channel_errors_close_only_the_channel_with_the_code_and_method() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    h.open_channel(2).await;
    let (code, text, class, method) = channel_close(&h.get(1, "missing").await);
    assert_eq!((code, class, method), (404, 60, 70));
    assert_eq!(text, "NOT_FOUND - no queue 'missing' in vhost '/'");
    // Until the client's close-ok, the closing channel ignores everything else.
    assert!(h
        .send(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare::default()))
        )
        .await
        .is_empty());
    assert!(h.channels.is_open(2));
    let passive = h
        .send(
            2,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "missing".into(),
                passive: true,
                ..Default::default()
            })),
        )
        .await;
    let (code, _, class, method) = channel_close(&passive);
    assert_eq!((code, class, method), (404, 50, 10));
    for ch in [1, 2] {
        let answer = h
            .send(
                ch,
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
            )
            .await;
        assert!(answer.is_empty());
    }
    // The ids are free again.
    h.open_channel(1).await;
    let answer = h
        .send(1, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})))
        .await;
    let (code, text, class, method) = channel_close(&answer);
    assert_eq!((code, class, method), (406, 90, 20));
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
}

#[tokio::test]
async fn connection_errors_are_returned_for_the_connection_to_close() {
    let mut h = Harness::open();
    let unopened = h
        .frame(Frame::Method(
            3,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare::default())),
        ))
        .await
        .unwrap_err();
    assert_eq!((unopened.code, unopened.connection), (504, true));
    let above_max = h
        .frame(Frame::Method(
            17,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (above_max.code, above_max.class_id, above_max.method_id),
        (530, 20, 10)
    );
    h.open_channel(1).await;
    let header = AMQPContentHeader {
        class_id: 60,
        body_size: 1,
        properties: AMQPProperties::default(),
    };
    let stray = h.frame(Frame::Header(1, header)).await.unwrap_err();
    assert_eq!((stray.code, stray.connection), (505, true));
}

#[tokio::test]
async fn mandatory_unroutable_publish_is_returned_with_312() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    let publish = basic::Publish {
        mandatory: true,
        ..to("", "nowhere")
    };
    let answer = h.publish(1, publish, "lost").await;
    match &answer[0] {
        Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Return(r))) => {
            assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
            assert_eq!(r.routing_key.as_str(), "nowhere");
        }
        other => panic!("expected basic.return, got {other:?}"),
    }
    assert_eq!(body(&answer), "lost");
    // Without mandatory it is dropped silently.
    assert!(h.publish(1, to("", "nowhere"), "lost").await.is_empty());
}

#[tokio::test]
async fn confirm_mode_acks_every_publish_in_order() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    h.declare_queue(1, "q", false).await;
    let answer = h
        .send(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))
        )]
    ));
    for i in 0..3 {
        h.publish(1, to("", "q"), &format!("m{i}")).await;
    }
    // Acks may come coalesced (`multiple`); together they cover 1..=3, in order.
    let mut confirmed = 0;
    while confirmed < 3 {
        let result = tokio::time::timeout(WAIT, h.feeds.confirms.recv())
            .await
            .expect("a confirm arrives")
            .unwrap();
        h.channels.on_confirm(result, &mut h.out);
        for frame in h.out.take_frames() {
            match frame {
                Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                    assert!(a.delivery_tag > confirmed);
                    assert!(a.multiple || a.delivery_tag == confirmed + 1);
                    confirmed = a.delivery_tag;
                }
                other => panic!("expected basic.ack, got {other:?}"),
            }
        }
    }
    assert_eq!(confirmed, 3);
    // A confirm channel cannot become transactional.
    let (code, _, class, method) = channel_close(
        &h.send(1, AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
            .await,
    );
    assert_eq!((code, class, method), (406, 90, 10));
}

#[tokio::test]
async fn a_transaction_holds_publishes_until_commit() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    h.declare_queue(1, "q", false).await;
    let answer = h
        .send(1, AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(1, AMQPClass::Tx(tx::AMQPMethod::SelectOk(_)))]
    ));
    h.publish(1, to("", "q"), "held").await;
    assert_eq!(h.declare_queue(1, "q", true).await.message_count, 0);
    let answer = h
        .send(1, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})))
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(1, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_)))]
    ));
    assert_eq!(h.declare_queue(1, "q", true).await.message_count, 1);
    // A rolled-back publish never lands.
    h.publish(1, to("", "q"), "dropped").await;
    h.send(1, AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})))
        .await;
    h.send(1, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})))
        .await;
    assert_eq!(h.declare_queue(1, "q", true).await.message_count, 1);
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_consumers_for_clients_that_asked() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    h.declare_queue(1, "short-lived", false).await;
    h.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "short-lived".into(),
            consumer_tag: "c1".into(),
            ..Default::default()
        })),
    )
    .await;
    h.open_channel(2).await;
    let answer = h
        .send(
            2,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: "short-lived".into(),
                ..Default::default()
            })),
        )
        .await;
    assert!(matches!(
        answer.as_slice(),
        [Frame::Method(
            2,
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_))
        )]
    ));
    let cancel = h.next_delivery().await;
    assert!(
        matches!(
            cancel.as_slice(),
            [Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Cancel(c)))] if c.consumer_tag.as_str() == "c1"
        ),
        "{cancel:?}"
    );
}

#[tokio::test]
async fn a_burst_of_publishes_goes_to_the_core_together_answered_in_order() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    h.open_channel(2).await;
    h.declare_queue(1, "a", false).await;
    h.declare_queue(2, "b", false).await;
    h.send(
        2,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await;
    // One burst: publishes on two channels, one to a missing exchange, one unroutable mandatory.
    let mut burst = publish_frames(1, to("", "a"), "a1");
    burst.extend(publish_frames(2, to("", "b"), "b1"));
    burst.extend(publish_frames(1, to("missing", "a"), "lost"));
    let mandatory = basic::Publish {
        mandatory: true,
        ..to("", "nowhere")
    };
    burst.extend(publish_frames(2, mandatory, "back"));
    burst.extend(publish_frames(2, to("", "b"), "b2"));
    h.feed(burst).await;
    assert!(
        h.out.is_empty(),
        "nothing is answered before the batch is published"
    );
    h.channels.end_burst(&mut h.out).await.unwrap();
    let answered = h.out.take_frames();
    let (code, _, class, method) = channel_close(&answered[..1]);
    assert_eq!((code, class, method), (404, 60, 40));
    assert!(matches!(
        &answered[1],
        Frame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Return(r))) if r.reply_code == 312
    ));
    assert_eq!(body(&answered[1..]), "back");
    // Channel 2's three publishes are confirmed, in order.
    let mut confirmed = 0;
    while confirmed < 3 {
        let result = tokio::time::timeout(WAIT, h.feeds.confirms.recv())
            .await
            .expect("a confirm arrives")
            .unwrap();
        h.channels.on_confirm(result, &mut h.out);
        for frame in h.out.take_frames() {
            match frame {
                Frame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                    assert!(a.delivery_tag > confirmed);
                    confirmed = a.delivery_tag;
                }
                other => panic!("expected basic.ack on channel 2, got {other:?}"),
            }
        }
    }
    assert_eq!(confirmed, 3);
    assert_eq!(h.declare_queue(2, "a", true).await.message_count, 1);
    assert_eq!(h.declare_queue(2, "b", true).await.message_count, 2);
}

#[tokio::test]
async fn a_method_after_publishes_in_the_same_burst_sees_them() {
    let mut h = Harness::open();
    h.open_channel(1).await;
    h.declare_queue(1, "q", false).await;
    let mut burst = publish_frames(1, to("", "q"), "first");
    burst.extend(publish_frames(1, to("", "q"), "second"));
    h.feed(burst).await;
    // basic.get in the same burst: the batch goes to the core before it runs.
    h.feed(vec![Frame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "q".into(),
            no_ack: true,
        })),
    )])
    .await;
    let got = h.out.take_frames();
    match &got[0] {
        Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(ok))) => {
            assert_eq!(ok.message_count, 1)
        }
        other => panic!("expected basic.get-ok, got {other:?}"),
    }
    assert_eq!(body(&got), "first");
}
