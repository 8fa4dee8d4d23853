"""MQTT 3.1.1 and 5.0 applications against Porter with Eclipse Paho (paho-mqtt 2.x): QoS 0/1/2,
retained messages, wills, persistent sessions across disconnect, restart and kill -9, session
takeover, shared subscriptions, MQTT 5 properties and options, `$SYS`, and the same messages
seen from AMQP."""

from __future__ import annotations

import struct
import time

import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_helpers import V5, V311, Client, packet, raw_connect, read_packet, user_properties, utf8

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


@VERSIONS
def test_each_qos_is_delivered_at_the_lower_of_publish_and_subscription_qos(porter, version):
    sub = Client(porter.mqtt_port, "sub", version)
    pub = Client(porter.mqtt_port, "pub", version)
    assert [c.value if hasattr(c, "value") else c for c in sub.subscribe("sensors/+/temp", qos=2)] in ([2], [2])
    for qos in (0, 1, 2):
        pub.publish("sensors/kitchen/temp", f"t{qos}".encode(), qos=qos)
    got = sub.drain(3)
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        ("sensors/kitchen/temp", b"t0", 0),
        ("sensors/kitchen/temp", b"t1", 1),
        ("sensors/kitchen/temp", b"t2", 2),
    ]
    low = Client(porter.mqtt_port, "low", version)
    low.subscribe("sensors/#", qos=0)
    pub.publish("sensors/hall/temp", b"x", qos=2)
    assert low.next().qos == 0
    for c in (sub, pub, low):
        c.close()


@VERSIONS
def test_retained_messages_reach_later_wildcard_subscribers_and_an_empty_payload_clears(porter, version):
    pub = Client(porter.mqtt_port, "pub", version)
    pub.publish("home/door", b"closed", qos=1, retain=True)
    pub.publish("home/window", b"open", qos=0, retain=True)
    time.sleep(0.2)
    sub = Client(porter.mqtt_port, "sub", version)
    sub.subscribe("home/+", qos=1)
    got = {m.topic: (m.payload, m.retain) for m in sub.drain(2)}
    assert got == {"home/door": (b"closed", True), "home/window": (b"open", True)}
    # Live messages on the same topics come without RETAIN.
    pub.publish("home/door", b"opening", qos=1)
    live = sub.next()
    assert (live.payload, live.retain) == (b"opening", False)
    pub.publish("home/door", b"", qos=1, retain=True)  # clears
    sub.drain(1)
    later = Client(porter.mqtt_port, "later", version)
    later.subscribe("home/#", qos=1)
    assert [(m.topic, m.payload) for m in later.drain(5, timeout=1.5)] == [("home/window", b"open")]
    for c in (pub, sub, later):
        c.close()


def test_retained_messages_survive_kill_9(porter):
    pub = Client(porter.mqtt_port, "pub")
    pub.publish("plant/line1/status", b"running", qos=1, retain=True)
    pub.drop()
    porter.kill9_restart()
    sub = Client(porter.mqtt_port, "sub")
    sub.subscribe("plant/#")
    m = sub.next()
    assert (m.topic, m.payload, m.retain) == ("plant/line1/status", b"running", True)
    sub.close()


@VERSIONS
def test_a_persistent_session_keeps_subscriptions_and_messages_across_kill_9(porter, version):
    kwargs = {"clean": False} if version == V311 else {"clean": False, "expiry": 3600}
    sub = Client(porter.mqtt_port, "phone-1", version, **kwargs)
    assert sub.session_present is False
    sub.subscribe("chat/rooms/lobby", qos=1)
    sub.close()
    pub = Client(porter.mqtt_port, "server", version)
    for i in range(50):
        pub.publish("chat/rooms/lobby", f"m{i}".encode(), qos=1)
    pub.close()
    porter.kill9_restart()
    back = Client(porter.mqtt_port, "phone-1", version, **kwargs)
    assert back.session_present is True
    got = back.drain(50)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(50)]
    # The subscription itself survived: new messages arrive without subscribing again.
    pub = Client(porter.mqtt_port, "server", version)
    pub.publish("chat/rooms/lobby", b"after", qos=1)
    assert back.next().payload == b"after"
    back.close()
    pub.close()


