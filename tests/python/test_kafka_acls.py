"""Kafka ACLs (issue 18 §3) through confluent-kafka's AdminClient and enforced on its producers
and consumers: with `[kafka] acls = true` on a SASL listener, `alice` may write `orders` and
read `orders*` in group `billing`; `bob` may do nothing. A denied produce gets
TOPIC_AUTHORIZATION_FAILED, a denied group GROUP_AUTHORIZATION_FAILED, topics one may not
describe are left out of the metadata, a DENY overrides an ALLOW, and only an administrator (a
super user) manages ACLs."""

from __future__ import annotations

import time

import pytest
import requests
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewPartitions, NewTopic,
                                   ResourcePatternType, ResourceType)

from conftest import run_porter

WAIT_S = 20


@pytest.fixture
def acl_porter(tmp_path):
    config = tmp_path / "porter.toml"
    config.write_text('[kafka]\nsasl_mechanisms = ["SCRAM-SHA-256"]\nacls = true\n')
    for server in run_porter(tmp_path, ["--config", str(config)]):
        for name in ("alice", "bob"):
            requests.put(f"{server.http_url}/api/users/{name}", auth=("guest", "guest"),
                         json={"password": f"{name}-pw", "tags": ""},
                         timeout=10).raise_for_status()
        yield server


def config_of(server, user: str, password: str | None = None, **extra) -> dict:
    return {"bootstrap.servers": server.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user,
            "sasl.password": password or f"{user}-pw", **extra}


def admin_of(server, user="guest", password="guest") -> AdminClient:
    return AdminClient(config_of(server, user, password))


def allow(principal, rt, name, op, pattern=ResourcePatternType.LITERAL,
          permission=AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(rt, name, pattern, principal, "*", op, permission)


def create(admin: AdminClient, *bindings: AclBinding) -> None:
    for future in admin.create_acls(list(bindings)).values():
        future.result(WAIT_S)


def produce(server, user: str, topic: str) -> KafkaError | None:
    outcome = []
    producer = Producer(config_of(server, user, **{"message.timeout.ms": 5000}))
    producer.produce(topic, b"x", on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(WAIT_S)
    assert outcome, "no delivery report"
    return outcome[0]


def test_admin_client_acls_are_enforced_on_producers_and_consumers(acl_porter):
    admin = admin_of(acl_porter)
    admin.create_topics([NewTopic("orders", 1), NewTopic("payments", 1)])["orders"].result(WAIT_S)
    create(admin,
           allow("User:alice", ResourceType.TOPIC, "orders", AclOperation.WRITE),
           allow("User:alice", ResourceType.TOPIC, "orders", AclOperation.READ,
                 ResourcePatternType.PREFIXED),
           allow("User:alice", ResourceType.GROUP, "billing", AclOperation.READ))

    described = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None, AclOperation.ANY,
        AclPermissionType.ANY)).result(WAIT_S)
    assert {(b.restype, b.name, b.resource_pattern_type, b.operation) for b in described} == {
        (ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, AclOperation.WRITE),
        (ResourceType.TOPIC, "orders", ResourcePatternType.PREFIXED, AclOperation.READ),
        (ResourceType.GROUP, "billing", ResourcePatternType.LITERAL, AclOperation.READ)}

    assert produce(acl_porter, "alice", "orders") is None
    refused = produce(acl_porter, "alice", "payments")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    refused = produce(acl_porter, "bob", "orders")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Metadata lists only what one may describe (READ and WRITE imply DESCRIBE).
    alice_topics = set(Producer(config_of(acl_porter, "alice")).list_topics(timeout=10).topics)
    assert "orders" in alice_topics and "payments" not in alice_topics
    assert "orders" not in Producer(config_of(acl_porter, "bob")).list_topics(timeout=10).topics

    consumer = Consumer(config_of(acl_porter, "alice", **{"group.id": "billing",
                                                          "auto.offset.reset": "earliest"}))
    consumer.subscribe(["orders"])
    got = None
    deadline = time.monotonic() + WAIT_S
    while got is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got = message.value()
    assert got == b"x"
    consumer.commit(asynchronous=False)
    consumer.close()

    stranger = Consumer(config_of(acl_porter, "alice", **{"group.id": "other",
                                                          "auto.offset.reset": "earliest"}))
    stranger.subscribe(["orders"])
    errors = []
    deadline = time.monotonic() + WAIT_S
    while not errors and time.monotonic() < deadline:
        message = stranger.poll(0.5)
        if message is not None and message.error() is not None:
            errors.append(message.error().code())
    stranger.close()
    assert KafkaError.GROUP_AUTHORIZATION_FAILED in errors, errors

    # A DENY wins over the ALLOW.
    create(admin, allow("User:alice", ResourceType.TOPIC, "orders", AclOperation.WRITE,
                        permission=AclPermissionType.DENY))
    refused = produce(acl_porter, "alice", "orders")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Deleting by filter takes every matching binding away.
    deleted = admin.delete_acls([AclBindingFilter(
        ResourceType.TOPIC, "orders", ResourcePatternType.ANY, "User:alice", None,
        AclOperation.ANY, AclPermissionType.ANY)])
    removed = list(deleted.values())[0].result(WAIT_S)
    assert len(removed) == 3
    refused = produce(acl_porter, "alice", "orders")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_admin_requests_need_their_operation(acl_porter):
    admin = admin_of(acl_porter)
    admin.create_topics([NewTopic("ledger", 1)])["ledger"].result(WAIT_S)
    bob = admin_of(acl_porter, "bob", "bob-pw")
    with pytest.raises(KafkaException) as refused:
        bob.create_partitions([NewPartitions("ledger", 3)])["ledger"].result(WAIT_S)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(refused.value)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "ledger")
    with pytest.raises(KafkaException) as refused:
        bob.describe_configs([resource])[resource].result(WAIT_S)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(refused.value)
    with pytest.raises(KafkaException) as refused:
        bob.delete_topics(["ledger"])["ledger"].result(WAIT_S)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(refused.value)
    create(admin, allow("User:bob", ResourceType.TOPIC, "ledger", AclOperation.ALTER))
    bob.create_partitions([NewPartitions("ledger", 3)])["ledger"].result(WAIT_S)


