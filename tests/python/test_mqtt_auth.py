"""MQTT logins (issue 18 §2) as paho-mqtt makes them, against the broker's users: the right
password connects, a wrong one gets the CONNACK code each version defines for it (3.1.1: 4 "bad
user name or password"; 5.0: 0x86), a user without a permission in the MQTT virtual host gets
"not authorized" (5; 0x87), and a client without a user name is let in from loopback by
default and refused everywhere with `[mqtt] anonymous = "none"`. Over WebSocket (`/mqtt`) the
same users log in."""

from __future__ import annotations

import pytest
import requests

from conftest import run_porter
from mqtt_helpers import V311, V5, Client

# paho-mqtt 2 reports a 3.1.1 CONNACK return code as the MQTT 5 reason code it maps to:
# 4 "bad user name or password" as 0x86, 5 "not authorized" as 0x87 (any other code maps
# elsewhere, so these still tell the codes apart).
BAD_USER_NAME_OR_PASSWORD = {V311: 0x86, V5: 0x86}
NOT_AUTHORIZED = {V311: 0x87, V5: 0x87}


def add_user(server, name: str, password: str, permission: bool = True) -> None:
    api = server.http_url + "/api"
    auth = ("guest", "guest")
    requests.put(f"{api}/users/{name}", json={"password": password, "tags": ""}, auth=auth,
                 timeout=10).raise_for_status()
    if permission:
        requests.put(f"{api}/permissions/%2F/{name}",
                     json={"configure": ".*", "write": ".*", "read": ".*"}, auth=auth,
                     timeout=10).raise_for_status()


def code(client: Client) -> int:
    return client.reason_code.value


@pytest.mark.parametrize("version", [V311, V5])
def test_users_log_in_and_wrong_passwords_get_the_versions_code(porter, version):
    add_user(porter, "sensor", "s3nsor")
    ok = Client(porter.mqtt_port, version=version, credentials=("sensor", "s3nsor"))
    assert code(ok) == 0
    ok.subscribe("plant/+/temp")
    ok.publish("plant/7/temp", b"21.5")
    assert ok.next().payload == b"21.5"
    ok.client.disconnect()

    wrong = Client(porter.mqtt_port, version=version, credentials=("sensor", "guess"))
    assert code(wrong) == BAD_USER_NAME_OR_PASSWORD[version]
    unknown = Client(porter.mqtt_port, version=version, credentials=("nobody", "x"))
    assert code(unknown) == BAD_USER_NAME_OR_PASSWORD[version]

    add_user(porter, "outsider", "0utside", permission=False)
    refused = Client(porter.mqtt_port, version=version, credentials=("outsider", "0utside"))
    assert code(refused) == NOT_AUTHORIZED[version]
    log = porter.log_tail(200)
    assert "MQTT authentication failed" in log and "guess" not in log
    assert "no permission in the MQTT virtual host" in log


def test_anonymous_clients_come_in_from_loopback_by_default(porter):
    anonymous = Client(porter.mqtt_port, version=V5)
    assert code(anonymous) == 0
    connections = requests.get(porter.http_url + "/api/connections", auth=("guest", "guest"),
                               timeout=10).json()
    assert any(c["protocol"] == "MQTT" and c["user"] == "anonymous" for c in connections), connections


@pytest.fixture
def closed_porter(tmp_path):
    config = tmp_path / "porter.toml"
    config.write_text('[mqtt]\nanonymous = "none"\n')
    yield from run_porter(tmp_path, ["--config", str(config)])


@pytest.mark.parametrize("version", [V311, V5])
def test_anonymous_none_makes_every_client_log_in(closed_porter, version):
    anonymous = Client(closed_porter.mqtt_port, version=version)
    assert code(anonymous) == NOT_AUTHORIZED[version]
    guest = Client(closed_porter.mqtt_port, version=version, credentials=("guest", "guest"))
    assert code(guest) == 0


def test_websocket_clients_log_in_as_the_same_users(closed_porter):
    client = Client(closed_porter.http_port, version=V311, transport="websockets",
                    credentials=("guest", "wrong"))
    assert code(client) == BAD_USER_NAME_OR_PASSWORD[V311]
    client = Client(closed_porter.http_port, version=V311, transport="websockets",
                    credentials=("guest", "guest"))
    assert code(client) == 0