@VERSIONS
def test_a_clean_session_starts_empty(porter, version):
    kwargs = {"clean": False} if version == V311 else {"clean": False, "expiry": 600}
    sub = Client(porter.mqtt_port, "c1", version, **kwargs)
    sub.subscribe("t", qos=1)
    sub.close()
    pub = Client(porter.mqtt_port, "p", version)
    pub.publish("t", b"while away", qos=1)
    fresh = Client(porter.mqtt_port, "c1", version, clean=True)
    assert fresh.session_present is False
    pub.publish("t", b"after clean", qos=1)
    assert fresh.quiet(0.5) == [], "a clean session has no subscriptions"
    fresh.close()
    pub.close()


def test_unacknowledged_messages_are_sent_again_with_dup_to_the_next_connection(porter):
    sub = Client(porter.mqtt_port, "worker", V5, clean=False, expiry=600, manual_ack=True)
    sub.subscribe("jobs", qos=1)
    pub = Client(porter.mqtt_port, "p", V5)
    pub.publish("jobs", b"job-1", qos=1)
    first = sub.next()
    assert (first.payload, first.dup) == (b"job-1", False)
    sub.drop()  # never acknowledged
    again = Client(porter.mqtt_port, "worker", V5, clean=False, expiry=600, manual_ack=True)
    m = again.next()
    assert (m.payload, m.dup, m.mid) == (b"job-1", True, first.mid)
    again.client.ack(m.mid, m.qos)
    time.sleep(0.3)
    again.close()
    third = Client(porter.mqtt_port, "worker", V5, clean=False, expiry=600)
    assert third.quiet(0.5) == []
    third.close()
    pub.close()


def test_receive_maximum_bounds_unacknowledged_deliveries(porter):
    sub = Client(porter.mqtt_port, "slow", V5, manual_ack=True, props={"ReceiveMaximum": 3})
    sub.subscribe("burst", qos=1)
    pub = Client(porter.mqtt_port, "p", V5)
    for i in range(10):
        pub.publish("burst", f"{i}".encode(), qos=1)
    first = sub.drain(10, timeout=1.5)
    assert len(first) == 3, "only Receive Maximum messages in flight"
    for m in first:
        sub.client.ack(m.mid, m.qos)
    rest = sub.drain(3)
    assert [m.payload for m in first + rest] == [f"{i}".encode() for i in range(6)]
    sub.close()
    pub.close()


@VERSIONS
def test_a_will_is_published_when_a_client_vanishes_but_not_after_disconnect(porter, version):
    watcher = Client(porter.mqtt_port, "watcher", version)
    watcher.subscribe("presence/#", qos=1)
    crashy = Client(porter.mqtt_port, "crashy", version, will=("presence/crashy", b"offline", 1, False))
    polite = Client(porter.mqtt_port, "polite", version, will=("presence/polite", b"offline", 1, False))
    polite.close()
    crashy.drop()
    m = watcher.next()
    assert (m.topic, m.payload) == ("presence/crashy", b"offline")
    assert watcher.quiet(0.5) == []
    watcher.close()


def test_a_delayed_will_is_cancelled_when_the_client_returns_in_time(porter):
    watcher = Client(porter.mqtt_port, "watcher", V5)
    watcher.subscribe("presence/#", qos=1)
    c = Client(porter.mqtt_port, "flaky", V5, clean=False, expiry=60,
               will=("presence/flaky", b"offline", 1, False, 2))
    c.drop()
    back = Client(porter.mqtt_port, "flaky", V5, clean=False, expiry=60)
    assert watcher.quiet(3) == [], "the will was cancelled by the reconnect"
    other = Client(porter.mqtt_port, "gone", V5, clean=False, expiry=60,
                   will=("presence/gone", b"offline", 1, False, 1))
    other.drop()
    m = watcher.next(timeout=5)
    assert m.topic == "presence/gone"
    back.close()
    watcher.close()


def test_a_second_connection_with_the_same_client_id_takes_the_session_over(porter):
    first = Client(porter.mqtt_port, "device-7", V5, clean=False, expiry=60)
    first.subscribe("cmd/device-7", qos=1)
    second = Client(porter.mqtt_port, "device-7", V5, clean=False, expiry=60)
    assert second.session_present is True
    reason = first.disconnects.get(timeout=5)
    assert reason == 0x8E  # Session taken over
    pub = Client(porter.mqtt_port, "ops", V5)
    pub.publish("cmd/device-7", b"reboot", qos=1)
    assert second.next().payload == b"reboot"
    for c in (second, pub):
        c.close()


