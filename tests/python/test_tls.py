"""TLS (issue 18 §4) with each client's own TLS settings: AMQPS with pika, MQTTS with
paho-mqtt, STOMP with stomp.py, HTTPS with requests, RocketMQ's gRPC with grpc, the Kafka
listener as SASL_SSL with confluent-kafka, all serving one
certificate made here by openssl for a private CA. TLS 1.1 is refused (`openssl s_client`), a
SIGHUP swaps the certificate for new connections while an open one keeps working, and with
`client_ca_file` a client without a certificate is refused (mutual TLS)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pika
import pytest
from confluent_kafka import Consumer, Producer
from paho.mqtt.enums import CallbackAPIVersion

from conftest import free_loopback_port, run_porter

WAIT_S = 15


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path) -> Path:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Porter Test CA", "-days", "2",
            cwd=directory)
    return directory / "ca.pem"


def make_cert(directory: Path, name: str, common_name: str,
              subject: str | None = None) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 signed by the directory's CA, its subject
    `/CN=common_name` unless `subject` (OpenSSL's `/O=.../CN=...` form) says otherwise."""
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject or f"/CN={common_name}",
            cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext",
            cwd=directory)
    return directory / f"{name}.pem", directory / f"{name}.key"


@pytest.fixture
def tls_porter(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs)
    cert, key = make_cert(certs, "server", "porter-one")
    amqps, mqtts, stomps = free_loopback_port(), free_loopback_port(), free_loopback_port()
    config = tmp_path / "porter.toml"
    config.write_text(f"""
[kafka]
sasl_mechanisms = ["SCRAM-SHA-256", "PLAIN"]

[tls]
cert_file = "{certs / 'live.pem'}"
key_file = "{certs / 'live.key'}"
amqp_listen = "127.0.0.1:{amqps}"
mqtt_listen = "127.0.0.1:{mqtts}"
stomp_listen = "127.0.0.1:{stomps}"
kafka = true
rocketmq = true
http = true
""")
    (certs / "live.pem").write_bytes(cert.read_bytes())
    (certs / "live.key").write_bytes(key.read_bytes())
    for server in run_porter(tmp_path, ["--config", str(config)]):
        server.ca, server.certs = ca, certs
        server.amqps_port, server.mqtts_port, server.stomps_port = amqps, mqtts, stomps
        yield server


def client_context(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    return context


def peer_common_name(port: int, ca: Path) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as raw:
        with client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
            subject = dict(pair[0] for pair in tls.getpeercert()["subject"])
            return subject["commonName"]


def amqps(server) -> pika.BlockingConnection:
    options = pika.SSLOptions(client_context(server.ca), "localhost")
    params = pika.ConnectionParameters("127.0.0.1", server.amqps_port, ssl_options=options,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    return pika.BlockingConnection(params)


def test_pika_speaks_amqps(tls_porter):
    connection = amqps(tls_porter)
    channel = connection.channel()
    channel.queue_declare("over-tls")
    channel.confirm_delivery()
    channel.basic_publish("", "over-tls", b"secret order")
    _, _, body = channel.basic_get("over-tls", auto_ack=True)
    assert body == b"secret order"
    connection.close()


def test_paho_speaks_mqtts(tls_porter):
    got, connected = [], []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(tls_porter.ca))
    client.username_pw_set("guest", "guest")
    client.on_connect = lambda c, u, f, rc, p: connected.append(rc)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("localhost", tls_porter.mqtts_port)
    client.loop_start()
    deadline = time.monotonic() + WAIT_S
    while not connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connected and connected[0] == 0
    client.subscribe("plant/temp", qos=1)
    time.sleep(0.3)
    client.publish("plant/temp", b"21.5", qos=1).wait_for_publish(WAIT_S)
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    assert got == [b"21.5"]


@pytest.mark.parametrize("security", ["SASL_SSL"])
def test_confluent_kafka_speaks_sasl_ssl(tls_porter, security):
    config = {"bootstrap.servers": tls_porter.bootstrap, "security.protocol": security,
              "ssl.ca.location": str(tls_porter.ca), "sasl.mechanism": "SCRAM-SHA-256",
              "sasl.username": "guest", "sasl.password": "guest"}
    producer = Producer(config)
    for i in range(3):
        producer.produce("tls-topic", f"r{i}".encode())
    assert producer.flush(WAIT_S) == 0
    consumer = Consumer({**config, "group.id": "tls", "auto.offset.reset": "earliest"})
    consumer.subscribe(["tls-topic"])
    got = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < 3 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got.append(message.value())
    consumer.close()
    assert got == [b"r0", b"r1", b"r2"]
    # A client speaking plaintext to the TLS listener gets nothing.
    plain = Producer({"bootstrap.servers": tls_porter.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                      "sasl.mechanism": "PLAIN", "sasl.username": "guest", "sasl.password": "guest"})
    with pytest.raises(Exception):
        plain.list_topics(timeout=3)


def test_stomp_https_and_rocketmq_grpc_speak_tls(tls_porter):
    import grpc
    import requests
    import stomp
    from rocketmq.grpc_protocol import service_pb2, service_pb2_grpc

    # STOMP over TLS (stomp.py's own TLS settings), logging in as over plain TCP.
    conn = stomp.Connection12([("localhost", tls_porter.stomps_port)])
    conn.set_ssl(for_hosts=[("localhost", tls_porter.stomps_port)], ca_certs=str(tls_porter.ca))
    conn.connect("guest", "guest", wait=True)
    assert conn.is_connected()
    conn.disconnect()

    # HTTPS: the management API and health checks.
    https = f"https://localhost:{tls_porter.http_port}"
    assert requests.get(f"{https}/healthz", verify=str(tls_porter.ca), timeout=WAIT_S).ok
    overview = requests.get(f"{https}/api/overview", auth=("guest", "guest"),
                            verify=str(tls_porter.ca), timeout=WAIT_S)
    assert overview.json()["product_name"] == "Porter"

    # RocketMQ's gRPC service over TLS, with grpc's own TLS credentials.
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_porter.ca.read_bytes())
    with grpc.secure_channel(f"localhost:{tls_porter.rocketmq_port}", credentials) as channel:
        stub = service_pb2_grpc.MessagingServiceStub(channel)
        request = service_pb2.QueryRouteRequest()
        request.topic.name = "tls-route"
        route = stub.QueryRoute(request, timeout=WAIT_S)
        assert route.status.code in (20000, 40402)  # OK, or TOPIC_NOT_FOUND: either is an answer


