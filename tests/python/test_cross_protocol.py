"""One message, any protocol: MQTT, AMQP and Kafka clients on the same messages, through
`amq.topic` and the exchange ↔ Kafka topic bridges (`[[bridges]]` in the config file)."""

from __future__ import annotations

import time
import uuid

import pika
from confluent_kafka import Consumer, Producer
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_helpers import V5, V311, Client, user_properties

BRIDGES = """
[[bridges]]
from_exchange = "amq.topic"
binding_key = "sensors.#"
to_topic = "telemetry"

[[bridges]]
from_topic = "orders"
to_exchange = "amq.topic"
routing_key = "orders.created"
"""


def with_bridges(porter, tmp_path):
    config = tmp_path / "porter.toml"
    config.write_text(BRIDGES)
    porter.extra_args += ["--config", str(config)]
    porter.restart()


def kafka_records(bootstrap: str, topic: str, count: int, timeout: float = 15) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    consumer.close()
    return got


def test_mqtt_telemetry_lands_in_a_kafka_topic_with_its_properties(porter, tmp_path):
    with_bridges(porter, tmp_path)
    device = Client(porter.mqtt_port, "thermostat-9", V5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("site", "berlin")]
    props.ContentType = "application/json"
    for i in range(5):
        device.publish(f"sensors/thermostat-9/temp", f'{{"c": {20 + i}}}'.encode(), qos=1, props=props)
    device.publish("alerts/ignored", b"not bridged", qos=1)
    device.close()
    records = kafka_records(porter.bootstrap, "telemetry", 5)
    assert [r.value() for r in records] == [f'{{"c": {20 + i}}}'.encode() for i in range(5)]
    first = records[0]
    assert first.key() == b"sensors.thermostat-9.temp", "the routing key is the record key"
    headers = dict(first.headers())
    assert headers["site"] == b"berlin", "MQTT user properties are Kafka headers"
    assert len({r.partition() for r in records}) == 1, "one device keeps one partition, in order"


def test_a_kafka_topic_feeds_mqtt_and_amqp_subscribers(porter, tmp_path):
    with_bridges(porter, tmp_path)
    amqp = pika.BlockingConnection(pika.URLParameters(porter.amqp_url))
    ch = amqp.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "orders.*")
    phone = Client(porter.mqtt_port, "phone", V311)
    phone.subscribe("orders/created", qos=1)
    producer = Producer({"bootstrap.servers": porter.bootstrap})
    producer.produce("orders", key=b"order-77", value=b'{"id": 77}', headers=[("channel", b"web")])
    producer.flush(10)
    m = phone.next(timeout=15)
    assert (m.topic, m.payload) == ("orders/created", b'{"id": 77}')
    body = None
    for _ in range(100):
        method, header, body = ch.basic_get(q, auto_ack=True)
        if method:
            assert method.routing_key == "orders.created"
            assert header.headers["channel"] == "web", "Kafka headers are AMQP headers"
            break
        time.sleep(0.1)
    assert body == b'{"id": 77}'
    amqp.close()
    phone.close()


def test_amqp_to_kafka_and_back_does_not_loop(porter, tmp_path):
    config = tmp_path / "porter.toml"
    config.write_text("""
[[bridges]]
from_exchange = "amq.topic"
binding_key = "loop.#"
to_topic = "loop"

[[bridges]]
from_topic = "loop"
to_exchange = "amq.topic"
""")
    porter.extra_args += ["--config", str(config)]
    porter.restart()
    watcher = Client(porter.mqtt_port, "w", V5)
    watcher.subscribe("loop/#", qos=1)
    amqp = pika.BlockingConnection(pika.URLParameters(porter.amqp_url))
    amqp.channel().basic_publish("amq.topic", "loop.a", b"once")
    assert watcher.next().payload == b"once"
    assert watcher.quiet(1.5) == [], "a message bridged out of amq.topic is not bridged back into it"
    assert len(kafka_records(porter.bootstrap, "loop", 2, timeout=3)) == 1
    amqp.close()
    watcher.close()


def test_an_mqtt5_request_gets_an_amqp_reply(porter):
    """Request/response across protocols: an MQTT 5 requester names a response topic and
    correlation data; an AMQP service answers to reply_to through amq.topic."""
    amqp = pika.BlockingConnection(pika.URLParameters(porter.amqp_url))
    ch = amqp.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "rpc.price")
    requester = Client(porter.mqtt_port, "app", V5)
    requester.subscribe("replies/app", qos=1)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "replies/app"
    props.CorrelationData = b"r-1"
    requester.publish("rpc/price", b"AAPL", qos=1, props=props)
    for _ in range(100):
        method, header, body = ch.basic_get(q, auto_ack=True)
        if method:
            break
        time.sleep(0.1)
    assert body == b"AAPL"
    assert header.reply_to == "replies.app" and header.correlation_id == "r-1"
    ch.basic_publish("amq.topic", header.reply_to, b"187.2",
                     pika.BasicProperties(correlation_id=header.correlation_id))
    reply = requester.next()
    assert (reply.payload, reply.properties.CorrelationData) == (b"187.2", b"r-1")
    amqp.close()
    requester.close()
    assert user_properties(reply) == {}