@VERSIONS
def test_a_takeover_is_answered_at_once_not_after_the_old_connections_goodbye(porter, version):
    # Paho's interoperability client gives CONNACK half a second; the old connection must let
    # go of its session before it lingers over its DISCONNECT (MQTT 5) or closes (3.1.1).
    level = 5 if version == V5 else 4
    for _ in range(3):
        old, connack = raw_connect(porter.mqtt_port, "sensor-9", level)
        assert connack[0] == 0x20
        topic = b"cmd/sensor-9"
        props = b"\x00" if level == 5 else b""
        old.sendall(packet(0x82, struct.pack(">H", 1) + props + utf8(topic) + b"\x01"))
        assert read_packet(old)[0] == 0x90  # SUBACK
        started = time.monotonic()
        new, connack = raw_connect(porter.mqtt_port, "sensor-9", level)
        assert connack[0] == 0x20
        assert time.monotonic() - started < 0.5
        for sock in (old, new):
            sock.close()


def test_shared_subscriptions_share_the_load(porter):
    workers = [Client(porter.mqtt_port, f"w{i}", V5) for i in range(3)]
    for w in workers:
        w.subscribe("$share/billing/orders/+", qos=1)
    pub = Client(porter.mqtt_port, "shop", V5)
    for i in range(30):
        pub.publish(f"orders/{i}", b"o", qos=1)
    counts = [len(w.drain(30, timeout=1.5)) for w in workers]
    assert sum(counts) == 30, counts
    assert all(c > 0 for c in counts), f"every member gets some: {counts}"
    for c in workers + [pub]:
        c.close()


@VERSIONS
def test_a_persistent_session_gets_its_shared_subscriptions_back_across_kill_9(porter, version):
    kwargs = {"clean": False} if version == V311 else {"clean": False, "expiry": 3600}
    worker = Client(porter.mqtt_port, "invoicer-1", version, **kwargs)
    worker.subscribe("$share/billing/orders/+", qos=1)
    worker.close()
    pub = Client(porter.mqtt_port, "shop", version)
    for i in range(10):
        pub.publish(f"orders/{i}", f"o{i}".encode(), qos=1)
    pub.close()
    porter.kill9_restart()
    back = Client(porter.mqtt_port, "invoicer-1", version, **kwargs)
    assert back.session_present is True
    # Held for the group while no member was connected, then sent without a new SUBSCRIBE.
    assert sorted(m.payload for m in back.drain(10)) == sorted(f"o{i}".encode() for i in range(10))
    pub = Client(porter.mqtt_port, "shop", version)
    pub.publish("orders/late", b"late", qos=1)
    assert back.next().payload == b"late"
    # Unsubscribed, it stays unsubscribed when the session resumes again.
    back.client.unsubscribe("$share/billing/orders/+")
    time.sleep(0.3)
    back.close()
    again = Client(porter.mqtt_port, "invoicer-1", version, **kwargs)
    pub.publish("orders/after", b"after", qos=1)
    assert again.quiet(1.0) == []
    for c in (again, pub):
        c.close()


def test_mqtt5_properties_travel_with_the_message(porter):
    sub = Client(porter.mqtt_port, "svc", V5)
    sub.subscribe("rpc/requests", qos=1, sub_id=42)
    pub = Client(porter.mqtt_port, "caller", V5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("trace-id", "abc"), ("tenant", "acme")]
    props.ContentType = "application/json"
    props.CorrelationData = b"req-1"
    props.ResponseTopic = "rpc/replies/caller"
    props.MessageExpiryInterval = 60
    props.PayloadFormatIndicator = 1
    pub.publish("rpc/requests", b'{"op":"sum"}', qos=1, props=props)
    m = sub.next()
    p = m.properties
    assert user_properties(m) == {"trace-id": "abc", "tenant": "acme"}
    assert p.ContentType == "application/json"
    assert p.CorrelationData == b"req-1"
    assert p.ResponseTopic == "rpc/replies/caller"
    assert 55 <= p.MessageExpiryInterval <= 60
    assert p.PayloadFormatIndicator == 1
    assert p.SubscriptionIdentifier == [42]
    # Request/response: the service answers on the response topic with the correlation data.
    pub.subscribe("rpc/replies/caller", qos=1)
    reply = Properties(PacketTypes.PUBLISH)
    reply.CorrelationData = p.CorrelationData
    sub.publish(p.ResponseTopic, b"42", qos=1, props=reply)
    r = pub.next()
    assert (r.payload, r.properties.CorrelationData) == (b"42", b"req-1")
    sub.close()
    pub.close()


