"""The idempotent producer through a flaky network: librdkafka (enable.idempotence, acks=all) talks
to Porter through a proxy that cuts every connection every 300 ms, so produce requests are lost in
flight and retried with the same producer id and sequence numbers. Porter must append each batch
exactly once and in order: every record once, no gaps, no duplicates, no reordering.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path

import pytest

from conftest import PORTER_BIN, PorterServer, free_loopback_port
from kafka_helpers import DeliveryTracker, consume_exactly, create_topic, flush_all, make_producer, produce
from tcp_proxy import TcpProxy

RECORDS = 20_000
PARTITIONS = 4
CUT_INTERVAL_S = 0.3
# The last 50 ms before each cut, responses are dropped: those requests were executed, their client
# never hears so, and retries them.
SWALLOW_S = 0.05
# 20,000 / 200 * 0.05 s: about 5 s of producing, so about 16 cuts land while requests are in flight.
PACE_RECORDS = 200
PACE_S = 0.05
PRODUCE_S_MAX = 120.0
SOCKET_S_MAX = 10.0
API_DESCRIBE_PRODUCERS = 61


class TransmitStats:
    """librdkafka statistics callback: records transmitted (retransmissions included, summed over
    partitions; `txretries` stays 0 here because an idempotent producer re-sends drained messages
    rather than retrying requests) and broker disconnects seen."""

    def __init__(self):
        self.transmitted = 0
        self.disconnects = 0

    def update(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        partitions = [
            p for topic in stats.get("topics", {}).values() for p in topic["partitions"].values() if p["partition"] >= 0
        ]
        self.transmitted = max(self.transmitted, sum(p.get("txmsgs", 0) for p in partitions))
        self.disconnects = max(self.disconnects, sum(b.get("disconnects", 0) for b in stats.get("brokers", {}).values()))


@pytest.fixture
def porter_behind_proxy(tmp_path: Path):
    """A Porter that advertises a fault-injecting proxy's address, and that proxy. Clients
    bootstrapping on either end up talking through the proxy (Metadata names it)."""
    if not (PORTER_BIN.is_file() and os.access(PORTER_BIN, os.X_OK)):
        pytest.fail(f"porter binary not found at {PORTER_BIN}: build it with `cargo build -p porter`", pytrace=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    broker_port = free_loopback_port()
    proxy = TcpProxy(("127.0.0.1", broker_port))
    server = PorterServer(PORTER_BIN, data_dir, tmp_path / "porter.log", broker_port, advertised=proxy.address)
    try:
        server.start()
        yield server, proxy
    finally:
        proxy.close()
        running = server.process is not None and server.process.poll() is None
        exit_code = server.stop() if running else None
        print(server.log_tail())
        if running and exit_code != 0:
            raise AssertionError(f"porter exited {exit_code} on SIGTERM at teardown")


def test_idempotent_producer_exactly_once_through_connection_cuts(porter_behind_proxy):
    server, proxy = porter_behind_proxy
    topic = "idempotent-chaos"
    create_topic(proxy.address, topic, PARTITIONS)

    stats = TransmitStats()
    producer = make_producer(
        proxy.address,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "batch.num.messages": 200,  # many small batches: more of them are in flight at a cut
            "max.in.flight.requests.per.connection": 5,
            "retry.backoff.ms": 20,
            "reconnect.backoff.ms": 10,
            "reconnect.backoff.max.ms": 100,
            "socket.timeout.ms": 10_000,
            "message.timeout.ms": int(PRODUCE_S_MAX * 1000),
            # librdkafka >= 2.10 re-bootstraps (forgets the brokers it learned) when every connection is
            # down at once, which these cuts cause every time; re-bootstrapping every 300 ms never gets
            # as far as a producer id. Not what this test is about: keep the learned broker.
            "metadata.recovery.strategy": "none",
            "statistics.interval.ms": 200,
            "stats_cb": stats.update,
        },
    )
    tracker = DeliveryTracker()
    proxy.cut_every(CUT_INTERVAL_S, swallow_responses_s=SWALLOW_S)
    started = time.monotonic()
    deadline = started + PRODUCE_S_MAX
    for i in range(RECORDS):
        produce(producer, tracker, deadline, topic=topic, partition=i % PARTITIONS, key=str(i).encode(), value=f"n={i}".encode())
        if i % PACE_RECORDS == 0:
            producer.poll(0)
            time.sleep(PACE_S)  # spread the run over many cut intervals
    flush_all(producer, tracker, RECORDS)
    produce_s = time.monotonic() - started
    proxy.stop_cutting()
    producer.poll(0.5)  # one more statistics callback, after the last delivery
    print(
        f"produced {RECORDS} in {produce_s:.1f} s; proxy: {proxy.accepted} connections, {proxy.cuts} cut rounds, "
        f"{proxy.connections_cut} connections cut, {proxy.responses_swallowed} responses swallowed; producer: {stats.transmitted} records sent "
        f"for {RECORDS}, {stats.disconnects} disconnects"
    )
    assert stats.transmitted > RECORDS, (
        f"{stats.transmitted} records transmitted for {RECORDS} ({proxy.responses_swallowed} responses swallowed): "
        "the test exercised no retry"
    )
    # Each partition's acknowledgements are offsets 0..n-1 in order: a retried batch that had been
    # appended is answered with its original offset, never appended again.
    per_partition = RECORDS // PARTITIONS
    for p in range(PARTITIONS):
        assert tracker.offsets[p] == list(range(per_partition)), f"acked offsets of partition {p}"

    # Read back with a fresh consumer, now that the cuts stopped (it bootstraps on the broker's own
    # listener, then follows Metadata to the proxy, which now forwards everything untouched).
    received = consume_exactly(server.bootstrap, topic, {p: per_partition for p in range(PARTITIONS)})
    for p in range(PARTITIONS):
        records = received[p]
        assert [r.offset for r in records] == list(range(per_partition)), f"offsets of partition {p}"
        numbers = [int(r.value.decode().removeprefix("n=")) for r in records]
        expected = list(range(p, RECORDS, PARTITIONS))
        if numbers != expected:
            seen = set(numbers)
            dups = len(numbers) - len(seen)
            missing = [n for n in expected if n not in seen][:10]
            first_bad = next(i for i, (a, e) in enumerate(zip(numbers, expected + [None] * len(numbers))) if a != e)
            pytest.fail(
                f"partition {p}: {len(numbers)} records, {dups} duplicates, missing (first 10) {missing}; "
                f"first difference at offset {first_bad}: {numbers[first_bad]} instead of {expected[first_bad]}"
                f" (proxy: {proxy.cuts} cut rounds, {proxy.connections_cut} connections cut)"
            )
        assert [r.key for r in records] == [str(n).encode() for n in expected]

    # DescribeProducers (neither confluent-kafka nor kafka-python exposes it): one producer id wrote
    # every partition, and its last sequence is the partition's record count - 1.
    described = describe_producers(server.bootstrap, topic, list(range(PARTITIONS)))
    producer_ids = set()
    for p in range(PARTITIONS):
        error_code, producers = described[p]
        assert error_code == 0, f"DescribeProducers error {error_code} for partition {p}"
        assert len(producers) == 1, f"partition {p}: active producers {producers}"
        [(producer_id, epoch, last_sequence, last_timestamp)] = producers
        producer_ids.add(producer_id)
        assert producer_id >= 0 and epoch >= 0
        assert last_sequence == per_partition - 1, f"partition {p}: last sequence {last_sequence}"
        assert abs(last_timestamp - time.time() * 1000) < 10 * 60 * 1000, f"last timestamp {last_timestamp}"
    assert len(producer_ids) == 1, f"several producer ids: {producer_ids}"


# --- DescribeProducers v0 by hand (a flexible API: compact strings/arrays, tagged fields) ---


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _compact_string(s: str) -> bytes:
    raw = s.encode()
    return _uvarint(len(raw) + 1) + raw


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values[0] if len(values) == 1 else values

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def compact_string(self) -> str | None:
        n = self.uvarint()
        if n == 0:
            return None
        s = self.data[self.pos : self.pos + n - 1].decode()
        self.pos += n - 1
        return s

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def describe_producers(bootstrap: str, topic: str, partitions: list[int]) -> dict[int, tuple[int, list]]:
    """partition -> (error code, [(producer id, epoch, last sequence, last timestamp)])."""
    client_id = b"porter-e2e"
    correlation_id = 42
    header = struct.pack(">hhih", API_DESCRIBE_PRODUCERS, 0, correlation_id, len(client_id)) + client_id + b"\x00"
    body = (
        _uvarint(1 + 1)
        + _compact_string(topic)
        + _uvarint(len(partitions) + 1)
        + b"".join(struct.pack(">i", p) for p in partitions)
        + b"\x00"  # topic tags
        + b"\x00"  # request tags
    )
    frame = struct.pack(">i", len(header) + len(body)) + header + body
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_S_MAX) as sock:
        sock.sendall(frame)
        size = struct.unpack(">i", _read_exactly(sock, 4))[0]
        reply = _Reader(_read_exactly(sock, size))
    assert reply.take(">i") == correlation_id
    reply.skip_tags()  # response header v1
    reply.take(">i")  # throttle time
    result = {}
    for _ in range(reply.uvarint() - 1):
        name = reply.compact_string()
        assert name == topic
        for _ in range(reply.uvarint() - 1):
            partition, error_code = reply.take(">ih")
            reply.compact_string()  # error message
            producers = []
            for _ in range(reply.uvarint() - 1):
                producer_id, epoch, last_sequence, last_timestamp, _coordinator_epoch, _txn_start = reply.take(">qiiqiq")
                reply.skip_tags()
                producers.append((producer_id, epoch, last_sequence, last_timestamp))
            reply.skip_tags()
            result[partition] = (error_code, producers)
        reply.skip_tags()
    return result


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data
