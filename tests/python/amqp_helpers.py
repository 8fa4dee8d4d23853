"""Helpers and fixtures for the AMQP 0-9-1 end-to-end tests (tests/python/test_amqp_*.py).

Loaded as a pytest plugin by conftest.py. The `amqp` fixture wraps the `amqp_broker` (a Porter
server, or the external broker of AMQP_TEST_URL):

    def test_x(amqp):
        conn = amqp.connect()                  # pika.BlockingConnection, closed at teardown
        ch = conn.channel()
        q = amqp.name("work")                  # unique per test; deleted at teardown
        ch.queue_declare(q)
        ...

    def test_y(amqp_restartable):              # Porter only (see conftest.porter_amqp)
        amqp_restartable.broker.kill9_restart()

Every wait is bounded: consume() and get_n() take a timeout, connections have socket and
blocked-connection timeouts. `RawAmqp` speaks the protocol over a bare socket for the
framing tests.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from dataclasses import dataclass, field

import pika
import pika.exceptions
import pytest

# A test that waits for a message waits at most this long unless it says otherwise.
WAIT_S = 10.0


def connection_parameters(url: str, **overrides) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.stack_timeout = 10
    params.blocked_connection_timeout = 30
    for key, value in overrides.items():
        setattr(params, key, value)
    return params


@dataclass
class Delivery:
    method: object
    properties: pika.BasicProperties
    body: bytes


@dataclass
class Amqp:
    broker: object
    test_id: str
    connections: list = field(default_factory=list)
    queues: list = field(default_factory=list)
    exchanges: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.broker.amqp_url

    def connect(self, **overrides) -> pika.BlockingConnection:
        conn = pika.BlockingConnection(connection_parameters(self.url, **overrides))
        self.connections.append(conn)
        return conn

    def channel(self, **overrides):
        return self.connect(**overrides).channel()

    def name(self, prefix: str, kind: str = "queue") -> str:
        """A queue (kind="queue") or exchange (kind="exchange") name unique to this test run."""
        value = f"t.{prefix}.{self.test_id}.{uuid.uuid4().hex[:8]}"
        (self.queues if kind == "queue" else self.exchanges).append(value)
        return value

    def exchange(self, prefix: str) -> str:
        return self.name(prefix, kind="exchange")

    def close(self) -> None:
        for conn in self.connections:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:  # noqa: BLE001 - teardown is best effort
                pass
        if not (self.queues or self.exchanges):
            return
        # Leave an external broker clean; a Porter server is thrown away anyway.
        if not getattr(self.broker, "external", False):
            return
        try:
            conn = pika.BlockingConnection(connection_parameters(self.url))
        except Exception:  # noqa: BLE001
            return
        try:
            for kind, names in (("queue", self.queues), ("exchange", self.exchanges)):
                for value in names:
                    try:
                        ch = conn.channel()
                        if kind == "queue":
                            ch.queue_delete(value)
                        else:
                            ch.exchange_delete(value)
                        ch.close()
                    except Exception:  # noqa: BLE001
                        if not conn.is_open:
                            return
        finally:
            if conn.is_open:
                conn.close()


def _helper(broker, request):
    helper = Amqp(broker, test_id=request.node.name.split("[")[0].removeprefix("test_")[:40])
    try:
        yield helper
    finally:
        helper.close()


@pytest.fixture
def amqp(amqp_broker, request):
    yield from _helper(amqp_broker, request)


@pytest.fixture
def amqp_restartable(porter_amqp, request):
    """Like `amqp`, on a broker the test may restart (amqp.broker.restart() / kill9_restart())."""
    yield from _helper(porter_amqp, request)


def publish_confirmed(ch, exchange: str, routing_key: str, bodies, **props) -> None:
    """Publish each body with confirms on (enabling them on `ch` if needed)."""
    if not getattr(ch, "_delivery_confirmation", False):
        ch.confirm_delivery()
    for body in bodies:
        ch.basic_publish(exchange, routing_key, body, pika.BasicProperties(**props) if props else None)


def message_count(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_message_count(ch, queue: str, expected: int, timeout: float = WAIT_S) -> int:
    """Poll a passive declare until the queue holds `expected` ready messages."""
    deadline = time.monotonic() + timeout
    while True:
        count = message_count(ch, queue)
        if count == expected or time.monotonic() > deadline:
            assert count == expected, f"{queue}: {count} ready messages after {timeout}s, want {expected}"
            return count
        time.sleep(0.05)


def consume(ch, queue: str, n: int, timeout: float = WAIT_S, ack: bool = True, auto_ack: bool = False):
    """Consume exactly `n` messages (fewer fails), acking each unless ack=False, then cancel."""
    out: list[Delivery] = []
    deadline = time.monotonic() + timeout
    if n > 0:
        for method, props, body in ch.consume(queue, auto_ack=auto_ack, inactivity_timeout=0.1):
            if method is not None:
                out.append(Delivery(method, props, body))
                if ack and not auto_ack:
                    ch.basic_ack(method.delivery_tag)
                if len(out) == n:
                    break
            if time.monotonic() > deadline:
                break
    ch.cancel()
    assert len(out) == n, f"{queue}: got {len(out)} of {n} messages within {timeout}s: {[d.body for d in out]}"
    return out


def get_n(ch, queue: str, n: int, timeout: float = WAIT_S, ack: bool = True):
    """basic.get until `n` messages came (polling while the queue is empty), acking each."""
    out: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        method, props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            assert time.monotonic() < deadline, f"{queue}: got {len(out)} of {n} within {timeout}s"
            time.sleep(0.05)
            continue
        if ack:
            ch.basic_ack(method.delivery_tag)
        out.append(Delivery(method, props, body))
    return out


def assert_empty(ch, queue: str, wait: float = 0.0) -> None:
    if wait:
        time.sleep(wait)
    method, _props, body = ch.basic_get(queue, auto_ack=True)
    assert method is None, f"{queue}: expected empty, got {body!r}"


def expect_channel_error(code: int, fn, *args, **kwargs) -> pika.exceptions.ChannelClosedByBroker:
    """Run fn, which must make the broker close the channel with `code`; returns the exception."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        fn(*args, **kwargs)
    assert info.value.reply_code == code, f"want {code}, got {info.value.reply_code} {info.value.reply_text}"
    return info.value