def test_an_expired_message_is_not_delivered(porter):
    sub = Client(porter.mqtt_port, "late", V5, clean=False, expiry=60)
    sub.subscribe("flash", qos=1)
    sub.close()
    pub = Client(porter.mqtt_port, "p", V5)
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 1
    pub.publish("flash", b"short-lived", qos=1, props=props)
    pub.publish("flash", b"lasting", qos=1)
    time.sleep(2.2)
    back = Client(porter.mqtt_port, "late", V5, clean=False, expiry=60)
    assert [m.payload for m in back.drain(2, timeout=1.5)] == [b"lasting"]
    back.close()
    pub.close()


def test_no_local_retain_as_published_and_retain_handling(porter):
    c = Client(porter.mqtt_port, "me", V5)
    c.subscribe("room/1", qos=1, no_local=True)
    c.publish("room/1", b"mine", qos=1)
    other = Client(porter.mqtt_port, "you", V5)
    other.publish("room/1", b"yours", qos=1)
    assert [m.payload for m in c.drain(2, timeout=1)] == [b"yours"]
    other.publish("state/x", b"s", qos=1, retain=True)
    rap = Client(porter.mqtt_port, "rap", V5)
    rap.subscribe("state/#", qos=1, rap=True, retain_handling=2)  # 2: no retained on subscribe
    assert rap.quiet(0.5) == []
    other.publish("state/x", b"s2", qos=1, retain=True)
    m = rap.next()
    assert (m.payload, m.retain) == (b"s2", True), "Retain As Published keeps RETAIN on live messages"
    for x in (c, other, rap):
        x.close()


def test_topic_aliases_from_the_client_are_resolved(porter):
    sub = Client(porter.mqtt_port, "sub", V5)
    sub.subscribe("long/topic/name/for/telemetry", qos=1)
    pub = Client(porter.mqtt_port, "pub", V5)
    first = Properties(PacketTypes.PUBLISH)
    first.TopicAlias = 3
    pub.publish("long/topic/name/for/telemetry", b"1", qos=1, props=first)
    again = Properties(PacketTypes.PUBLISH)
    again.TopicAlias = 3
    pub.publish("", b"2", qos=1, props=again)
    got = sub.drain(2)
    assert [(m.topic, m.payload) for m in got] == [
        ("long/topic/name/for/telemetry", b"1"),
        ("long/topic/name/for/telemetry", b"2"),
    ]
    sub.close()
    pub.close()


def test_sys_topics_report_the_broker_and_hash_does_not_see_them(porter):
    porter.restart_with = None
    watcher = Client(porter.mqtt_port, "ops", V5)
    everything = Client(porter.mqtt_port, "all", V5)
    everything.subscribe("#", qos=0)
    time.sleep(11)  # one statistics interval
    watcher.subscribe("$SYS/broker/clients/connected", qos=0)
    m = watcher.next()
    assert int(m.payload) >= 2 and m.retain
    assert not [x for x in everything.quiet(0.2) if x.topic.startswith("$SYS")]
    watcher.close()
    everything.close()


def test_mqtt_and_amqp_share_messages_through_amq_topic(porter):
    params = pika.URLParameters(porter.amqp_url)
    amqp = pika.BlockingConnection(params)
    ch = amqp.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "sensors.*.temp")
    mqtt_pub = Client(porter.mqtt_port, "thermo", V5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("unit", "C")]
    props.ContentType = "text/plain"
    mqtt_pub.publish("sensors/attic/temp", b"21.5", qos=1, props=props)
    method, header, body = None, None, None
    for _ in range(50):
        method, header, body = ch.basic_get(q, auto_ack=True)
        if method:
            break
        time.sleep(0.1)
    assert body == b"21.5"
    assert method.routing_key == "sensors.attic.temp"
    assert header.content_type == "text/plain"
    assert header.headers["unit"] == "C"
    assert header.delivery_mode == 2
    # And back: an AMQP publish to amq.topic reaches an MQTT subscriber.
    mqtt_sub = Client(porter.mqtt_port, "dashboard", V5)
    mqtt_sub.subscribe("alerts/#", qos=1)
    ch.basic_publish("amq.topic", "alerts.fire.floor2", b"evacuate",
                     pika.BasicProperties(headers={"severity": "high"}, delivery_mode=2))
    m = mqtt_sub.next()
    assert (m.topic, m.payload, m.qos) == ("alerts/fire/floor2", b"evacuate", 1)
    assert user_properties(m) == {"severity": "high"}
    amqp.close()
    mqtt_pub.close()
    mqtt_sub.close()
