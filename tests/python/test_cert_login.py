"""Certificate logins (issue 18 §2 and §4): with `client_ca_file`, a verified client
certificate's subject is the user, as RabbitMQ's `rabbitmq_auth_mechanism_ssl` and
`ssl_cert_login` and Kafka's SSL principal have it. pika logs in with EXTERNAL, paho-mqtt and
stomp.py connect without a user name, and a confluent-kafka client on the SSL listener is its
certificate's user. A certificate naming no user is refused; a password login still works.
Kafka's principal mapping rules rewrite a subject into a user on every protocol."""

from __future__ import annotations

import ssl
import subprocess
import time
import uuid

import paho.mqtt.client as mqtt
import pika
import pytest
import requests
import stomp
from confluent_kafka import Producer
from paho.mqtt.enums import CallbackAPIVersion

from conftest import PORTER_BIN, free_loopback_port, run_porter
from test_tls import client_context, make_ca, make_cert

WAIT_S = 15
ADMIN = ("guest", "guest")


@pytest.fixture
def mtls_porter(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs)
    cert, key = make_cert(certs, "server", "porter")
    amqps, mqtts, stomps = free_loopback_port(), free_loopback_port(), free_loopback_port()
    # docs/security.md's certificate-login block, with this test's files and ports.
    from test_docs import REPO_ROOT, fenced_blocks
    [block] = [b for b in fenced_blocks(REPO_ROOT / "docs" / "security.md")
               if b.language == "toml" and "cert_login_from" in b.code]
    code = (block.code.replace("/etc/porter/server.pem", str(cert))
            .replace("/etc/porter/server.key", str(key))
            .replace("/etc/porter/clients-ca.pem", str(ca))
            .replace("0.0.0.0:5671", f"127.0.0.1:{amqps}"))
    config = tmp_path / "porter.toml"
    config.write_text(code + f"""mqtt_listen = "127.0.0.1:{mqtts}"
stomp_listen = "127.0.0.1:{stomps}"
kafka = true
""")
    for server in run_porter(tmp_path, ["--config", str(config)]):
        server.ca = ca
        server.amqps_port, server.mqtts_port, server.stomps_port = amqps, mqtts, stomps
        server.alice = make_cert(certs, "alice", "alice")
        server.mallory = make_cert(certs, "mallory", "mallory")
        for path, body in (("/users/alice", {"password": "not-used-here", "tags": ""}),
                           ("/permissions/%2F/alice", {"configure": ".*", "write": ".*", "read": ".*"})):
            requests.put(server.http_url + "/api" + path, json=body, auth=ADMIN,
                         timeout=WAIT_S).raise_for_status()
        yield server


def amqps_as(server, cert_and_key, credentials) -> pika.BlockingConnection:
    context = client_context(server.ca)
    context.load_cert_chain(*map(str, cert_and_key))
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="localhost", port=server.amqps_port, credentials=credentials,
        ssl_options=pika.SSLOptions(context, "localhost")))


def connection_users(server, protocol: str) -> list[str]:
    listed = requests.get(server.http_url + "/api/connections", auth=ADMIN, timeout=WAIT_S).json()
    return [c["user"] for c in listed if c["protocol"].lower().startswith(protocol)]


def test_pika_logs_in_with_external(mtls_porter):
    connection = amqps_as(mtls_porter, mtls_porter.alice, pika.credentials.ExternalCredentials())
    channel = connection.channel()
    channel.queue_declare("alice-inbox")
    channel.basic_publish("", "alice-inbox", b"signed in by certificate")
    assert channel.basic_get("alice-inbox", auto_ack=True)[2] == b"signed in by certificate"
    assert "alice" in connection_users(mtls_porter, "amqp")
    connection.close()
    # A certificate from the same CA naming no user: 403, RabbitMQ's text.
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as refused:
        amqps_as(mtls_porter, mtls_porter.mallory, pika.credentials.ExternalCredentials())
    assert "EXTERNAL" in str(refused.value)
    refusal = [line for line in mtls_porter.log_tail(50).splitlines() if "login refused" in line]
    assert refusal and "mechanism=EXTERNAL" in refusal[-1] and "mallory" in refusal[-1]
    # A password still works over the same listener (PLAIN, with a certificate presented).
    guest = amqps_as(mtls_porter, mtls_porter.mallory, pika.PlainCredentials("guest", "guest"))
    guest.close()


