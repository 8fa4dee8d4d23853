"""The broker's users, as an operator manages them and clients meet them: made with
rabbitmqadmin or `porter users`, logged in with pika, refused a vhost without permissions,
kept to what their tags allow on the management API, and carried to another broker in the
definitions (their SCRAM credentials, never the password)."""

from __future__ import annotations

import json
import socket

import pika
import pytest
import requests

from amqp_helpers import connection_parameters
from test_cli_management import cli, ok, rows
from test_management import REQUEST_S, admin, rabbitmqadmin  # noqa: F401 (fixture)


def api_as(server, user: str, password: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.http_url + path, auth=(user, password), timeout=REQUEST_S,
                            **kwargs)


def amqp_as(server, user: str, password: str, vhost: str = "/") -> pika.BlockingConnection:
    params = connection_parameters(server.amqp_url, virtual_host=vhost)
    params.credentials = pika.PlainCredentials(user, password)
    return pika.BlockingConnection(params)


def test_rabbitmqadmin_makes_users_and_permissions_that_clients_log_in_with(porter, rabbitmqadmin):
    admin(rabbitmqadmin, porter, "declare", "user", "name=alice", "password=wonderland",
          "tags=monitoring")
    admin(rabbitmqadmin, porter, "declare", "permission", "vhost=/", "user=alice",
          "configure=.*", "write=.*", "read=.*")
    users = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "list", "users"))
    assert {u["name"]: u["tags"] for u in users} == {"guest": ["administrator"],
                                                      "alice": ["monitoring"]}
    assert all("wonderland" not in json.dumps(u) for u in users)
    permissions = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "list", "permissions"))
    assert {"user": "alice", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"} in permissions

    connection = amqp_as(porter, "alice", "wonderland")
    connection.channel().queue_declare("alice-q")
    connection.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_as(porter, "alice", "looking-glass")

    # A user without permissions in the vhost logs in but may not open it (530, as RabbitMQ).
    admin(rabbitmqadmin, porter, "declare", "user", "name=bob", "password=builder", "tags=")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        amqp_as(porter, "bob", "builder")
    assert "(530)" in str(refused.value)
    assert "access to vhost '/' refused for user 'bob'" in str(refused.value)

    admin(rabbitmqadmin, porter, "delete", "user", "name=alice")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_as(porter, "alice", "wonderland")
    assert api_as(porter, "guest", "guest", "GET", "/api/permissions").json() == [
        {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]


def test_tags_decide_what_the_management_api_allows(porter):
    put = lambda name, body: api_as(porter, "guest", "guest", "PUT", f"/api/users/{name}", json=body)
    assert put("watcher", {"password": "w", "tags": "monitoring"}).status_code == 201
    assert put("watcher", {"password": "w", "tags": ["monitoring"]}).status_code == 204
    assert put("client", {"password": "c", "tags": ""}).status_code == 201

    assert api_as(porter, "watcher", "w", "GET", "/api/queues").status_code == 200
    assert api_as(porter, "watcher", "w", "GET", "/api/whoami").json() == {
        "name": "watcher", "tags": ["monitoring"]}
    refused = api_as(porter, "watcher", "w", "PUT", "/api/queues/%2F/q", json={})
    assert refused.status_code == 401 and refused.json()["reason"] == "Not administrator user"
    assert api_as(porter, "watcher", "w", "GET", "/api/users").status_code == 401
    assert api_as(porter, "watcher", "w", "GET", "/api/definitions").status_code == 401
    not_management = api_as(porter, "client", "c", "GET", "/api/overview")
    assert not_management.status_code == 401
    assert not_management.json()["reason"] == "Not management user"
    assert api_as(porter, "client", "c", "GET", "/api/whoami").json() == {"name": "client", "tags": []}
    assert api_as(porter, "watcher", "nope", "GET", "/api/overview").status_code == 401

    # Bad input: unknown tags, a bad regular expression, a RabbitMQ hash, an unknown user.
    assert put("x", {"password": "p", "tags": "wizard"}).status_code == 400
    assert put("x", {"password_hash": "abc", "hashing_algorithm": "rabbit_password_hashing_sha256"}
               ).status_code == 400
    bad_regex = api_as(porter, "guest", "guest", "PUT", "/api/permissions/%2F/watcher",
                       json={"configure": "(", "write": "", "read": ""})
    assert bad_regex.status_code == 400
    assert api_as(porter, "guest", "guest", "PUT", "/api/permissions/%2F/ghost",
                  json={"configure": ".*", "write": ".*", "read": ".*"}).status_code == 404
    assert api_as(porter, "guest", "guest", "DELETE", "/api/users/ghost").status_code == 404


def test_porter_users_and_permissions_commands(porter):
    assert ok(porter, "users", "add", "ops", "0ps", "--tags", "administrator").strip() \
        == "user ops saved"
    ok(porter, "users", "add", "billing", "b1ll")
    table = rows(ok(porter, "users", "list"))
    assert table[0] == ["USER", "TAGS", "PASSWORD", "LOOPBACK-ONLY"]
    assert ["ops", "administrator", "true", "false"] in table
    ok(porter, "permissions", "set", "billing", "--configure", "", "--write", "^billing\\.", "--read", ".*")
    assert rows(ok(porter, "permissions", "list"))[0] == ["USER", "VHOST", "CONFIGURE", "WRITE", "READ"]
    listed = json.loads(ok(porter, "permissions", "list", "--output", "json"))
    assert {"user": "billing", "vhost": "/", "configure": "", "write": "^billing\\.", "read": ".*"} in listed
    connection = amqp_as(porter, "billing", "b1ll")
    connection.close()
    ok(porter, "users", "set-password", "billing", "n3w")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_as(porter, "billing", "b1ll")
    amqp_as(porter, "billing", "n3w").close()
    ok(porter, "users", "set-tags", "ops", "--tags", "monitoring")
    assert api_as(porter, "ops", "0ps", "GET", "/api/whoami").json()["tags"] == ["monitoring"]
    ok(porter, "permissions", "clear", "billing")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        amqp_as(porter, "billing", "n3w")
    ok(porter, "users", "delete", "billing")
    missing = cli(porter, "users", "delete", "billing")
    assert missing.returncode == 4
    wrong = cli(porter, "users", "add", "x", "p", "--tags", "wizard")
    assert wrong.returncode == 3


def test_users_move_to_another_broker_with_their_credentials(porter, tmp_path_factory):
    api_as(porter, "guest", "guest", "PUT", "/api/users/carol",
           json={"password": "c4rol", "tags": "management"}).raise_for_status()
    api_as(porter, "guest", "guest", "PUT", "/api/permissions/%2F/carol",
           json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    api_as(porter, "guest", "guest", "PUT", "/api/user-limits/carol/max-connections",
           json={"value": 5}).raise_for_status()
    api_as(porter, "guest", "guest", "PUT", "/api/vhost-limits/%2F/max-queues",
           json={"value": 500}).raise_for_status()
    definitions = api_as(porter, "guest", "guest", "GET", "/api/definitions").json()
    assert "c4rol" not in json.dumps(definitions)
    # Vhost limits travel as RabbitMQ writes them: a "vhost-limits" parameter.
    assert {"vhost": "/", "component": "vhost-limits", "name": "limits",
            "value": {"max-queues": 500}} in definitions["parameters"]
    carol = next(u for u in definitions["users"] if u["name"] == "carol")
    assert carol["hashing_algorithm"] == "porter_scram_sha" and carol["password_hash"]

    from conftest import run_porter
    second_gen = run_porter(tmp_path_factory.mktemp("second"))
    second = next(second_gen)
    try:
        # A RabbitMQ user comes along without its password, and the answer says so.
        definitions["users"].append({"name": "from-rabbit", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                                     "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "",
                                     "limits": {"max-channels": 50}})
        definitions["parameters"].append({"vhost": "/", "component": "federation-upstream",
                                          "name": "origin", "value": {"uri": "amqp://elsewhere"}})
        answer = api_as(second, "guest", "guest", "POST", "/api/definitions", json=definitions).json()
        assert answer["imported"]["users"] == 3
        assert any("from-rabbit" in s for s in answer["skipped"])
        amqp_as(second, "carol", "c4rol").close()
        assert api_as(second, "carol", "c4rol", "GET", "/api/whoami").json()["tags"] == ["management"]
        users = {u["name"]: u for u in api_as(second, "guest", "guest", "GET", "/api/users").json()}
        assert users["from-rabbit"]["password_hash"] == ""
        # Limits came along; the parameter Porter has no use for is listed, not imported.
        assert any("1 parameters" in s for s in answer["skipped"])
        limits = {l["user"]: l["value"] for l in api_as(second, "guest", "guest", "GET", "/api/user-limits").json()}
        assert limits == {"carol": {"max-connections": 5}, "from-rabbit": {"max-channels": 50}}
        assert api_as(second, "guest", "guest", "GET", "/api/vhost-limits").json() == [
            {"vhost": "/", "value": {"max-queues": 500}}]
    finally:
        next(second_gen, None)


def test_an_address_that_keeps_failing_is_refused_for_a_while(porter):
    """20 failed logins as one user from one address in a minute (here: wrong AMQP passwords)
    and that address's logins as that user are refused without a check, on every protocol,
    until the minute is over; the log says so once instead of at every attempt. Other users
    behind the same address still log in."""
    api_as(porter, "guest", "guest", "PUT", "/api/users/carol",
           json={"password": "carol-pw", "tags": "management"}).raise_for_status()
    for _ in range(20):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            amqp_as(porter, "guest", "not-guest")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp_as(porter, "guest", "guest")  # the right password, refused: the address is throttled
    assert api_as(porter, "guest", "guest", "GET", "/api/whoami").status_code == 401
    assert api_as(porter, "carol", "carol-pw", "GET", "/api/whoami").status_code == 200
    log = porter.log_tail(400)
    assert log.count("too many failed logins from this address") == 1
    assert log.count("amqp: login refused") == 20, "throttled attempts are not logged one by one"


def test_vhost_limits_refuse_queues_and_connections_past_them(porter):
    """RabbitMQ's vhost limits through its API: max-queues refuses the next declare with 406,
    max-connections the next connection with 530, each with RabbitMQ's text; a removed limit
    lets them in again."""
    existing = len(api_as(porter, "guest", "guest", "GET", "/api/queues/%2F").json())
    api_as(porter, "guest", "guest", "PUT", "/api/vhost-limits/%2F/max-queues",
           json={"value": existing + 2}).raise_for_status()
    api_as(porter, "guest", "guest", "PUT", "/api/vhost-limits/%2F/max-connections",
           json={"value": 1}).raise_for_status()
    assert api_as(porter, "guest", "guest", "GET", "/api/vhost-limits").json() == [
        {"vhost": "/", "value": {"max-connections": 1, "max-queues": existing + 2}}]

    connection = amqp_as(porter, "guest", "guest")
    channel = connection.channel()
    channel.queue_declare("limited-1")
    channel.queue_declare("limited-2")
    channel.queue_declare("limited-1")  # a re-declare is not a new queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel.queue_declare("limited-3")
    assert refused.value.reply_code == 406
    assert f"queue limit ({existing + 2}) is reached" in refused.value.reply_text

    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        amqp_as(porter, "guest", "guest")
    assert "connection limit (1) is reached" in str(refused.value)
    connection.close()

    for name in ("max-queues", "max-connections"):
        api_as(porter, "guest", "guest", "DELETE", f"/api/vhost-limits/%2F/{name}").raise_for_status()
    assert api_as(porter, "guest", "guest", "GET", "/api/vhost-limits").json() == []
    again = amqp_as(porter, "guest", "guest")
    again.channel().queue_declare("limited-3")
    again.close()
    assert api_as(porter, "guest", "guest", "PUT", "/api/vhost-limits/%2F/max-channels",
                  json={"value": 1}).status_code == 400


def client_user(porter, name: str) -> None:
    """A user without tags, password `<name>-pw`, with every permission on `/`."""
    api_as(porter, "guest", "guest", "PUT", f"/api/users/{name}",
           json={"password": f"{name}-pw", "tags": ""}).raise_for_status()
    api_as(porter, "guest", "guest", "PUT", f"/api/permissions/%2F/{name}",
           json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()


def test_a_user_s_max_connections_counts_its_connections_on_every_protocol(porter):
    """RabbitMQ's user limit through its API: with max-connections 2, a user's third
    connection is refused whether it is AMQP (530), MQTT (CONNACK not authorized) or STOMP (an
    ERROR frame), and a closed one frees its place; the vhost's max-connections counts MQTT and
    STOMP connections too."""
    import stomp
    from mqtt_helpers import V5, Client

    client_user(porter, "capped")
    api_as(porter, "guest", "guest", "PUT", "/api/user-limits/capped/max-connections",
           json={"value": 2}).raise_for_status()
    assert api_as(porter, "guest", "guest", "GET", "/api/user-limits").json() == [
        {"user": "capped", "value": {"max-connections": 2}}]
    assert api_as(porter, "guest", "guest", "GET", "/api/users/capped").json()["limits"] == {
        "max-connections": 2}

    first = amqp_as(porter, "capped", "capped-pw")
    mqtt = Client(porter.mqtt_port, version=V5, credentials=("capped", "capped-pw"),
                  client_id="capped-mqtt")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        amqp_as(porter, "capped", "capped-pw")
    assert "user connection limit (2) is reached" in str(refused.value)
    assert mqtt.reason_code.value == 0
    refused_mqtt = Client(porter.mqtt_port, version=V5, credentials=("capped", "capped-pw"),
                          client_id="capped-mqtt-2")
    assert refused_mqtt.reason_code.value == 0x87  # not authorized
    refused_stomp = stomp.Connection12([("127.0.0.1", porter.stomp_port)])
    with pytest.raises(stomp.exception.ConnectFailedException):
        refused_stomp.connect("capped", "capped-pw", wait=True)
    assert porter.log_tail(100).count("user connection limit (2) is reached") >= 3

    mqtt.client.disconnect()
    first.close()
    again = stomp.Connection12([("127.0.0.1", porter.stomp_port)])
    again.connect("capped", "capped-pw", wait=True)
    # The vhost's limit counts STOMP connections too: guest is refused past one.
    api_as(porter, "guest", "guest", "PUT", "/api/vhost-limits/%2F/max-connections",
           json={"value": 1}).raise_for_status()
    full = Client(porter.mqtt_port, version=V5, credentials=("guest", "guest"), client_id="vhost-full")
    assert full.reason_code.value == 0x87
    again.disconnect()
    api_as(porter, "guest", "guest", "DELETE", "/api/vhost-limits/%2F/max-connections").raise_for_status()
    api_as(porter, "guest", "guest", "DELETE",
           "/api/user-limits/capped/max-connections").raise_for_status()
    assert api_as(porter, "guest", "guest", "GET", "/api/user-limits").json() == []


def test_a_user_s_max_channels_counts_its_amqp_channels_across_connections(porter):
    client_user(porter, "chatty")
    assert ok(porter, "users", "set-limit", "chatty", "max-channels", "2").strip() == \
        "max-channels of chatty set"
    first, second = amqp_as(porter, "chatty", "chatty-pw"), amqp_as(porter, "chatty", "chatty-pw")
    kept = first.channel()
    second.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as refused:
        second.channel()
    assert refused.value.reply_code == 530
    assert refused.value.reply_text == (
        "NOT_ALLOWED - number of channels opened for user 'chatty' has reached the maximum "
        "allowed user limit of (2)")
    # The closed connection's channel freed its place.
    first.channel()
    kept.close()
    first.close()
    ok(porter, "users", "set-limit", "chatty", "max-channels", "-1")
    assert api_as(porter, "guest", "guest", "GET", "/api/user-limits/chatty").json() == []


def host_address() -> str:
    """This host's own non-loopback IPv4 address (the one outbound traffic would leave from):
    a connection to it from here comes from a non-loopback peer without leaving the host."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a UDP connect sends nothing
            address = probe.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("this host has no non-loopback IPv4 address to come from")
    return address


def stomp_connect_frame(host: str, port: int, headers: str = "") -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"CONNECT\naccept-version:1.2\n{headers}\n\x00".encode())
        return s.recv(4096)


def test_guest_comes_in_from_loopback_only_whichever_way(porter):
    """`guest` is loopback-only, as RabbitMQ's: from this host's own non-loopback address its
    AMQP login, and a STOMP CONNECT without login (which runs as STOMP's default user, guest),
    are refused; from loopback both work."""
    address = host_address()
    porter.amqp_host = "0.0.0.0"
    porter.extra_args = ["--stomp-listen", f"0.0.0.0:{porter.stomp_port}"]
    porter.restart()
    guest = pika.PlainCredentials("guest", "guest")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.ConnectionParameters(address, porter.amqp_port, credentials=guest))
    pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", porter.amqp_port,
                                                      credentials=guest)).close()
    for headers in ("", "login:guest\npasscode:guest\n"):
        refused = stomp_connect_frame(address, porter.stomp_port, headers)
        assert refused.startswith(b"ERROR\n") and b"message:access refused" in refused, refused
        assert stomp_connect_frame("127.0.0.1", porter.stomp_port, headers).startswith(b"CONNECTED\n")
    assert "may log in from loopback addresses only" in porter.log_tail(100)


def test_another_site_s_page_cannot_change_the_broker(porter):
    """A browser that cached the admin's basic credentials would add them to a form another
    site's page posts here; such requests (the browser's Sec-Fetch-Site or Origin says so) are
    refused when they would change something. Reads, the broker's own pages, and clients that
    are not browsers are not affected."""
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        refused = api_as(porter, "guest", "guest", "POST", "/api/definitions",
                         json={"users": [{"name": "mole", "password": "x", "tags": "administrator"}]},
                         headers=headers)
        assert refused.status_code == 403, refused.text
        assert api_as(porter, "guest", "guest", "GET", "/api/overview", headers=headers).ok
    assert "mole" not in [u["name"] for u in api_as(porter, "guest", "guest", "GET", "/api/users").json()]
    assert "cross-origin request refused" in porter.log_tail(50)
    own = api_as(porter, "guest", "guest", "PUT", "/api/queues/%2F/from-the-ui", json={},
                 headers={"Sec-Fetch-Site": "same-origin", "Origin": porter.http_url})
    assert own.status_code == 201
