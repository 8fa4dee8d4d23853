"""AMQP 0-9-1 wire-level behaviour over a bare socket: protocol header negotiation, malformed and
oversized frames (connection.close 501 FRAME_ERROR), frames out of order (504 / 505), heartbeats,
and field-table types passing through unchanged. After each abuse the broker must still serve a
normal pika connection. Only reply codes are asserted, never reply texts."""

from __future__ import annotations

import os
import struct
import time

import pytest

from amqp_helpers import (
    FRAME_HEARTBEAT,
    PROTOCOL_HEADER,
    RawAmqp,
    consume,
    frame,
    longstr,
    method_frame,
    publish_confirmed,
    shortstr,
)

FRAME_ERROR, CHANNEL_ERROR, UNEXPECTED_FRAME = 501, 504, 505


def raw(amqp, timeout: float = 5.0) -> RawAmqp:
    return RawAmqp(amqp.broker.amqp_host, amqp.broker.amqp_port, timeout=timeout)


def assert_broker_serves(amqp):
    """A normal client still works: declare, publish with confirm, consume."""
    ch = amqp.channel()
    q = amqp.name("alive")
    ch.queue_declare(q)
    publish_confirmed(ch, "", q, [b"alive"])
    assert [d.body for d in consume(ch, q, 1)] == [b"alive"]


def channel_open(channel: int) -> bytes:
    return method_frame(channel, 20, 10, shortstr(""))


def queue_declare(channel: int, name: str) -> bytes:
    return method_frame(channel, 50, 10, b"\x00\x00" + shortstr(name) + b"\x00" + struct.pack("!I", 0))


@pytest.mark.parametrize(
    "greeting",
    [b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40],
    ids=["http", "tls-client-hello"],
)
def test_garbage_instead_of_protocol_header(amqp, greeting):
    conn = raw(amqp)
    try:
        conn.send(greeting)
        data, closed = conn.recv_until_closed()
    finally:
        conn.close()
    assert data == PROTOCOL_HEADER, "the server answers with the version it speaks"
    assert closed, "and closes the connection"
    assert_broker_serves(amqp)


@pytest.mark.parametrize(
    "header",
    [b"AMQP\x00\x00\x09\x00", b"AMQP\x00\x00\x09\x02", b"AMQP\x01\x01\x00\x0a", b"AMQP\x00\x01\x00\x00"],
    ids=["0-9-0", "0-9-2", "0-10", "1-0"],
)
def test_unsupported_protocol_version(amqp, header):
    conn = raw(amqp)
    try:
        conn.send(header)
        data, closed = conn.recv_until_closed()
    finally:
        conn.close()
    assert data == PROTOCOL_HEADER
    assert closed
    assert_broker_serves(amqp)


def test_truncated_protocol_header_then_close(amqp):
    conn = raw(amqp)
    conn.send(b"AMQ")
    conn.close()
    assert_broker_serves(amqp)


@pytest.mark.parametrize("cut", [3, 7, 12], ids=["in-frame-header", "after-frame-header", "in-payload"])
def test_truncated_frame_then_close(amqp, cut):
    conn = raw(amqp)
    conn.handshake()
    whole = channel_open(1) + queue_declare(1, amqp.name("never"))
    conn.send(whole[:cut])
    time.sleep(0.1)
    conn.close()
    assert_broker_serves(amqp)


def expect_close_then_disconnect(conn: RawAmqp, code: int):
    """The server sends connection.close with `code`; after our close-ok it drops the socket."""
    reply_code, _text, _class, _method = conn.expect_connection_close()
    assert reply_code == code, f"want {code}, got {reply_code} {_text!r}"
    try:
        conn.send(method_frame(0, 10, 51))  # close-ok (the server may already be gone)
    except OSError:
        pass
    data, closed = conn.recv_until_closed()
    assert closed, f"server kept the connection open after close-ok; sent {data!r}"


