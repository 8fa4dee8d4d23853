"""MQTT over WebSocket (the HTTP listener's `/mqtt`) with Eclipse Paho (paho-mqtt 2.x,
transport="websockets"), MQTT 3.1.1 and 5.0: messages cross between WebSocket and TCP clients
both ways at every QoS, a retained message and a last will reach the other transport, and a
message larger than a WebSocket frame arrives whole (one MQTT packet spanning frames)."""

from __future__ import annotations

import pytest

from mqtt_helpers import V5, V311, Client

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


def ws_client(porter, client_id: str, version, **kwargs) -> Client:
    return Client(porter.http_port, client_id, version, transport="websockets", path="/mqtt", **kwargs)


@VERSIONS
def test_websocket_and_tcp_clients_exchange_messages_at_every_qos(porter, version):
    ws_sub = ws_client(porter, "ws-sub", version)
    tcp_sub = Client(porter.mqtt_port, "tcp-sub", version)
    ws_sub.subscribe("devices/+/state", qos=2)
    tcp_sub.subscribe("devices/+/state", qos=2)
    ws_pub = ws_client(porter, "ws-pub", version)
    tcp_pub = Client(porter.mqtt_port, "tcp-pub", version)
    for qos in (0, 1, 2):
        ws_pub.publish("devices/ws/state", f"from-ws-{qos}".encode(), qos=qos)
        tcp_pub.publish("devices/tcp/state", f"from-tcp-{qos}".encode(), qos=qos)
    for sub in (ws_sub, tcp_sub):
        got = sorted((m.topic, m.payload, m.qos) for m in sub.drain(6))
        assert got == sorted(
            [("devices/ws/state", f"from-ws-{q}".encode(), q) for q in (0, 1, 2)]
            + [("devices/tcp/state", f"from-tcp-{q}".encode(), q) for q in (0, 1, 2)]
        )
    for c in (ws_sub, tcp_sub, ws_pub, tcp_pub):
        c.close()


@VERSIONS
def test_a_retained_message_and_a_will_cross_transports(porter, version):
    tcp = Client(porter.mqtt_port, "tcp-watch", version)
    tcp.subscribe("presence/#", qos=1)
    ws = ws_client(porter, "ws-phone", version, will=("presence/phone", b"offline", 1, True))
    ws.publish("presence/phone", b"online", qos=1, retain=True)
    assert (tcp.next().payload) == b"online"
    ws.drop()  # the socket closes without DISCONNECT: the will is published
    will = tcp.next()
    assert (will.topic, will.payload) == ("presence/phone", b"offline")
    later = ws_client(porter, "ws-later", version)
    later.subscribe("presence/+", qos=1)
    retained = later.next()
    assert (retained.topic, retained.payload, retained.retain) == ("presence/phone", b"offline", True)
    for c in (tcp, later):
        c.close()


def test_a_message_larger_than_a_websocket_frame_arrives_whole(porter):
    # The default frame limit is 256 KiB: the broker sends this 600 KB packet as several frames.
    payload = bytes(range(256)) * 2400
    ws = ws_client(porter, "ws-big", V5)
    ws.subscribe("big/blob", qos=1)
    tcp = Client(porter.mqtt_port, "tcp-big", V5)
    tcp.publish("big/blob", payload, qos=1)
    got = ws.next()
    assert len(got.payload) == len(payload) and got.payload == payload
    for c in (ws, tcp):
        c.close()


def upgrade_status(porter, path: str, origin: str | None) -> int:
    """The status a browser's WebSocket handshake from a page of `origin` gets."""
    import socket
    with socket.create_connection(("127.0.0.1", porter.http_port), timeout=10) as s:
        headers = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{porter.http_port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n")
        if origin:
            headers += f"Origin: {origin}\r\n"
        s.sendall((headers + "\r\n").encode())
        return int(s.recv(1024).split(b" ")[1])


def test_a_page_from_another_site_cannot_reach_the_broker_through_a_local_browser(porter):
    """A browser on the broker's host connects from loopback, where guest and MQTT's anonymous
    are let in; a page from the internet must not get that, so its WebSocket is refused. Local
    pages (a developer's app on another port) and non-browser clients still connect."""
    assert upgrade_status(porter, "/mqtt", "https://evil.example") == 403
    assert upgrade_status(porter, "/ws", "https://evil.example") == 403
    for origin in (None, f"http://127.0.0.1:{porter.http_port}", "http://localhost:3000"):
        assert upgrade_status(porter, "/mqtt", origin) == 101, origin
    assert "another site's page on a loopback client" in porter.log_tail(50)