def mqtt_connect(server, cert_and_key, websocket=False, while_connected=None,
                 origin=None) -> int:
    """CONNACK's code for a paho client presenting `cert_and_key` without a user name, over
    MQTTS or (`websocket`) WSS, as a page of `origin` would; `while_connected()` runs before it
    disconnects."""
    codes = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                         client_id=f"cert-{uuid.uuid4().hex[:6]}",
                         transport="websockets" if websocket else "tcp")
    if websocket:
        client.ws_set_options(path="/mqtt", headers={"Origin": origin} if origin else None)
    client.tls_set(ca_certs=str(server.ca), certfile=str(cert_and_key[0]),
                   keyfile=str(cert_and_key[1]))
    client.on_connect = lambda c, u, f, rc, p: codes.append(rc.value)
    client.connect("localhost", server.http_port if websocket else server.mqtts_port)
    client.loop_start()
    deadline = time.monotonic() + WAIT_S
    while not codes and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert codes, "no CONNACK"
        if while_connected and codes[0] == 0:
            while_connected()
    finally:
        client.loop_stop()
        client.disconnect()
    return codes[0]


def test_mqtt_and_stomp_without_a_user_name_are_the_certificate_s_user(mtls_porter):
    assert mqtt_connect(mtls_porter, mtls_porter.alice) == 0
    # paho reports MQTT 3.1.1's return code 4 (bad user name or password) as reason code 134.
    assert mqtt_connect(mtls_porter, mtls_porter.mallory) == 134

    conn = stomp.Connection12([("localhost", mtls_porter.stomps_port)], auto_content_length=True)
    conn.set_ssl([("localhost", mtls_porter.stomps_port)], key_file=str(mtls_porter.alice[1]),
                 cert_file=str(mtls_porter.alice[0]), ca_certs=str(mtls_porter.ca),
                 ssl_version=ssl.PROTOCOL_TLS_CLIENT)
    conn.connect(wait=True)
    assert "alice" in connection_users(mtls_porter, "stomp")
    conn.disconnect()


def test_a_kafka_ssl_client_is_its_certificate_s_principal(mtls_porter):
    producer = Producer({
        "bootstrap.servers": mtls_porter.bootstrap, "security.protocol": "SSL",
        "ssl.ca.location": str(mtls_porter.ca),
        "ssl.certificate.location": str(mtls_porter.alice[0]),
        "ssl.key.location": str(mtls_porter.alice[1]),
    })
    producer.produce("cert-topic", b"from alice")
    assert producer.flush(WAIT_S) == 0
    assert "alice" in connection_users(mtls_porter, "kafka")