@pytest.mark.parametrize("end", [0x00, 0xCD, 0xFF])
def test_bad_frame_end_octet_is_501(amqp, end):
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(frame(1, 1, struct.pack("!HH", 20, 10) + shortstr(""), end=end))
        expect_close_then_disconnect(conn, FRAME_ERROR)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_frame_larger_than_negotiated_frame_max_is_501(amqp):
    conn = raw(amqp)
    try:
        conn.handshake()
        assert conn.frame_max >= 4096
        payload = struct.pack("!HH", 20, 10) + shortstr("") + b"x" * conn.frame_max
        conn.send(frame(1, 1, payload))
        expect_close_then_disconnect(conn, FRAME_ERROR)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_frame_larger_than_client_chosen_frame_max_is_501(amqp):
    """The limit is the negotiated one: a client that asked for 8 KiB frames may not send 9 KiB."""
    conn = raw(amqp)
    try:
        conn.handshake(frame_max=8192)
        conn.send(channel_open(1))
        assert conn.read_method()[:2] == (20, 11)
        q = amqp.name("framemax")
        conn.send(queue_declare(1, q))
        assert conn.read_method()[:2] == (50, 11)
        body = b"b" * 9000  # one body frame of 9000 + 8 bytes > 8192
        conn.send(
            method_frame(1, 60, 40, b"\x00\x00" + shortstr("") + shortstr(q) + b"\x00")
            + frame(2, 1, struct.pack("!HHQH", 60, 0, len(body), 0))
            + frame(3, 1, body)
        )
        expect_close_then_disconnect(conn, FRAME_ERROR)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_unknown_frame_type_is_501(amqp):
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(frame(9, 0, b"x"))
        expect_close_then_disconnect(conn, FRAME_ERROR)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_method_on_a_channel_that_is_not_open_is_504(amqp):
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(queue_declare(1, amqp.name("nochannel")))
        expect_close_then_disconnect(conn, CHANNEL_ERROR)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_opening_a_channel_twice_is_504(amqp):
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(channel_open(1))
        assert conn.read_method()[:2] == (20, 11)
        conn.send(channel_open(1))
        expect_close_then_disconnect(conn, CHANNEL_ERROR)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_body_frame_without_a_content_header_is_505(amqp):
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(channel_open(1))
        assert conn.read_method()[:2] == (20, 11)
        conn.send(frame(3, 1, b"orphan body"))
        expect_close_then_disconnect(conn, UNEXPECTED_FRAME)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_heartbeat_on_a_non_zero_channel_is_505(amqp):
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(channel_open(1))
        assert conn.read_method()[:2] == (20, 11)
        conn.send(frame(FRAME_HEARTBEAT, 1, b""))
        expect_close_then_disconnect(conn, UNEXPECTED_FRAME)
    finally:
        conn.close()
    assert_broker_serves(amqp)


def test_heartbeats_are_sent_and_a_silent_client_is_dropped(amqp):
    """With heartbeat=1 s negotiated the server sends heartbeat frames, and closes the socket of a
    client that sends nothing for about two intervals."""
    conn = raw(amqp, timeout=10)
    try:
        conn.send(PROTOCOL_HEADER)
        assert conn.read_method()[:2] == (10, 10)
        conn.send(method_frame(0, 10, 11, struct.pack("!I", 0) + shortstr("PLAIN")
                               + longstr(b"\x00guest\x00guest") + shortstr("en_US")))
        class_id, method_id, args = conn.read_method()
        assert (class_id, method_id) == (10, 30)
        channel_max, frame_max, _ = struct.unpack("!HIH", args[:8])
        conn.send(method_frame(0, 10, 31, struct.pack("!HIH", channel_max, frame_max, 1)))
        conn.send(method_frame(0, 10, 40, shortstr("/") + shortstr("") + b"\x00"))
        assert conn.read_method()[:2] == (10, 41)
        started = time.monotonic()
        heartbeats = 0
        while True:
            try:
                kind, channel, payload = conn.read_frame()
            except (EOFError, ConnectionResetError):
                break
            assert (kind, channel, payload) == (FRAME_HEARTBEAT, 0, b""), (kind, channel, payload)
            heartbeats += 1
            assert time.monotonic() - started < 8, "a silent client was not dropped within 8 s"
        elapsed = time.monotonic() - started
        assert heartbeats >= 1, "no heartbeat frame from the server"
        assert 1.0 <= elapsed < 8, f"dropped after {elapsed:.1f}s"
    finally:
        conn.close()
    assert_broker_serves(amqp)


def field(name: str, tag: bytes, raw_value: bytes) -> bytes:
    return shortstr(name) + tag + raw_value


FIXED_SIZES = {"d": 8, "f": 4, "b": 1, "B": 1, "s": 2, "u": 2, "I": 4, "i": 4, "l": 8, "T": 8, "D": 5, "V": 0, "t": 1}


def parse_table(raw_table: bytes) -> list[tuple[str, str, bytes]]:
    """A field table's entries as (name, type tag, raw value bytes), in wire order."""
    out, i = [], 0
    while i < len(raw_table):
        n = raw_table[i]
        name = raw_table[i + 1 : i + 1 + n].decode()
        i += 1 + n
        tag = chr(raw_table[i])
        i += 1
        size = FIXED_SIZES.get(tag)
        if size is None:  # S, x, A, F: a 4-byte length first
            size = 4 + struct.unpack("!I", raw_table[i : i + 4])[0]
        out.append((name, tag, raw_table[i : i + size]))
        i += size
    return out


