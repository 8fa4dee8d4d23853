"""Hostile and broken MQTT clients: each gets the reason code MQTT allows (or a closed socket
where it allows none), a log line, and the broker stays up with bounded memory."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from mqtt_helpers import (
    V5,
    WAIT_S,
    Client,
    closed_by_server,
    connect_packet,
    packet,
    publish_packet,
    raw_connect,
    read_packet,
    utf8,
)

DISCONNECT = 0xE0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def still_serves(porter) -> None:
    c = Client(porter.mqtt_port, "probe", V5)
    c.subscribe("probe", qos=1)
    c.publish("probe", b"ok", qos=1)
    assert c.next().payload == b"ok"
    c.close()


def disconnect_reason(packets: list[bytes]) -> int | None:
    for p in packets:
        if p[0] == DISCONNECT:
            return p[2] if len(p) > 2 else 0
    return None


def test_an_unsupported_protocol_level_gets_connack_0x01(porter):
    sock, connack = raw_connect(porter.mqtt_port, "old", level=3)
    assert connack == bytes([0x20, 0x02, 0x00, 0x01])
    assert closed_by_server(sock) == []
    deadline = time.monotonic() + 5
    while "unsupported MQTT protocol level 3" not in porter.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "unsupported MQTT protocol level 3" in porter.log_tail()
    still_serves(porter)


def test_a_first_packet_that_is_not_connect_is_closed(porter):
    sock = socket.create_connection(("127.0.0.1", porter.mqtt_port), timeout=WAIT_S)
    sock.sendall(publish_packet("a", b"x"))
    assert closed_by_server(sock) == []
    still_serves(porter)


@pytest.mark.parametrize("level", [4, 5])
def test_reserved_flags_are_a_malformed_packet(porter, level):
    sock, connack = raw_connect(porter.mqtt_port, "flags", level=level)
    assert connack[0] == 0x20
    sock.sendall(packet(0x82 & 0xF0, struct.pack(">H", 1) + utf8("a") + b"\x00"))  # SUBSCRIBE without 0010
    packets = closed_by_server(sock)
    if level == 5:
        assert disconnect_reason(packets) == 0x81
    deadline = time.monotonic() + 5
    while "reserved flags" not in porter.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "reserved flags" in porter.log_tail()
    still_serves(porter)


def test_remaining_length_overflow_is_malformed(porter):
    sock, _ = raw_connect(porter.mqtt_port, "overflow", level=5)
    sock.sendall(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
    assert disconnect_reason(closed_by_server(sock)) == 0x81
    still_serves(porter)


def test_a_packet_over_the_maximum_size_is_refused_before_it_arrives(porter):
    sock, connack = raw_connect(porter.mqtt_port, "big", level=5)
    # Announce a 200 MiB PUBLISH and send only its header: refused from the length alone.
    sock.sendall(bytes([0x30]) + bytes([0x80, 0x80, 0x80, 0x64]))
    assert disconnect_reason(closed_by_server(sock)) == 0x95  # Packet too large
    still_serves(porter)


@pytest.mark.parametrize("level", [4, 5])
def test_wildcards_in_a_publish_topic_end_the_connection(porter, level):
    sock, _ = raw_connect(porter.mqtt_port, "wild", level=level)
    sock.sendall(publish_packet("a/+/b", b"x", level=level))
    packets = closed_by_server(sock)
    if level == 5:
        assert disconnect_reason(packets) == 0x90  # Topic Name invalid
    still_serves(porter)


def test_a_topic_that_is_not_utf8_is_malformed(porter):
    sock, _ = raw_connect(porter.mqtt_port, "utf", level=5)
    sock.sendall(publish_packet(b"a/\xff\xfe", b"x", level=5))
    assert disconnect_reason(closed_by_server(sock)) == 0x81
    still_serves(porter)


def test_enhanced_authentication_is_refused_cleanly(porter):
    sock = socket.create_connection(("127.0.0.1", porter.mqtt_port), timeout=WAIT_S)
    props = bytes([0x15]) + utf8("SCRAM-SHA-1")  # Authentication Method
    body = utf8("MQTT") + bytes([5, 0x02]) + struct.pack(">H", 60) + bytes([len(props)]) + props + utf8("scram")
    sock.sendall(packet(0x10, body))
    connack = read_packet(sock)
    assert connack[0] == 0x20 and connack[3] == 0x8C  # Bad authentication method
    # AUTH on an open connection without a method is a protocol error.
    sock2, _ = raw_connect(porter.mqtt_port, "auth2", level=5)
    sock2.sendall(bytes([0xF0, 0x00]))
    assert disconnect_reason(closed_by_server(sock2)) == 0x82
    still_serves(porter)


def test_a_client_that_connects_and_says_nothing_is_closed_after_the_handshake_deadline(porter):
    sock = socket.create_connection(("127.0.0.1", porter.mqtt_port), timeout=30)
    start = time.monotonic()
    assert closed_by_server(sock, timeout=30) == []
    assert time.monotonic() - start < 20
    deadline = time.monotonic() + 5
    while "handshake deadline" not in porter.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "handshake deadline" in porter.log_tail()


def test_a_client_silent_past_its_keep_alive_is_closed_and_its_will_sent(porter):
    watcher = Client(porter.mqtt_port, "watcher", V5)
    watcher.subscribe("lost/#", qos=1)
    sock = socket.create_connection(("127.0.0.1", porter.mqtt_port), timeout=WAIT_S)
    will = utf8("lost/dev") + utf8(b"gone")
    body = utf8("MQTT") + bytes([4, 0x02 | 0x04 | 0x08]) + struct.pack(">H", 1) + utf8("dev") + will
    sock.sendall(packet(0x10, body))
    assert read_packet(sock)[:2] == b"\x20\x02"
    m = watcher.next(timeout=5)
    assert (m.topic, m.payload) == ("lost/dev", b"gone")
    watcher.close()


def test_a_subscriber_to_everything_that_never_reads_does_not_grow_the_broker(porter):
    pid = porter.process.pid
    sock, _ = raw_connect(porter.mqtt_port, "black-hole", level=4)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(packet(0x82, struct.pack(">H", 1) + utf8("#") + b"\x01"))
    time.sleep(0.3)
    healthy = Client(porter.mqtt_port, "healthy", V5)
    healthy.subscribe("load/0", qos=1)
    pub = Client(porter.mqtt_port, "firehose", V5)
    body = b"x" * 4096
    for i in range(300):  # warm-up, then measure
        pub.client.publish(f"load/{i % 10}", body, qos=0)
    time.sleep(1)
    before = rss_kib(pid)
    sent = 0
    for i in range(20_000):
        pub.client.publish(f"load/{i % 10}", body, qos=1 if i % 100 == 0 else 0)
        sent += 1
    pub.publish("load/0", b"last", qos=1)
    got = healthy.drain(2100, timeout=20)
    assert got and got[-1].payload == b"last", "another subscriber keeps receiving"
    grown_mib = (rss_kib(pid) - before) / 1024
    assert grown_mib < 64, f"RSS grew {grown_mib:.0f} MiB for 80 MiB sent to a client that never reads"
    sock.close()
    pub.close()
    healthy.close()


def test_many_connects_with_one_client_id_take_over_one_at_a_time(porter):
    pid = porter.process.pid
    before = rss_kib(pid)
    errors = []

    def hammer(n):
        for _ in range(n):
            try:
                s = socket.create_connection(("127.0.0.1", porter.mqtt_port), timeout=WAIT_S)
                s.sendall(connect_packet("same-id", 4))
                read_packet(s)
                s.close()
            except OSError as e:
                errors.append(e)

    threads = [threading.Thread(target=hammer, args=(500,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(errors) < 40, errors[:3]
    time.sleep(1)
    grown_mib = (rss_kib(pid) - before) / 1024
    assert grown_mib < 64, f"RSS grew {grown_mib:.0f} MiB after 4,000 takeovers"
    still_serves(porter)