# --- raw protocol -------------------------------------------------------------------------------

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE


def shortstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!B", len(raw)) + raw


def longstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!I", len(raw)) + raw


def frame(kind: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    return struct.pack("!BHI", kind, channel, len(payload)) + payload + bytes([end])


def method_frame(channel: int, class_id: int, method_id: int, args: bytes = b"", end: int = FRAME_END) -> bytes:
    return frame(FRAME_METHOD, channel, struct.pack("!HH", class_id, method_id) + args, end)


class RawAmqp:
    """A bare-socket AMQP client: enough to do the handshake and send malformed frames."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.frame_max = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_until_closed(self, limit: int = 1 << 16) -> tuple[bytes, bool]:
        """Everything the server sends until it closes the connection or the socket timeout
        passes: (data, closed)."""
        data = self.buffer
        self.buffer = b""
        while len(data) < limit:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                return data, True
            except TimeoutError:
                return data, False
            if not chunk:
                return data, True
            data += chunk
        return data, False

    def _fill(self, n: int) -> None:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed with {len(self.buffer)} of {n} bytes buffered")
            self.buffer += chunk

    def read_frame(self):
        """(type, channel, payload); raises EOFError if the server closed first."""
        self._fill(7)
        kind, channel, size = struct.unpack("!BHI", self.buffer[:7])
        self._fill(7 + size + 1)
        payload = self.buffer[7 : 7 + size]
        end = self.buffer[7 + size]
        self.buffer = self.buffer[8 + size :]
        assert end == FRAME_END, f"server sent a bad frame end {end:#x}"
        return kind, channel, payload

    def read_method(self, skip_heartbeats: bool = True):
        """(class_id, method_id, args) of the next method frame."""
        while True:
            kind, channel, payload = self.read_frame()
            if kind == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            assert kind == FRAME_METHOD, f"expected a method frame, got type {kind}"
            class_id, method_id = struct.unpack("!HH", payload[:4])
            return class_id, method_id, payload[4:]

    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/", frame_max: int | None = None):
        self.send(PROTOCOL_HEADER)
        assert self.read_method()[:2] == (10, 10), "expected connection.start"
        self.send(
            method_frame(
                0,
                10,
                11,
                struct.pack("!I", 0)  # client-properties: empty table
                + shortstr("PLAIN")
                + longstr(b"\x00" + user.encode() + b"\x00" + password.encode())
                + shortstr("en_US"),
            )
        )
        class_id, method_id, args = self.read_method()
        assert (class_id, method_id) == (10, 30), f"expected connection.tune, got {class_id}.{method_id}"
        channel_max, server_frame_max, _heartbeat = struct.unpack("!HIH", args[:8])
        self.frame_max = frame_max or server_frame_max
        self.send(method_frame(0, 10, 31, struct.pack("!HIH", channel_max, self.frame_max, 0)))
        self.send(method_frame(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00"))
        assert self.read_method()[:2] == (10, 41), "expected connection.open-ok"

    def expect_connection_close(self):
        """Read until connection.close; returns (reply_code, reply_text, class_id, method_id)."""
        while True:
            class_id, method_id, args = self.read_method()
            if (class_id, method_id) == (10, 50):
                code = struct.unpack("!H", args[:2])[0]
                text_len = args[2]
                text = args[3 : 3 + text_len].decode(errors="replace")
                failing_class, failing_method = struct.unpack("!HH", args[3 + text_len : 7 + text_len])
                return code, text, failing_class, failing_method
