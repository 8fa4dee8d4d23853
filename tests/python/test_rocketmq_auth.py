"""RocketMQ's AccessKey/SecretKey signatures (issue 18 §2), with the official Python client's
own `Credentials`: with `[rocketmq] authentication = true`, a producer and a consumer signing
with a user's access secret work; a wrong secret, a user without one, and an unsigned call are
refused (gRPC UNAUTHENTICATED), and each refusal is logged with the peer, never the secret."""

from __future__ import annotations

import time

import grpc
import pytest
import requests
from rocketmq import Credentials
from rocketmq.grpc_protocol import definition_pb2, service_pb2, service_pb2_grpc

from rocketmq_helpers import message, producer, raw_stub, receive_all, simple_consumer, tag

ADMIN = ("guest", "guest")
WAIT_S = 10


@pytest.fixture
def signed_porter(porter, tmp_path):
    conf = tmp_path / "porter.toml"
    conf.write_text("[rocketmq]\nauthentication = true\n")
    porter.extra_args = ["--config", str(conf)]
    porter.restart()
    for path, body in (("/users/orders-app", {"password": "orders-pw", "tags": ""}),
                       ("/users/no-secret", {"password": "x", "tags": ""})):
        requests.put(porter.http_url + "/api" + path, json=body, auth=ADMIN,
                     timeout=WAIT_S).raise_for_status()
    answer = requests.put(porter.http_url + "/api/users/orders-app/access-secret", json={},
                          auth=ADMIN, timeout=WAIT_S)
    answer.raise_for_status()
    porter.access_key, porter.secret_key = answer.json()["access_key"], answer.json()["secret_key"]
    return porter


def test_signed_clients_produce_and_consume(signed_porter):
    assert signed_porter.access_key == "orders-app" and len(signed_porter.secret_key) == 48
    user = requests.get(signed_porter.http_url + "/api/users/orders-app", auth=ADMIN,
                        timeout=WAIT_S).json()
    assert user["has_access_secret"] is True and signed_porter.secret_key not in str(user)
    credentials = Credentials(signed_porter.access_key, signed_porter.secret_key)
    with producer(signed_porter, "orders", credentials=credentials) as p:
        p.send(message("orders", b"order-1", tag="created"))
    with simple_consumer(signed_porter, "billing", {"orders": tag("*")},
                         credentials=credentials) as c:
        got = receive_all(c, 1)
    assert [m.body for m in got] == [b"order-1"]


@pytest.mark.parametrize("credentials", [
    Credentials("orders-app", "not-the-secret"),
    Credentials("no-secret", "anything"),
    Credentials("nobody", "anything"),
], ids=["wrong secret", "user without a secret", "unknown user"])
def test_a_bad_signature_is_refused(signed_porter, credentials):
    with pytest.raises(Exception):
        with producer(signed_porter, "orders", credentials=credentials) as p:
            p.send(message("orders", b"forged"))
    refused = [line for line in signed_porter.log_tail(100).splitlines()
               if "rocketmq: request refused" in line]
    assert refused and f"user={credentials.ak}" in refused[-1]
    assert "not-the-secret" not in signed_porter.log_tail(200)


