"""MQTT under a broker crash (kill -9) and over time: QoS 2 delivered exactly once, acknowledged
QoS 1 publishes never lost, and sessions that expire when MQTT 5 says."""

from __future__ import annotations

import socket
import struct
import threading
import time

from mqtt_helpers import V5, WAIT_S, Client, connect_packet, packet, read_packet, utf8

N = 300


def reconnect(client: Client, attempts: int = 100) -> None:
    """Reconnects a paho client whose broker restarted, keeping its session state."""
    for _ in range(attempts):
        try:
            client.client.loop_stop()
            client.connack.clear()
            client.client.reconnect()
            client.client.loop_start()
            if client.connack.wait(WAIT_S):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("could not reconnect")


def test_qos2_is_delivered_exactly_once_across_kill_9(porter):
    got: list[bytes] = []
    lock = threading.Lock()

    def slow(client, userdata, message):
        with lock:
            got.append(message.payload)
        time.sleep(0.004)  # a consumer slow enough to have QoS 2 exchanges open at the crash

    sub = Client(porter.mqtt_port, "ledger", V5, clean=False, expiry=3600)
    sub.subscribe("payments", qos=2)
    sub.close()
    pub = Client(porter.mqtt_port, "bank", V5)
    for i in range(N):
        pub.publish("payments", f"{i}".encode(), qos=2)
    pub.close()

    sub = Client(porter.mqtt_port, "ledger", V5, clean=False, expiry=3600, connect=False)
    sub.client.on_message = slow
    sub.connect()
    assert sub.session_present
    deadline = time.monotonic() + WAIT_S
    while len(got) < N // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 0 < len(got) < N, "the crash must come mid-stream"
    porter.kill9_restart()
    reconnect(sub)
    deadline = time.monotonic() + 30
    while len(set(got)) < N and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # anything sent twice would arrive now
    with lock:
        received = list(got)
    assert sorted(set(received), key=int) == [f"{i}".encode() for i in range(N)], "nothing lost"
    dups = len(received) - len(set(received))
    assert dups == 0, f"{dups} messages delivered twice"
    sub.close()


def test_acknowledged_qos1_publishes_survive_kill_9(porter):
    sub = Client(porter.mqtt_port, "archive", V5, clean=False, expiry=3600)
    sub.subscribe("telemetry/#", qos=1)
    sub.close()
    pub = Client(porter.mqtt_port, "sensor", V5)
    acked = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            info = pub.client.publish(f"telemetry/{i % 7}", f"{i}".encode(), qos=1)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                return
            if info.is_published():
                acked.append(f"{i}".encode())
            else:
                return
            i += 1

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.5)
    porter.kill9_restart()
    stop.set()
    producer.join(10)
    assert len(acked) > 50
    back = Client(porter.mqtt_port, "archive", V5, clean=False, expiry=3600)
    got = {m.payload for m in back.drain(len(acked) + 10, timeout=10)}
    missing = [a for a in acked if a not in got]
    assert missing == [], f"{len(missing)} acknowledged messages lost"
    back.close()


def test_a_session_ends_when_its_expiry_passes_and_the_expiry_can_change_at_disconnect(porter):
    short = Client(porter.mqtt_port, "short", V5, clean=False, expiry=1)
    short.subscribe("news", qos=1)
    short.close()
    time.sleep(2.5)
    again = Client(porter.mqtt_port, "short", V5, clean=False, expiry=1)
    assert again.session_present is False, "expired after 1 s"
    again.subscribe("news", qos=1)
    # Lengthen it at DISCONNECT (MQTT 5 §3.14.2.2.2).
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.DISCONNECT)
    props.SessionExpiryInterval = 30
    again.client.disconnect(properties=props)
    again.client.loop_stop()
    time.sleep(2.5)
    kept = Client(porter.mqtt_port, "short", V5, clean=False, expiry=30)
    assert kept.session_present is True
    kept.close()