def test_tls_1_1_is_refused_and_1_2_accepted(tls_porter):
    def s_client(*version: str) -> int:
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_porter.amqps_port}", *version,
             "-CAfile", str(tls_porter.ca), "-cipher", "DEFAULT@SECLEVEL=0"],
            input=b"", capture_output=True, timeout=30).returncode
    assert s_client("-tls1_1") != 0
    assert s_client("-tls1_2") == 0
    assert s_client("-tls1_3") == 0


def test_sighup_swaps_the_certificate_for_new_connections(tls_porter):
    assert peer_common_name(tls_porter.amqps_port, tls_porter.ca) == "porter-one"
    open_connection = amqps(tls_porter)
    cert, key = make_cert(tls_porter.certs, "next", "porter-two")
    (tls_porter.certs / "live.pem").write_bytes(cert.read_bytes())
    (tls_porter.certs / "live.key").write_bytes(key.read_bytes())
    os.kill(tls_porter.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while "TLS certificate reloaded" not in tls_porter.log_tail(50):
        assert time.monotonic() < deadline, "no reload logged"
        time.sleep(0.05)
    assert peer_common_name(tls_porter.amqps_port, tls_porter.ca) == "porter-two"
    assert peer_common_name(tls_porter.mqtts_port, tls_porter.ca) == "porter-two"
    # The connection opened before the reload still works.
    open_connection.channel().queue_declare("still-open")
    open_connection.close()

    # A broken file is refused and the last good certificate stays.
    (tls_porter.certs / "live.pem").write_text("not a certificate")
    os.kill(tls_porter.process.pid, signal.SIGHUP)
    while "TLS reload failed" not in tls_porter.log_tail(50):
        assert time.monotonic() < deadline, "no failed reload logged"
        time.sleep(0.05)
    assert peer_common_name(tls_porter.amqps_port, tls_porter.ca) == "porter-two"


def test_client_certificates_are_required_with_a_client_ca(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs)
    cert, key = make_cert(certs, "server", "porter")
    client_cert, client_key = make_cert(certs, "client", "billing-service")
    amqps_port = free_loopback_port()
    config = tmp_path / "porter.toml"
    config.write_text(f"""
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{ca}"
amqp_listen = "127.0.0.1:{amqps_port}"
""")
    for _server in run_porter(tmp_path, ["--config", str(config)]):
        with socket.create_connection(("127.0.0.1", amqps_port), timeout=WAIT_S) as raw:
            # TLS 1.3 reports a missing client certificate at the first read.
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"AMQP\x00\x00\x09\x01")
                    tls.recv(16)
        context = client_context(ca)
        context.load_cert_chain(str(client_cert), str(client_key))
        with socket.create_connection(("127.0.0.1", amqps_port), timeout=WAIT_S) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"AMQP\x00\x00\x09\x01")
                assert tls.recv(16)  # connection.start


def test_the_security_guide_tls_config_serves(tmp_path):
    """docs/security.md's [tls] block, marked "not run" for test_docs (it names certificate
    files), served here with a certificate made for it and free ports."""
    from test_docs import REPO_ROOT, fenced_blocks
    blocks = [b for b in fenced_blocks(REPO_ROOT / "docs" / "security.md")
              if b.language == "toml" and "[tls]" in b.code
              and "cert_login_from" not in b.code and "principal_mapping_rules" not in b.code]
    assert len(blocks) == 1
    certs = tmp_path / "certs"
    certs.mkdir()
    make_ca(certs)
    cert, key = make_cert(certs, "server", "porter")
    amqps_port, mqtts_port = free_loopback_port(), free_loopback_port()
    code = (blocks[0].code.replace("/tmp/porter-tls/server.pem", str(cert))
            .replace("/tmp/porter-tls/server.key", str(key))
            .replace("0.0.0.0:5671", f"127.0.0.1:{amqps_port}")
            .replace("0.0.0.0:8883", f"127.0.0.1:{mqtts_port}")
            .replace("0.0.0.0:61614", f"127.0.0.1:{free_loopback_port()}"))
    config = tmp_path / "porter.toml"
    config.write_text(code)
    for _server in run_porter(tmp_path, ["--config", str(config)]):
        assert peer_common_name(amqps_port, certs / "ca.pem") == "porter"
        assert peer_common_name(mqtts_port, certs / "ca.pem") == "porter"