def test_principal_mapping_rules_rewrite_the_subject_into_a_user(tmp_path):
    """Kafka's ssl.principal.mapping.rules, served from docs/security.md's block: a
    `CN=Billing,OU=services,O=Example` certificate logs in as `billing` over Kafka SSL and
    MQTTS; a subject no rule rewrites falls to DEFAULT, names no user, and is refused."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs)
    cert, key = make_cert(certs, "server", "porter")
    mqtts = free_loopback_port()
    from test_docs import REPO_ROOT, fenced_blocks
    [block] = [b for b in fenced_blocks(REPO_ROOT / "docs" / "security.md")
               if b.language == "toml" and "principal_mapping_rules" in b.code]
    config = tmp_path / "porter.toml"
    config.write_text(block.code.replace("/etc/porter/server.pem", str(cert))
                      .replace("/etc/porter/server.key", str(key))
                      .replace("/etc/porter/clients-ca.pem", str(ca))
                      + f'mqtt_listen = "127.0.0.1:{mqtts}"\n')
    billing = make_cert(certs, "billing", "", subject="/O=Example/OU=services/CN=Billing")
    visitor = make_cert(certs, "visitor", "", subject="/O=Example/OU=guests/CN=visitor")
    for server in run_porter(tmp_path, ["--config", str(config)]):
        server.ca, server.mqtts_port = ca, mqtts
        for path, body in (("/users/billing", {"password": "not-used-here", "tags": ""}),
                           ("/permissions/%2F/billing", {"configure": ".*", "write": ".*", "read": ".*"})):
            requests.put(server.http_url + "/api" + path, json=body, auth=ADMIN,
                         timeout=WAIT_S).raise_for_status()
        producer = Producer({
            "bootstrap.servers": server.bootstrap, "security.protocol": "SSL",
            "ssl.ca.location": str(ca), "ssl.certificate.location": str(billing[0]),
            "ssl.key.location": str(billing[1]),
        })
        producer.produce("invoices", b"from billing")
        assert producer.flush(WAIT_S) == 0
        assert "billing" in connection_users(server, "kafka")
        assert mqtt_connect(server, billing) == 0
        # DEFAULT keeps `CN=visitor,OU=guests,O=Example`, which is no user.
        assert mqtt_connect(server, visitor) == 134
        assert "CN=visitor,OU=guests,O=Example" in server.log_tail(50)

    # A rule that does not parse stops the broker at start, naming the setting.
    config.write_text(config.read_text().replace("$/$1/L, DEFAULT", "$/$1"))
    started = subprocess.run([str(PORTER_BIN), "serve", "--config", str(config),
                              "--data-dir", str(tmp_path / "bad")],
                             capture_output=True, text=True, timeout=WAIT_S)
    assert started.returncode != 0
    assert "[tls] principal_mapping_rules: invalid rule" in started.stderr


def test_https_and_wss_log_in_with_the_certificate(tmp_path):
    """With `http = true` and mutual TLS, an API request without credentials acts as its
    certificate's user (with that user's tags), and MQTT over WSS connects without a user
    name as it; basic auth over the same connection still wins."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs)
    cert, key = make_cert(certs, "server", "porter")
    config = tmp_path / "porter.toml"
    config.write_text(f"""[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{ca}"
cert_login_from = "common_name"
http = true
""")
    alice = make_cert(certs, "alice", "alice")
    mallory = make_cert(certs, "mallory", "mallory")
    for server in run_porter(tmp_path, ["--config", str(config)]):
        https = f"https://localhost:{server.http_port}"

        def api(method, path, cert_and_key, **kwargs):
            return requests.request(method, https + path, cert=tuple(map(str, cert_and_key)),
                                    verify=str(ca), timeout=WAIT_S, **kwargs)

        for path, body in (("/users/alice", {"password": "not-used-here", "tags": ""}),
                           ("/permissions/%2F/alice", {"configure": ".*", "write": ".*", "read": ".*"})):
            api("PUT", "/api" + path, alice, json=body, auth=ADMIN).raise_for_status()
        assert api("GET", "/api/whoami", alice).json()["name"] == "alice"
        # The certificate's user has its own tags: none yet, so no management API.
        assert api("GET", "/api/overview", alice).status_code == 401
        api("PUT", "/api/users/alice", alice, json={"tags": "management"}, auth=ADMIN).raise_for_status()
        assert api("GET", "/api/overview", alice).ok
        assert api("GET", "/api/whoami", mallory).status_code == 401

        server.ca = ca

        def listed_as_alice():
            listed = api("GET", "/api/connections", alice, auth=ADMIN).json()
            assert ("alice", "Web MQTT") in [(c["user"], c["protocol"]) for c in listed]

        assert mqtt_connect(server, alice, websocket=True, while_connected=listed_as_alice) == 0

        # Another origin's page: the browser would present alice's certificate on its own, so
        # the WebSocket gets no certificate login (here: MQTT's loopback `anonymous`; a local
        # page, since a page from the internet through a loopback browser is refused outright)
        # and the API refuses changes.
        def not_alice():
            listed = api("GET", "/api/connections", alice, auth=ADMIN).json()
            assert ("anonymous", "Web MQTT") in [(c["user"], c["protocol"]) for c in listed]

        assert mqtt_connect(server, alice, websocket=True, while_connected=not_alice,
                            origin="https://localhost:3000") == 0
        with pytest.raises(mqtt.WebsocketConnectionError):
            mqtt_connect(server, alice, websocket=True, origin="https://evil.example")
        evil = {"Origin": "https://evil.example"}
        refused = api("PUT", "/api/queues/%2F/planted", alice, json={}, auth=ADMIN, headers=evil)
        assert refused.status_code == 403 and "cross-origin" in refused.json()["reason"]
        assert api("GET", "/api/whoami", alice, headers=evil).json()["name"] == "alice"
        own_page = {"Origin": https}
        assert api("PUT", "/api/queues/%2F/planted", alice, json={}, auth=ADMIN,
                   headers=own_page).status_code == 201
