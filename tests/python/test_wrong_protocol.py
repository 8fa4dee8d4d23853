"""A client pointed at the wrong port (issue 12, item 7): real Kafka, AMQP, HTTP and TLS clients on
each other's listeners fail at once, and the broker's log says what happened ("a Kafka client
connected to the AMQP listener at ...") instead of "frame of 1095586128 bytes exceeds the limit".
The AMQP listener answers anything that is not its protocol header with its header, as the AMQP
0-9-1 spec asks; the Kafka listener answers HTTP with a 400 page naming the port."""

from __future__ import annotations

import socket
import ssl
import struct
import time
import urllib.error
import urllib.request

import pika
import pika.exceptions
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# Hang guards, not performance bounds.
SOCKET_S_MAX = 10.0
LOG_WAIT_S_MAX = 10.0

AMQP_0_9_1_HEADER = b"AMQP\x00\x00\x09\x01"


def wait_for_log_line(porter, *parts: str) -> str:
    """The first log line containing every one of `parts`; fails with the log tail if none comes."""
    deadline = time.monotonic() + LOG_WAIT_S_MAX
    while True:
        for line in porter.log_path.read_text(errors="replace").splitlines():
            if all(part in line for part in parts):
                return line
        if time.monotonic() > deadline:
            pytest.fail(f"no log line with {parts!r}\n{porter.log_tail()}")
        time.sleep(0.05)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_kafka_client_on_the_amqp_port_is_closed_and_named(porter):
    admin = AdminClient(
        {
            "bootstrap.servers": f"127.0.0.1:{porter.amqp_port}",
            "socket.timeout.ms": 5000,
            "reconnect.backoff.max.ms": 1000,
        }
    )
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    line = wait_for_log_line(
        porter, f"a Kafka client connected to the AMQP listener at 127.0.0.1:{porter.amqp_port}"
    )
    assert "Porter serves Kafka on port 9092 by default" in line
    assert porter.process.poll() is None


def test_a_kafka_request_on_the_amqp_port_gets_the_amqp_header_back(porter):
    client_id = b"raw"
    header = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with socket.create_connection(("127.0.0.1", porter.amqp_port), timeout=SOCKET_S_MAX) as sock:
        sock.sendall(struct.pack(">i", len(header)) + header)
        assert read_until_closed(sock) == AMQP_0_9_1_HEADER


def test_an_amqp_1_0_client_gets_the_0_9_1_header_and_the_log_says_why(porter):
    with socket.create_connection(("127.0.0.1", porter.amqp_port), timeout=SOCKET_S_MAX) as sock:
        sock.sendall(b"AMQP\x03\x01\x00\x00")
        assert read_until_closed(sock) == AMQP_0_9_1_HEADER
    wait_for_log_line(porter, "an AMQP 1.0 client connected to the AMQP listener", "does not support AMQP 1.0")


def test_pika_on_the_kafka_port_fails_and_is_named(porter):
    parameters = pika.ConnectionParameters(
        host="127.0.0.1",
        port=porter.port,
        connection_attempts=1,
        socket_timeout=SOCKET_S_MAX,
        stack_timeout=SOCKET_S_MAX,
    )
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(parameters)
    line = wait_for_log_line(
        porter, f"an AMQP 0-9-1 client connected to the Kafka listener at {porter.bootstrap}"
    )
    assert "Porter serves AMQP 0-9-1 on port 5672 by default" in line
    assert "1095586128" not in line


def test_http_on_the_kafka_port_gets_a_400_saying_which_port_this_is(porter):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{porter.bootstrap}/", timeout=SOCKET_S_MAX)
    assert refused.value.code == 400
    assert "This is Porter's Kafka port" in refused.value.read().decode()
    wait_for_log_line(porter, f"an HTTP client connected to the Kafka listener at {porter.bootstrap}")


def test_tls_on_the_kafka_port_fails_and_the_log_says_tls_is_off(porter):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", porter.port), timeout=SOCKET_S_MAX) as sock:
        with pytest.raises((ssl.SSLError, ConnectionResetError, ConnectionAbortedError)):
            context.wrap_socket(sock, server_hostname="localhost")
    wait_for_log_line(
        porter,
        f"a TLS client connected to the Kafka listener at {porter.bootstrap}",
        "TLS is not enabled on this listener",
    )