def test_groups_and_the_cluster_are_described_only_with_describe(acl_porter):
    from confluent_kafka import TopicPartition
    admin = admin_of(acl_porter)
    admin.create_topics([NewTopic("audit-log", 1)])["audit-log"].result(WAIT_S)
    for group in ("audit", "billing"):
        consumer = Consumer(config_of(acl_porter, "guest", "guest", **{"group.id": group}))
        consumer.commit(offsets=[TopicPartition("audit-log", 0, 0)], asynchronous=False)
        consumer.close()
    bob = admin_of(acl_porter, "bob", "bob-pw")
    assert [g.group_id for g in bob.list_consumer_groups().result(WAIT_S).valid] == []
    create(admin, allow("User:bob", ResourceType.GROUP, "audit", AclOperation.DESCRIBE))
    assert [g.group_id for g in bob.list_consumer_groups().result(WAIT_S).valid] == ["audit"]
    assert bob.describe_consumer_groups(["audit"])["audit"].result(WAIT_S).group_id == "audit"
    with pytest.raises(KafkaException) as refused:
        bob.describe_consumer_groups(["billing"])["billing"].result(WAIT_S)
    assert "GROUP_AUTHORIZATION_FAILED" in str(refused.value)
    # DescribeLogDirs needs Describe on the cluster: asked with kafka-python's v0 classes as v1
    # (the same schema; Porter serves v1-4), a refusal lists no directories, as Kafka's does.
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin import DescribeLogDirsRequest_v0, DescribeLogDirsResponse_v0

    class DescribeLogDirsResponseV1(DescribeLogDirsResponse_v0):
        API_VERSION = 1

    class DescribeLogDirsRequestV1(DescribeLogDirsRequest_v0):
        API_VERSION = 1
        RESPONSE_TYPE = DescribeLogDirsResponseV1

    def log_dirs(user: str, password: str) -> list:
        client = KafkaAdminClient(bootstrap_servers=acl_porter.bootstrap,
                                  security_protocol="SASL_PLAINTEXT",
                                  sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=user,
                                  sasl_plain_password=password, request_timeout_ms=WAIT_S * 1000)
        try:
            return client.send_request(DescribeLogDirsRequestV1([])).log_dirs
        finally:
            client.close()

    assert log_dirs("bob", "bob-pw") == []
    assert len(log_dirs("guest", "guest")) == 1


def test_only_administrators_manage_acls(acl_porter):
    bob = admin_of(acl_porter, "bob", "bob-pw")
    with pytest.raises(KafkaException) as refused:
        create(bob, allow("User:bob", ResourceType.TOPIC, "*", AclOperation.ALL))
    assert "CLUSTER_AUTHORIZATION_FAILED" in str(refused.value)
    # A non-administrator with Alter on the cluster may.
    create(admin_of(acl_porter), allow("User:bob", ResourceType.BROKER, "kafka-cluster",
                                        AclOperation.ALTER))
    create(bob, allow("User:bob", ResourceType.TOPIC, "bobs-", AclOperation.ALL,
                      ResourcePatternType.PREFIXED))
    assert produce(acl_porter, "bob", "bobs-topic") is None


def test_the_security_guide_acl_snippet_runs(acl_porter, tmp_path):
    """docs/security.md's AdminClient example, marked "not run" for test_docs' plain broker,
    runs here against a SASL listener with ACLs."""
    from test_docs import REPO_ROOT, assert_ran, fenced_blocks, prepared, run_bounded, snippet_env
    blocks = [b for b in fenced_blocks(REPO_ROOT / "docs" / "security.md")
              if b.language == "python" and "create_acls" in b.code]
    assert len(blocks) == 1
    script, command, suffix = prepared(blocks[0], acl_porter)
    path = tmp_path / f"snippet.{suffix}"
    path.write_text(script.replace('"SCRAM-SHA-512"', '"SCRAM-SHA-256"'))
    exit_code, output = run_bounded([*command, str(path)], snippet_env(acl_porter))
    assert_ran(blocks[0], script, exit_code, output)
    assert "3 ACLs created" in output
    admin = admin_of(acl_porter)
    described = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:billing", None, AclOperation.ANY,
        AclPermissionType.ANY)).result(WAIT_S)
    assert len(described) == 3
