"""RabbitMQ's permission model (issue 18 §3), enforced on every protocol that has it: a user's
configure, write and read regular expressions in a virtual host, checked by one decision point
in the core. The matrix: user `app` may configure, write and read only `app.*` resources;
user `reader` may only read. Each protocol's client is refused what its permissions do not
grant, with that protocol's own error (AMQP channel close 403 ACCESS_REFUSED with RabbitMQ's
text, a STOMP ERROR frame, MQTT PUBACK/SUBACK 0x87), and a change of permissions applies to the
next operation."""

from __future__ import annotations

import time
import uuid

import pika
import pytest
import requests
import stomp

from amqp_helpers import connection_parameters
from mqtt_helpers import V5, Client

WAIT_S = 10
ADMIN = ("guest", "guest")


def put(server, path: str, body: dict) -> None:
    requests.put(server.http_url + "/api" + path, json=body, auth=ADMIN,
                 timeout=WAIT_S).raise_for_status()


def user(server, name: str, configure: str, write: str, read: str) -> None:
    put(server, f"/users/{name}", {"password": f"{name}-pw", "tags": ""})
    put(server, f"/permissions/%2F/{name}", {"configure": configure, "write": write, "read": read})


def amqp_as(server, name: str) -> pika.BlockingConnection:
    params = connection_parameters(server.amqp_url)
    params.credentials = pika.PlainCredentials(name, f"{name}-pw")
    return pika.BlockingConnection(params)


