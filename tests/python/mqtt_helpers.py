"""Helpers for the MQTT tests: a paho-mqtt 2.x client that records what it receives, and raw
packets for the bad-input tests."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
WAIT_S = 10


class Client:
    """A connected paho client; `messages` holds what arrived, `disconnects` the reason codes
    of server disconnects."""

    def __init__(self, port: int, client_id: str = "", version=V5, clean: bool = True,
                 expiry: int | None = None, will: tuple | None = None, props: dict | None = None,
                 manual_ack: bool = False, transport: str = "tcp", path: str = "/mqtt",
                 connect: bool = True, credentials: tuple[str, str] | None = None):
        self.port = port
        self.version = version
        self.messages: queue.Queue = queue.Queue()
        self.disconnects: queue.Queue = queue.Queue()
        self.connack = threading.Event()
        self.session_present = None
        self.reason_code = None
        self.connack_properties = None
        kwargs = {}
        if version == V311:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=version, transport=transport, manual_ack=manual_ack,
                                  reconnect_on_failure=False, **kwargs)
        if transport == "websockets":
            self.client.ws_set_options(path=path)
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, flags, rc, p: self.disconnects.put(rc)
        if will:
            topic, payload, qos, retain, *rest = will
            will_props = None
            if rest:
                will_props = Properties(PacketTypes.WILLMESSAGE)
                will_props.WillDelayInterval = rest[0]
            self.client.will_set(topic, payload, qos, retain, properties=will_props)
        self._clean = clean
        self._expiry = expiry
        self._props = props or {}
        if connect:
            self.connect()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.session_present = flags.session_present
        self.reason_code = reason_code
        self.connack_properties = properties
        self.connack.set()

    def connect(self):
        self.connack.clear()
        if self.version == V5:
            props = Properties(PacketTypes.CONNECT)
            if self._expiry is not None:
                props.SessionExpiryInterval = self._expiry
            for k, v in self._props.items():
                setattr(props, k, v)
            self.client.connect("127.0.0.1", self.port, clean_start=self._clean, properties=props)
        else:
            self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connack.wait(WAIT_S), "no CONNACK"
        return self

    def subscribe(self, topic: str, qos: int = 1, **options):
        done = threading.Event()
        result = {}

        def on_subscribe(c, u, mid, reason_codes, properties):
            result["codes"] = reason_codes
            done.set()

        self.client.on_subscribe = on_subscribe
        props = None
        if "sub_id" in options:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = options.pop("sub_id")
        if self.version == V5:
            opts = mqtt.SubscribeOptions(qos=qos, noLocal=options.get("no_local", False),
                                         retainAsPublished=options.get("rap", False),
                                         retainHandling=options.get("retain_handling", 0))
            self.client.subscribe(topic, options=opts, properties=props)
        else:
            self.client.subscribe(topic, qos)
        assert done.wait(WAIT_S), "no SUBACK"
        return result["codes"]

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False, props=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            info.wait_for_publish(WAIT_S)
            assert info.is_published(), f"publish to {topic} not acknowledged"
        return info

    def next(self, timeout: float = WAIT_S):
        return self.messages.get(timeout=timeout)

    def drain(self, count: int, timeout: float = WAIT_S) -> list:
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                got.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return got

    def quiet(self, seconds: float = 0.5) -> list:
        """What arrives within `seconds` (for asserting nothing does)."""
        time.sleep(seconds)
        got = []
        while not self.messages.empty():
            got.append(self.messages.get_nowait())
        return got

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (a crashed client)."""
        self.client.loop_stop()
        self.client.socket().close()


def user_properties(message) -> dict:
    props = getattr(message, "properties", None)
    return dict(getattr(props, "UserProperty", []) or [])


# Raw packets, for input paho would never send.

def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def utf8(s: bytes | str) -> bytes:
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">H", len(s)) + s


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining_length(len(body)) + body


def connect_packet(client_id: str, level: int = 4, keep_alive: int = 60, clean: bool = True) -> bytes:
    body = utf8("MQTT") + bytes([level, 0x02 if clean else 0x00]) + struct.pack(">H", keep_alive)
    if level == 5:
        body += b"\x00"  # no properties
    body += utf8(client_id)
    return packet(0x10, body)


def publish_packet(topic: bytes | str, payload: bytes, level: int = 4) -> bytes:
    body = utf8(topic) + (b"\x00" if level == 5 else b"") + payload
    return packet(0x30, body)


def raw_connect(port: int, client_id: str, level: int = 4) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(connect_packet(client_id, level))
    return sock, read_packet(sock)


def read_packet(sock: socket.socket) -> bytes:
    """One whole packet, or b"" if the server closed."""
    head = sock.recv(1)
    if not head:
        return b""
    length, shift = 0, 0
    lb = b""
    while True:
        b = sock.recv(1)
        if not b:
            return b""
        lb += b
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return b""
        body += chunk
    return head + lb + body


def closed_by_server(sock: socket.socket, timeout: float = WAIT_S) -> list[bytes]:
    """Reads until the server closes; returns the packets it sent before closing."""
    sock.settimeout(timeout)
    packets = []
    while True:
        try:
            p = read_packet(sock)
        except (ConnectionResetError, BrokenPipeError):
            return packets
        if not p:
            return packets
        packets.append(p)