FIELD_TABLE = b"".join([
    field("d", b"d", struct.pack("!d", 2.5)),
    field("f", b"f", struct.pack("!f", 1.25)),
    field("b", b"b", struct.pack("!b", -5)),
    field("B", b"B", struct.pack("!B", 200)),
    field("s", b"s", struct.pack("!h", -300)),
    field("u", b"u", struct.pack("!H", 60000)),
    field("I", b"I", struct.pack("!i", -70000)),
    field("i", b"i", struct.pack("!I", 4_000_000_000)),
    field("l", b"l", struct.pack("!q", -(2**40))),
    field("x", b"x", longstr(b"\x00\xff")),
    field("T", b"T", struct.pack("!Q", 1_700_000_000)),
    field("D", b"D", struct.pack("!Bi", 2, 314)),
    field("V", b"V", b""),
    field("t", b"t", b"\x01"),
    field("S", b"S", longstr("héllo")),
    field("A", b"A", longstr(b"I" + struct.pack("!i", 1) + b"d" + struct.pack("!d", 0.5))),
    field("F", b"F", longstr(field("inner", b"d", struct.pack("!d", -1.5)))),
])


def publish_and_get_raw_properties(amqp, table: bytes) -> tuple[bytes, bytes]:
    """Publish (raw frames, confirmed) a message whose headers are `table`, basic.get it back, and
    return (sent properties, received properties) as raw bytes."""
    # property flags: content-type (bit 15) and headers (bit 13)
    properties = struct.pack("!H", (1 << 15) | (1 << 13)) + shortstr("text/plain") + longstr(table)
    body = b"typed payload"
    q = amqp.name("fieldtypes")
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(channel_open(1))
        assert conn.read_method()[:2] == (20, 11)
        conn.send(queue_declare(1, q))
        assert conn.read_method()[:2] == (50, 11)
        conn.send(method_frame(1, 85, 10, b"\x00"))  # confirm.select
        assert conn.read_method()[:2] == (85, 11)
        conn.send(
            method_frame(1, 60, 40, b"\x00\x00" + shortstr("") + shortstr(q) + b"\x00")
            + frame(2, 1, struct.pack("!HHQ", 60, 0, len(body)) + properties)
            + frame(3, 1, body)
        )
        assert conn.read_method()[:2] == (60, 80), "basic.ack (publisher confirm)"
        conn.send(method_frame(1, 60, 70, b"\x00\x00" + shortstr(q) + b"\x01"))  # basic.get no-ack
        assert conn.read_method()[:2] == (60, 71), "basic.get-ok"
        kind, channel, header = conn.read_frame()
        assert (kind, channel) == (2, 1)
        class_id, _weight, size = struct.unpack("!HHQ", header[:12])
        assert (class_id, size) == (60, len(body))
        kind, channel, got = conn.read_frame()
        assert (kind, channel, got) == (3, 1, body)
    finally:
        conn.close()
    return properties, header[12:]


def test_field_table_types_pass_through_unchanged(amqp):
    """Every field type RabbitMQ defines (including float 'f', double 'd' and the small integers,
    which pika cannot encode) arrives with its type tag and value bytes as published, nested in
    arrays and tables too."""
    sent, received = publish_and_get_raw_properties(amqp, FIELD_TABLE)
    prefix = struct.pack("!H", (1 << 15) | (1 << 13)) + shortstr("text/plain")
    assert received[: len(prefix)] == prefix, "flags and content-type"
    got = parse_table(received[len(prefix) + 4 :])
    want = parse_table(FIELD_TABLE)
    assert sorted(got) == sorted(want), f"changed entries: {sorted(set(got) ^ set(want))}"
    # and pika reads such a queue fine afterwards
    ch = amqp.channel()
    q = amqp.name("after-types")
    ch.queue_declare(q)
    publish_confirmed(ch, "", q, [b"again"])
    assert consume(ch, q, 1)[0].body == b"again"


@pytest.mark.xfail(
    not os.environ.get("AMQP_TEST_URL"),
    strict=True,
    reason="known gap, docs/amqp.md: Porter re-sorts table keys (amq-protocol's FieldTable is a "
    "sorted map); types and values are kept, see test_field_table_types_pass_through_unchanged",
)
def test_field_table_order_is_preserved(amqp):
    """RabbitMQ hands the properties on byte for byte: a table's entries keep their wire order
    (a client that signs or hashes its headers, or shows them in order, sees them unchanged)."""
    sent, received = publish_and_get_raw_properties(amqp, FIELD_TABLE)
    prefix_len = 2 + 1 + len("text/plain") + 4
    order = [name for name, _t, _v in parse_table(received[prefix_len:])]
    assert order == [name for name, _t, _v in parse_table(FIELD_TABLE)]
    assert received == sent


def test_clean_close_handshake(amqp):
    conn = raw(amqp)
    try:
        conn.handshake()
        conn.send(method_frame(0, 10, 50, struct.pack("!H", 200) + shortstr("bye") + struct.pack("!HH", 0, 0)))
        assert conn.read_method()[:2] == (10, 51), "connection.close-ok"
    finally:
        conn.close()
    assert_broker_serves(amqp)