def refused(action) -> str:
    """Runs an AMQP action that must close its channel with 403; returns the reply text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        action()
    assert closed.value.reply_code == 403, closed.value
    return closed.value.reply_text


@pytest.fixture
def matrix(porter):
    user(porter, "app", r"^app\.", r"^app\.", r"^app\.")
    user(porter, "reader", "", "", ".*")
    admin = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = admin.channel()
    channel.exchange_declare("app.events", "topic")
    channel.queue_declare("app.inbox")
    channel.queue_declare("billing.inbox")
    channel.queue_bind("app.inbox", "app.events", "#")
    channel.basic_publish("", "billing.inbox", b"invoice")
    admin.close()
    return porter


def test_amqp_operations_need_the_permission_their_kind_names(matrix):
    connection = amqp_as(matrix, "app")
    channel = connection.channel()
    channel.queue_declare("app.work")                       # configure ^app\.
    channel.basic_publish("app.events", "x.y", b"hello")    # write ^app\.
    channel.queue_purge("app.inbox")                        # read ^app\.
    text = refused(lambda: connection.channel().queue_declare("billing.work"))
    assert text == "ACCESS_REFUSED - access to queue 'billing.work' in vhost '/' refused for user 'app'"
    # Publishing to the default exchange is a write to `amq.default`.
    ch = connection.channel()
    ch.confirm_delivery()
    text = refused(lambda: ch.basic_publish("", "app.work", b"x"))
    assert "access to exchange 'amq.default' in vhost '/' refused for user 'app'" in text
    refused(lambda: connection.channel().basic_get("billing.inbox"))
    refused(lambda: connection.channel().basic_consume("billing.inbox", lambda *a: None))
    # Binding reads the exchange: amq.topic is not app's.
    refused(lambda: connection.channel().queue_bind("app.work", "amq.topic", "#"))
    refused(lambda: connection.channel().exchange_declare("billing.events", "fanout"))
    refused(lambda: connection.channel().queue_delete("billing.inbox"))
    connection.close()

    reader = amqp_as(matrix, "reader")
    method, _, body = reader.channel().basic_get("billing.inbox", auto_ack=True)
    assert body == b"invoice"
    refused(lambda: reader.channel().queue_declare("reader.q"))
    r = reader.channel()
    r.confirm_delivery()
    refused(lambda: r.basic_publish("app.events", "k", b"x"))
    reader.close()


def test_a_permission_change_applies_to_the_next_operation(matrix):
    connection = amqp_as(matrix, "reader")
    refused(lambda: connection.channel().queue_declare("reader.q"))
    put(matrix, "/permissions/%2F/reader", {"configure": ".*", "write": "", "read": ".*"})
    connection.channel().queue_declare("reader.q")
    connection.close()


def stomp_as(server, name: str):
    conn = stomp.Connection12([("127.0.0.1", server.stomp_port)], auto_content_length=True)
    errors = []
    listener = stomp.ConnectionListener()
    listener.on_error = errors.append
    conn.set_listener("errors", listener)
    conn.connect(name, f"{name}-pw", wait=True)
    return conn, errors


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_stomp_send_and_subscribe_are_checked(matrix):
    conn, errors = stomp_as(matrix, "app")
    conn.send("/exchange/app.events/k", "ok", receipt="r1")
    conn.send("/exchange/amq.topic/k", "not app's")
    wait_for(lambda: errors, "an ERROR frame for the SEND")
    assert errors[0].headers["message"] == "access_refused"
    assert "access to exchange 'amq.topic' in vhost '/' refused for user 'app'" in errors[0].body

    conn, errors = stomp_as(matrix, "app")
    conn.subscribe("/amq/queue/billing.inbox", id="s1")
    wait_for(lambda: errors, "an ERROR frame for the SUBSCRIBE")
    assert "access to queue 'billing.inbox'" in errors[0].body

    # SENDs to /topic/ and /amq/queue/ are published in bursts: checked the same.
    for destination, exchange in (("/topic/k", "amq.topic"), ("/amq/queue/app.inbox", "amq.default")):
        conn, errors = stomp_as(matrix, "app")
        conn.send(destination, "not app's")
        wait_for(lambda: errors, f"an ERROR frame for the SEND to {destination}")
        assert f"access to exchange '{exchange}' in vhost '/' refused for user 'app'" in errors[0].body


def test_mqtt_publish_and_subscribe_are_checked(matrix):
    # MQTT publishes through amq.topic and subscribes from it: app may do neither.
    client = Client(matrix.mqtt_port, version=V5, credentials=("app", "app-pw"),
                    client_id=f"app-{uuid.uuid4().hex[:6]}")
    assert client.subscribe("sensors/#")[0].value == 0x87
    info = client.client.publish("sensors/1", b"21.5", qos=1)
    info.wait_for_publish(WAIT_S)
    assert matrix.log_tail(100).count("MQTT publish refused") >= 1
    client.client.disconnect()

    user(matrix, "sensor", "^mqtt-subscription-", "^(amq\\.topic|mqtt-subscription-.*)$",
         "^(amq\\.topic|mqtt-subscription-.*)$")
    sensor = Client(matrix.mqtt_port, version=V5, credentials=("sensor", "sensor-pw"),
                    client_id=f"sensor-{uuid.uuid4().hex[:6]}")
    assert sensor.subscribe("sensors/#")[0].value == 1
    sensor.publish("sensors/1", b"21.5")
    assert sensor.next().payload == b"21.5"
    sensor.client.disconnect()


def test_topic_permissions_narrow_routing_keys_on_topic_exchanges(matrix):
    """RabbitMQ's topic authorisation: `chat` may use amq.topic (its exchange permission says
    so), but only publish under `chat.<its name>.` and only bind under `chat.`, on every
    protocol; a direct exchange is not subject to the check."""
    every = "^(amq\\.topic|amq\\.direct|amq\\.default|chat-.*|mqtt-subscription-.*|stomp-.*)$"
    user(matrix, "chat", ".*", every, every)
    put(matrix, "/topic-permissions/%2F/chat",
        {"exchange": "amq.topic", "write": "^chat\\.{username}\\.", "read": "^chat\\."})
    listed = requests.get(matrix.http_url + "/api/topic-permissions/%2F/chat", auth=ADMIN,
                          timeout=WAIT_S).json()
    assert listed == [{"user": "chat", "vhost": "/", "exchange": "amq.topic",
                       "write": "^chat\\.{username}\\.", "read": "^chat\\."}]

    connection = amqp_as(matrix, "chat")
    channel = connection.channel()
    channel.queue_declare("chat-inbox")
    channel.queue_bind("chat-inbox", "amq.topic", "chat.#")
    channel.confirm_delivery()
    channel.basic_publish("amq.topic", "chat.chat.room1", b"mine")
    text = refused(lambda: channel.basic_publish("amq.topic", "chat.alice.room1", b"forged"))
    assert text == ("ACCESS_REFUSED - access to topic 'chat.alice.room1' in exchange "
                    "'amq.topic' in vhost '/' refused for user 'chat'")
    text = refused(lambda: connection.channel().queue_bind("chat-inbox", "amq.topic", "logs.#"))
    assert "access to topic 'logs.#' in exchange 'amq.topic'" in text
    # amq.direct is no topic exchange: its routing keys are not checked.
    connection.channel().queue_bind("chat-inbox", "amq.direct", "logs")
    connection.close()

    # MQTT: the topic is the routing key (`/` becomes `.`).
    client = Client(matrix.mqtt_port, version=V5, credentials=("chat", "chat-pw"),
                    client_id=f"chat-{uuid.uuid4().hex[:6]}")
    assert client.subscribe("chat/#")[0].value == 1
    assert client.subscribe("logs/#")[0].value == 0x87
    client.publish("chat/chat/room2", b"via mqtt")
    assert client.next().payload == b"via mqtt"
    info = client.client.publish("chat/alice/room2", b"forged", qos=1)
    info.wait_for_publish(WAIT_S)
    assert matrix.log_tail(100).count("access to topic 'chat.alice.room2'") >= 1
    client.client.disconnect()

    # STOMP: /topic/ destinations go through amq.topic.
    conn, errors = stomp_as(matrix, "chat")
    conn.send("/topic/chat.alice.x", "forged")
    wait_for(lambda: errors, "an ERROR frame for the SEND")
    assert "access to topic 'chat.alice.x' in exchange 'amq.topic'" in errors[0].body

    # Exported with the definitions, and cleared like RabbitMQ's.
    exported = requests.get(matrix.http_url + "/api/definitions", auth=ADMIN, timeout=WAIT_S).json()
    assert exported["topic_permissions"] == listed
    requests.delete(matrix.http_url + "/api/topic-permissions/%2F/chat", auth=ADMIN,
                    timeout=WAIT_S).raise_for_status()
    connection = amqp_as(matrix, "chat")
    connection.channel().queue_bind("chat-inbox", "amq.topic", "logs.#")
    connection.close()


def test_an_mqtt_client_s_id_in_a_topic_permission(matrix):
    """RabbitMQ's `{client_id}` (MQTT only): each device publishes under its own client id."""
    every = "^(amq\\.topic|mqtt-subscription-.*)$"
    user(matrix, "device", "^mqtt-subscription-", every, every)
    put(matrix, "/topic-permissions/%2F/device",
        {"exchange": "amq.topic", "write": "^devices\\.{client_id}\\.", "read": ".*"})
    client = Client(matrix.mqtt_port, version=V5, credentials=("device", "device-pw"),
                    client_id="d-1")
    assert client.subscribe("devices/#")[0].value == 1
    client.publish("devices/d-1/temp", b"21.5")
    assert client.next().payload == b"21.5"
    info = client.client.publish("devices/d-2/temp", b"forged", qos=1)
    info.wait_for_publish(WAIT_S)
    assert matrix.log_tail(100).count("access to topic 'devices.d-2.temp'") >= 1
    client.client.disconnect()