def test_an_unsigned_call_is_unauthenticated(signed_porter):
    channel, stub = raw_stub(signed_porter)
    with channel:
        ask = service_pb2.QueryRouteRequest()
        ask.topic.name = "orders"
        with pytest.raises(grpc.RpcError) as refused:
            stub.QueryRoute(ask, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
def acl_porter(porter, tmp_path):
    """Signed calls checked against the broker's ACLs, made with Kafka's AdminClient (as the
    administrator `guest` over SASL)."""
    conf = tmp_path / "porter.toml"
    conf.write_text('[rocketmq]\nauthentication = true\nacls = true\n'
                    '[kafka]\nsasl_mechanisms = ["PLAIN"]\n')
    porter.extra_args = ["--config", str(conf)]
    porter.restart()
    requests.put(porter.http_url + "/api/users/orders-app", json={"password": "pw", "tags": ""},
                 auth=ADMIN, timeout=WAIT_S).raise_for_status()
    answer = requests.put(porter.http_url + "/api/users/orders-app/access-secret", json={},
                          auth=ADMIN, timeout=WAIT_S)
    answer.raise_for_status()
    porter.credentials = Credentials("orders-app", answer.json()["secret_key"])
    return porter


def test_acls_decide_which_topics_and_groups_a_signed_user_may_use(acl_porter):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)

    admin = AdminClient({"bootstrap.servers": acl_porter.bootstrap,
                         "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                         "sasl.username": "guest", "sasl.password": "guest"})
    allow = [AclBinding(rt, name, ResourcePatternType.LITERAL, "User:orders-app", "*", op,
                        AclPermissionType.ALLOW)
             for rt, name, op in ((ResourceType.TOPIC, "orders", AclOperation.WRITE),
                                  (ResourceType.TOPIC, "orders", AclOperation.READ),
                                  (ResourceType.GROUP, "billing", AclOperation.READ))]
    for future in admin.create_acls(allow).values():
        future.result(WAIT_S)

    credentials = acl_porter.credentials
    with producer(acl_porter, "orders", credentials=credentials) as p:
        p.send(message("orders", b"order-1"))
    with simple_consumer(acl_porter, "billing", {"orders": tag("*")},
                         credentials=credentials) as c:
        assert [m.body for m in receive_all(c, 1)] == [b"order-1"]

    # The client asks the route first: no Describe on `payments`, no route, no send.
    with pytest.raises(Exception, match="failed to fetch topic:payments route"):
        with producer(acl_porter, "payments", credentials=credentials) as p:
            p.send(message("payments", b"not allowed"))
    channel, stub = raw_stub(acl_porter)
    with channel:
        route = service_pb2.QueryRouteRequest()
        route.topic.name = "payments"
        answer = stub.QueryRoute(route, metadata=signed(credentials), timeout=10)
        assert answer.status.code == definition_pb2.Code.FORBIDDEN
        assert answer.status.message == "User:orders-app may not Describe topic payments"
        receive = service_pb2.ReceiveMessageRequest()
        receive.group.name = "other"
        receive.message_queue.topic.name = "orders"
        receive.batch_size = 1
        answers = list(stub.ReceiveMessage(receive, metadata=signed(credentials), timeout=10))
        assert answers[0].status.code == definition_pb2.Code.FORBIDDEN
        assert answers[0].status.message == "User:orders-app may not Read group other"


def signed(credentials: Credentials) -> list:
    """The metadata the official client signs its calls with."""
    from types import SimpleNamespace

    from rocketmq.v5.util.signature import Signature
    return Signature.metadata(SimpleNamespace(credentials=credentials, namespace=""), "acl-test")


def test_a_user_s_max_connections_counts_its_rocketmq_connections(signed_porter):
    """RabbitMQ's user limit `max-connections` holds for RocketMQ too: a connection counts from
    its first signed call until it closes, and the user's next connection is refused with
    RESOURCE_EXHAUSTED and RabbitMQ's text."""
    requests.put(signed_porter.http_url + "/api/user-limits/orders-app/max-connections",
                 json={"value": 1}, auth=ADMIN, timeout=WAIT_S).raise_for_status()
    credentials = Credentials(signed_porter.access_key, signed_porter.secret_key)
    route = service_pb2.QueryRouteRequest()
    route.topic.name = "orders"
    route.endpoints.addresses.add(host="127.0.0.1", port=signed_porter.rocketmq_port)

    def connection():
        # Its own TCP connection: gRPC otherwise shares one between channels to one address.
        channel = grpc.insecure_channel(signed_porter.rocketmq_endpoint,
                                        options=[("grpc.use_local_subchannel_pool", 1)])
        return channel, service_pb2_grpc.MessagingServiceStub(channel)

    first, first_stub = connection()
    first_stub.QueryRoute(route, metadata=signed(credentials), timeout=10)
    first_stub.QueryRoute(route, metadata=signed(credentials), timeout=10)  # the same connection
    second, second_stub = connection()
    with second, pytest.raises(grpc.RpcError) as refused:
        second_stub.QueryRoute(route, metadata=signed(credentials), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "user connection limit (1) is reached" in refused.value.details()
    first.close()
    # Once the first connection is gone, a new one is let in.
    deadline = time.monotonic() + WAIT_S
    while True:
        third, third_stub = connection()
        with third:
            try:
                third_stub.QueryRoute(route, metadata=signed(credentials), timeout=10)
                break
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
        time.sleep(0.1)
