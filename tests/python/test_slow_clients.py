"""Connection floods and slowloris clients (issue 18 §6), on every listener.

- Flood: with `[connections] per_source_max = 4`, a fifth connection from one address is closed
  at once on every listener (Kafka, AMQP, MQTT, STOMP, HTTP, RocketMQ), counted in /metrics,
  and the address gets its places back when it closes its connections.
- Slowloris: a client dripping its handshake one byte a second is closed at the handshake
  deadline (AMQP and MQTT: 10 s; STOMP: its `handshake_timeout_ms`), each with a log line; the
  broker keeps serving everyone else throughout."""

from __future__ import annotations

import socket
import threading
import time

import pika
import pytest

from amqp_helpers import connection_parameters
from conftest import run_porter
from test_management import metric_samples

PER_SOURCE = 4
WAIT_S = 15


@pytest.fixture
def limited_porter(tmp_path):
    config = tmp_path / "porter.toml"
    config.write_text(f"[connections]\nper_source_max = {PER_SOURCE}\n\n"
                      "[stomp]\nhandshake_timeout_ms = 1500\n")
    yield from run_porter(tmp_path, ["--config", str(config)])


def listener_ports(server) -> dict[str, int]:
    return {"kafka": server.port, "amqp": server.amqp_port, "mqtt": server.mqtt_port,
            "stomp": server.stomp_port, "http": server.http_port,
            "rocketmq": server.rocketmq_port}


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server ends the connection (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1 << 16) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_one_address_cannot_take_every_connection(limited_porter):
    # The fixture's readiness probes are closed by now; wait until the counts are back to zero.
    time.sleep(0.5)
    for name, port in listener_ports(limited_porter).items():
        held = [socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
                for _ in range(PER_SOURCE)]
        extra = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        assert closed_by_server(extra, 5), f"{name}: a fifth connection from one address stayed open"
        assert not closed_by_server(held[0], 0.2), f"{name}: the first four were closed"
        for sock in held:
            sock.close()
        extra.close()
    time.sleep(0.5)  # the closes reach the server
    # The address has its places back: a real client connects.
    connection = pika.BlockingConnection(connection_parameters(limited_porter.amqp_url))
    connection.channel().queue_declare("after-the-flood")
    connection.close()
    samples = metric_samples(limited_porter)
    refused = sum(v for (name, labels), v in samples.items()
                  if name == "porter_connections_closed_total" and ("reason", "limit") in labels)
    # Every listener but HTTP's own (whose connections /metrics does not list) counted one.
    assert refused >= len(listener_ports(limited_porter)) - 1, samples


def drip(port: int, data: bytes, stop: threading.Event, closed: dict, name: str) -> None:
    """Sends `data` one byte a second until the server closes the connection or `stop`."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.settimeout(1.0)
        started = time.monotonic()
        for byte in data:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1 << 16) == b"":
                    closed[name] = time.monotonic() - started
                    return
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed[name] = time.monotonic() - started
                return


def test_a_slowloris_is_cut_at_the_handshake_deadline(limited_porter):
    handshakes = {
        "amqp": (limited_porter.amqp_port, b"AMQP\x00\x00\x09\x01" + b"\x01" * 64),
        "mqtt": (limited_porter.mqtt_port, b"\x10\x7f" + b"\x00" * 126),
        "stomp": (limited_porter.stomp_port, b"CONNECT\naccept-version:1.2\nhost:/\n" + b"x" * 64),
    }
    stop, closed = threading.Event(), {}
    threads = [threading.Thread(target=drip, args=(port, data, stop, closed, name), daemon=True)
               for name, (port, data) in handshakes.items()]
    for thread in threads:
        thread.start()
    try:
        # Meanwhile the broker serves others (AMQP answers after its protocol header alone, so
        # the dripping AMQP client is past it: its deadline is for the whole handshake).
        connection = pika.BlockingConnection(connection_parameters(limited_porter.amqp_url))
        connection.close()
        for thread in threads:
            thread.join(timeout=20)
    finally:
        stop.set()
    assert set(closed) == set(handshakes), f"not closed: {set(handshakes) - set(closed)}"
    assert closed["stomp"] < 5, closed
    assert all(seconds < 15 for seconds in closed.values()), closed
    log = limited_porter.log_tail(300)
    assert log.count("handshake") >= 3, log
