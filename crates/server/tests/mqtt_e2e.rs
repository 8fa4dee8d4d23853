//! rumqttc (Bytebeam's MQTT client for Rust, 3.1.1 and 5.0) against the real `porter` binary:
//!
//! - `qos1_messages_reach_a_wildcard_subscriber_in_order`: 3.1.1, 200 QoS 1 publishes, each once
//!   and in order.
//! - `a_persistent_session_gets_what_was_published_while_the_broker_was_killed`: 3.1.1 clean
//!   session off; messages queued while the subscriber was away survive kill -9 and arrive when it
//!   reconnects, with `session_present`.
//! - `mqtt5_user_properties_and_qos2_arrive`: 5.0, QoS 2 with user properties and content type.
//! - `an_amqp_consumer_reads_what_rumqttc_publishes`: lapin on a queue bound to `amq.topic`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

const WAIT: Duration = Duration::from_secs(15);

fn mqtt_server() -> (Server, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&["--mqtt-listen", &listen]);
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "MQTT listener never accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, port)
}

fn options(id: &str, port: u16, clean: bool) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_clean_session(clean);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// Polls until `count` publishes arrived (or WAIT passed); returns them and whether the CONNACK
/// said the session was present.
async fn receive(events: &mut EventLoop, count: usize) -> (Vec<rumqttc::Publish>, Option<bool>) {
    let mut got = Vec::new();
    let mut present = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < count {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.push(p),
            Ok(Ok(Event::Incoming(Packet::ConnAck(c)))) => present = Some(c.session_present),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("connection failed: {e}"),
            Err(_) => break,
        }
    }
    (got, present)
}

/// Drives `events` until the client's publishes are acknowledged (`acks` PUBACKs).
async fn until_acked(events: &mut EventLoop, acks: usize) {
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen < acks {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => seen += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("connection failed: {e}"),
            Err(_) => panic!("only {seen} of {acks} publishes acknowledged"),
        }
    }
}

async fn subscribed(client: &AsyncClient, events: &mut EventLoop, filter: &str, qos: QoS) {
    client.subscribe(filter, qos).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return,
            Ok(Ok(_)) => {}
            other => panic!("no SUBACK: {other:?}"),
        }
    }
}

#[tokio::test]
async fn qos1_messages_reach_a_wildcard_subscriber_in_order() {
    let (_server, port) = mqtt_server();
    let (sub, mut sub_events) = AsyncClient::new(options("sub", port, true), 100);
    subscribed(&sub, &mut sub_events, "fleet/+/position", QoS::AtLeastOnce).await;
    let (publisher, mut pub_events) = AsyncClient::new(options("truck-1", port, true), 300);
    for i in 0..200 {
        publisher
            .publish(
                "fleet/truck-1/position",
                QoS::AtLeastOnce,
                false,
                format!("{i}"),
            )
            .await
            .unwrap();
    }
    let driver = tokio::spawn(async move { until_acked(&mut pub_events, 200).await });
    let (got, _) = receive(&mut sub_events, 200).await;
    driver.await.unwrap();
    let payloads: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(
        payloads,
        (0..200).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert!(got
        .iter()
        .all(|p| p.topic == "fleet/truck-1/position" && p.qos == QoS::AtLeastOnce));
}

#[tokio::test]
async fn a_persistent_session_gets_what_was_published_while_the_broker_was_killed() {
    let (mut server, port) = mqtt_server();
    {
        let (sub, mut events) = AsyncClient::new(options("phone", port, false), 10);
        subscribed(&sub, &mut events, "inbox/phone", QoS::AtLeastOnce).await;
        sub.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), events.poll()).await;
    }
    {
        let (publisher, mut events) = AsyncClient::new(options("server", port, true), 100);
        for i in 0..50 {
            publisher
                .publish("inbox/phone", QoS::AtLeastOnce, false, format!("note {i}"))
                .await
                .unwrap();
        }
        until_acked(&mut events, 50).await;
    }
    server.kill9();
    server.restart();
    let (_sub, mut events) = AsyncClient::new(options("phone", port, false), 10);
    let (got, present) = receive(&mut events, 50).await;
    assert_eq!(present, Some(true), "the session survived kill -9");
    let payloads: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(
        payloads,
        (0..50).map(|i| format!("note {i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn mqtt5_user_properties_and_qos2_arrive() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::{AsyncClient as Client5, Event as Event5, MqttOptions as Options5};

    let (_server, port) = mqtt_server();
    let (sub, mut sub_events) = Client5::new(Options5::new("sub5", "127.0.0.1", port), 10);
    sub.subscribe("orders/#", QoS5::ExactlyOnce).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, sub_events.poll()).await {
            Ok(Ok(Event5::Incoming(rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no SUBACK: {other:?}"),
        }
    }
    let (publisher, mut pub_events) = Client5::new(Options5::new("pub5", "127.0.0.1", port), 10);
    let properties = PublishProperties {
        user_properties: vec![("tenant".into(), "acme".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    publisher
        .publish_with_properties(
            "orders/42",
            QoS5::ExactlyOnce,
            false,
            "{\"id\":42}",
            properties,
        )
        .await
        .unwrap();
    tokio::spawn(async move { while pub_events.poll().await.is_ok() {} });
    let deadline = tokio::time::Instant::now() + WAIT;
    let publish = loop {
        match tokio::time::timeout_at(deadline, sub_events.poll()).await {
            Ok(Ok(Event5::Incoming(rumqttc::v5::mqttbytes::v5::Packet::Publish(p)))) => break p,
            Ok(Ok(_)) => {}
            other => panic!("no PUBLISH: {other:?}"),
        }
    };
    assert_eq!(&publish.topic[..], b"orders/42");
    assert_eq!(publish.qos, QoS5::ExactlyOnce);
    let props = publish.properties.expect("properties");
    assert_eq!(
        props.user_properties,
        vec![("tenant".to_string(), "acme".to_string())]
    );
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn an_amqp_consumer_reads_what_rumqttc_publishes() {
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;

    let (server, port) = mqtt_server();
    let amqp = lapin::Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{}/%2F", server.amqp_port),
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = amqp.create_channel().await.unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            "amq.topic".into(),
            "meters.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (publisher, mut events) = AsyncClient::new(options("meter-7", port, true), 10);
    publisher
        .publish("meters/7/kwh", QoS::AtLeastOnce, false, "12.5")
        .await
        .unwrap();
    until_acked(&mut events, 1).await;
    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery")
        .expect("stream open")
        .expect("delivery");
    assert_eq!(delivery.data, b"12.5");
    assert_eq!(delivery.routing_key.as_str(), "meters.7.kwh");
}
