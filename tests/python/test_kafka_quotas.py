"""Kafka client quotas (issue 18 §5): AlterClientQuotas / DescribeClientQuotas as
kafka-python's protocol classes encode them (the request kafka-configs.sh sends), and a
confluent-kafka producer over its producer_byte_rate is held to it: its requests come back with
throttle_time_ms (librdkafka's throttle_cb fires) and its throughput falls to about the quota,
while a client without a quota is not slowed."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient
from kafka.protocol.admin import DescribeClientQuotasRequest_v0
from kafka.protocol.api import Request, Response
from kafka.protocol.types import Array, Boolean, Float64, Int16, Int32, Schema, String

from conftest import run_porter

WAIT_S = 20
QUOTA = 100_000  # bytes per second


class AlterClientQuotasResponse_v0(Response):
    API_KEY = 49
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("entries", Array(
            ("error_code", Int16),
            ("error_message", String("utf-8")),
            ("entity", Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8")))))),
    )


class AlterClientQuotasRequest_v0(Request):
    API_KEY = 49
    API_VERSION = 0
    RESPONSE_TYPE = AlterClientQuotasResponse_v0
    SCHEMA = Schema(
        ("entries", Array(
            ("entity", Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8")))),
            ("ops", Array(("key", String("utf-8")), ("value", Float64), ("remove", Boolean))))),
        ("validate_only", Boolean),
    )


@pytest.fixture
def quota_porter(tmp_path):
    config = tmp_path / "porter.toml"
    config.write_text('[kafka]\nsasl_mechanisms = ["PLAIN"]\n')
    yield from run_porter(tmp_path, ["--config", str(config)])


def admin_of(server) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=server.bootstrap, security_protocol="SASL_PLAINTEXT",
                            sasl_mechanism="PLAIN", sasl_plain_username="guest",
                            sasl_plain_password="guest")


def send(admin: KafkaAdminClient, request):
    future = admin._send_request_to_node(admin._client.least_loaded_node(), request)
    admin._wait_for_futures([future])
    return future.value


def producer_config(server, client_id: str, **extra) -> dict:
    return {"bootstrap.servers": server.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": "guest", "sasl.password": "guest",
            "client.id": client_id, "linger.ms": 0, "batch.size": 20_000, **extra}


def produce_for(server, client_id: str, seconds: float, throttles: list) -> float:
    """Produces 10 KB records as fast as the broker takes them (librdkafka's queue kept to
    2 MB, so the client waits on the broker); returns the bytes delivered per second."""
    delivered = []
    producer = Producer(producer_config(server, client_id, **{
        "throttle_cb": lambda event: throttles.append(event),
        "queue.buffering.max.kbytes": 2048}))
    value = b"x" * 10_000
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            producer.produce("quoted", value,
                             on_delivery=lambda err, msg: err or delivered.append(len(msg.value())))
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    elapsed = time.monotonic() - started
    producer.purge()
    producer.flush(WAIT_S)
    return sum(delivered) / elapsed


def test_a_producer_over_its_quota_is_throttled_to_it(quota_porter):
    admin = admin_of(quota_porter)
    alter = AlterClientQuotasRequest_v0(
        entries=[([("client-id", "etl")], [("producer_byte_rate", float(QUOTA), False)])],
        validate_only=False)
    response = send(admin, alter)
    assert [e[0] for e in response.entries] == [0], response

    described = send(admin, DescribeClientQuotasRequest_v0(
        components=[("client-id", 0, "etl")], strict=False))
    assert described.error_code == 0
    assert described.entries == [([("client-id", "etl")], [("producer_byte_rate", float(QUOTA))])]

    throttles = []
    rate = produce_for(quota_porter, "etl", 8, throttles)
    assert throttles, f"no throttle_time_ms reached librdkafka ({rate:.0f} B/s)"
    assert rate < 2.5 * QUOTA, f"{rate:.0f} B/s against a quota of {QUOTA} B/s"

    # Another client id has no quota: not slowed.
    free = []
    unlimited = produce_for(quota_porter, "web", 3, free)
    assert not free and unlimited > 3 * QUOTA, unlimited

    # Removing the quota frees the client.
    remove = AlterClientQuotasRequest_v0(
        entries=[([("client-id", "etl")], [("producer_byte_rate", 0.0, True)])], validate_only=False)
    assert [e[0] for e in send(admin, remove).entries] == [0]
    assert send(admin, DescribeClientQuotasRequest_v0(components=[], strict=False)).entries == []
    admin.close()


def test_a_client_over_its_request_percentage_is_held_back(quota_porter):
    """request_percentage: the share of one thread's time the broker may spend on a client's
    requests. At 0.5 % (5 ms a second), a producer sending one small record per request soon
    passes it: its answers come back with throttle_time_ms and its request rate falls, while the
    same producer under another client id is not slowed."""
    admin = admin_of(quota_porter)
    alter = AlterClientQuotasRequest_v0(
        entries=[([("client-id", "chatty")], [("request_percentage", 0.5, False)])],
        validate_only=False)
    assert [e[0] for e in send(admin, alter).entries] == [0]
    admin.close()

    def requests_per_second(client_id: str, throttles: list) -> float:
        producer = Producer(producer_config(quota_porter, client_id, **{
            "throttle_cb": lambda event: throttles.append(event)}))
        sent, started = 0, time.monotonic()
        while time.monotonic() - started < 4:
            producer.produce("chatter", b"x")
            producer.flush(WAIT_S)  # one record, one request, one answer
            sent += 1
        return sent / (time.monotonic() - started)

    throttled = []
    slow = requests_per_second("chatty", throttled)
    assert throttled, f"no throttle_time_ms reached librdkafka ({slow:.0f} requests/s)"
    free = []
    fast = requests_per_second("calm", free)
    assert not free and fast > 2 * slow, (fast, slow)