def test_an_expired_session_stays_expired_across_a_restart(porter):
    c = Client(porter.mqtt_port, "brief", V5, clean=False, expiry=2)
    c.subscribe("x", qos=1)
    c.close()
    porter.kill9_restart()
    time.sleep(3)
    back = Client(porter.mqtt_port, "brief", V5, clean=False, expiry=2)
    assert back.session_present is False
    back.close()


def test_a_delayed_will_survives_kill_9_during_its_delay(porter):
    # A persistent watcher, so it gets the will even though it comes back after the restart.
    watcher = Client(porter.mqtt_port, "monitor", V5, clean=False, expiry=3600)
    watcher.subscribe("presence/#", qos=1)
    gone = Client(porter.mqtt_port, "sensor-4", V5, clean=False, expiry=3600,
                  will=("presence/sensor-4", b"offline", 1, False, 3))
    back_in_time = Client(porter.mqtt_port, "sensor-5", V5, clean=False, expiry=3600,
                          will=("presence/sensor-5", b"offline", 1, False, 6))
    gone.drop()
    back_in_time.drop()
    watcher.drop()
    time.sleep(0.5)  # both connections' ends are recorded, their wills waiting
    porter.kill9_restart()
    # sensor-5 returns within its delay, after the restart: its will is cancelled.
    returned = Client(porter.mqtt_port, "sensor-5", V5, clean=False, expiry=3600)
    assert returned.session_present
    watcher = Client(porter.mqtt_port, "monitor", V5, clean=False, expiry=3600)
    m = watcher.next(timeout=10)
    assert (m.topic, m.payload) == ("presence/sensor-4", b"offline")
    # Past sensor-5's delay: had its return not cancelled the will, it would have come.
    assert watcher.quiet(5) == [], "sensor-5's will was cancelled by its return"
    for c in (returned, watcher):
        c.close()


def _qos2_publish(packet_id: int, payload: bytes, dup: bool) -> bytes:
    body = utf8("once/a") + struct.pack(">H", packet_id) + payload
    return packet(0x34 | (0x08 if dup else 0), body)


def _persistent(port: int, client_id: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(connect_packet(client_id, clean=False))
    return sock, read_packet(sock)


def test_a_qos2_publish_sent_again_on_the_next_connection_is_routed_once(porter):
    # The publisher's connection drops after its PUBLISH was routed and PUBREC sent, before
    # PUBREL; it reconnects to its session and sends the PUBLISH again (DUP), as MQTT says it
    # must when it cannot know the PUBREC arrived. The session remembers the packet id (across
    # a restart too), so the message is routed once; after PUBREL the id is free again.
    sub = Client(porter.mqtt_port, "once-sub", V5)
    sub.subscribe("once/#", qos=2)
    sock, connack = _persistent(porter.mqtt_port, "once-pub")
    assert connack[3] == 0, connack
    sock.sendall(_qos2_publish(7, b"one", dup=False))
    assert read_packet(sock) == b"\x50\x02\x00\x07"  # PUBREC
    sock.close()  # no PUBREL: the exchange is open
    assert sub.next().payload == b"one"

    for restart in (False, True):
        if restart:
            porter.restart()
            reconnect(sub)
            sub.subscribe("once/#", qos=2)
        sock, connack = _persistent(porter.mqtt_port, "once-pub")
        assert connack[2:4] == b"\x01\x00", connack  # session present
        sock.sendall(_qos2_publish(7, b"one", dup=True))
        assert read_packet(sock) == b"\x50\x02\x00\x07"
        sock.close()
        assert [m.payload for m in sub.quiet(0.5)] == [], "the re-sent PUBLISH was routed again"

    sock, _ = _persistent(porter.mqtt_port, "once-pub")
    sock.sendall(packet(0x62, struct.pack(">H", 7)))  # PUBREL
    assert read_packet(sock) == b"\x70\x02\x00\x07"  # PUBCOMP
    sock.sendall(_qos2_publish(7, b"two", dup=False))  # the id, free again, for a new message
    assert read_packet(sock) == b"\x50\x02\x00\x07"
    assert sub.next().payload == b"two"
    sock.close()
    sub.close()
