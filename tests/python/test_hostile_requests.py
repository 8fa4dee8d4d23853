"""Raw Kafka frames whose length fields lie must not take the broker down (the vendored
kafka-protocol patch, vendor/kafka-protocol/PORTER_PATCH.md, seen from outside)."""

from __future__ import annotations

import socket
import struct

import pytest

SOCKET_S_MAX = 10.0
API_METADATA = 3
API_PRODUCE = 0
API_VERSIONS = 18


def request_frame(api_key: int, api_version: int, correlation_id: int, body: bytes) -> bytes:
    """Size-prefixed request with a v1 header (non-flexible: api key, version, id, client id)."""
    client_id = b"porter-e2e"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header) + len(body)) + header + body


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def send_and_read_reply(bootstrap: str, frame: bytes) -> bytes | None:
    """Sends one frame; returns the reply body, or None if the broker closed the connection."""
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_S_MAX) as sock:
        sock.settimeout(SOCKET_S_MAX)
        sock.sendall(frame)
        try:
            size_bytes = read_exactly(sock, 4)
        except ConnectionResetError:
            return None
        if len(size_bytes) < 4:
            return None
        (size,) = struct.unpack(">i", size_bytes)
        return read_exactly(sock, size)


def assert_broker_healthy(porter) -> None:
    assert porter.process.poll() is None, f"porter died\n{porter.log_tail()}"
    reply = send_and_read_reply(porter.bootstrap, request_frame(API_VERSIONS, 0, 7, b""))
    assert reply is not None and len(reply) >= 6, "no ApiVersions reply after a hostile request"
    correlation_id, error_code = struct.unpack(">ih", reply[:6])
    assert (correlation_id, error_code) == (7, 0)


HOSTILE_BODIES = {
    # MetadataRequest v4: topics array of 2^31-1 entries, then nothing.
    "metadata-array-2^31-1": (API_METADATA, 4, struct.pack(">i", 2**31 - 1) + b"\x01"),
    # ProduceRequest v3: null transactional id, acks -1, timeout, topic_data of 2^31-1.
    "produce-topics-2^31-1": (API_PRODUCE, 3, struct.pack(">hhii", -1, -1, 30_000, 2**31 - 1) + b"\x00\x01t"),
    # ProduceRequest v3: one topic, one partition whose records claim 2^31-1 bytes.
    "produce-records-2^31-1": (
        API_PRODUCE,
        3,
        struct.pack(">hhii", -1, -1, 30_000, 1) + struct.pack(">h", 1) + b"t"
        + struct.pack(">iii", 1, 0, 2**31 - 1) + b"\x00" * 16,
    ),
    # ProduceRequest v3: transactional id claims 32767 bytes, 3 follow.
    "produce-string-32767": (API_PRODUCE, 3, struct.pack(">h", 32767) + b"abc"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_length_fields_do_not_kill_the_broker(porter, case):
    api_key, api_version, body = HOSTILE_BODIES[case]
    reply = send_and_read_reply(porter.bootstrap, request_frame(api_key, api_version, 1, body))
    # Either an error reply or a closed connection is fine; the process must survive.
    if reply is not None:
        assert struct.unpack(">i", reply[:4])[0] == 1, "reply to a different correlation id"
    assert_broker_healthy(porter)
