"""RocketMQ's AccessKey/SecretKey signatures (issue 18 §2), with the official Python client's
own `Credentials`: with `[rocketmq] authentication = true`, a producer and a consumer signing
with a user's access secret work; a wrong secret, a user without one, and an unsigned call are
refused (gRPC UNAUTHENTICATED), and each refusal is logged with the peer, never the secret."""

from __future__ import annotations

import grpc
import pytest
import requests
from rocketmq import Credentials

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
    from rocketmq.grpc_protocol import service_pb2

    channel, stub = raw_stub(signed_porter)
    with channel:
        ask = service_pb2.QueryRouteRequest()
        ask.topic.name = "orders"
        with pytest.raises(grpc.RpcError) as refused:
            stub.QueryRoute(ask, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
