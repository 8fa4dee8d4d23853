"""Admin APIs through confluent-kafka's AdminClient: CreateTopics / DeleteTopics / Metadata, topic
configs (Describe/Alter/IncrementalAlterConfigs), CreatePartitions, DeleteRecords, DescribeCluster."""

from __future__ import annotations

import warnings

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from kafka_helpers import (
    REQUEST_S_MAX,
    DeliveryTracker,
    admin_client,
    all_topics,
    create_topic,
    flush_all,
    kafka_error_code,
    make_producer,
    watermarks,
)


def test_create_six_partitions_then_delete(porter):
    name = "admin-six"
    create_topic(porter.bootstrap, name, 6)

    topics = all_topics(porter.bootstrap)
    assert name in topics, sorted(topics)
    assert topics[name].error is None, topics[name].error
    assert sorted(topics[name].partitions) == list(range(6))

    admin = admin_client(porter.bootstrap)
    futures = admin.delete_topics([name], operation_timeout=REQUEST_S_MAX, request_timeout=REQUEST_S_MAX)
    futures[name].result(timeout=REQUEST_S_MAX)

    assert name not in all_topics(porter.bootstrap)


def test_create_existing_topic_fails(porter):
    create_topic(porter.bootstrap, "admin-twice", 2)
    with pytest.raises(KafkaException) as raised:
        create_topic(porter.bootstrap, "admin-twice", 2)
    assert kafka_error_code(raised.value) == KafkaError.TOPIC_ALREADY_EXISTS, raised.value


@pytest.mark.parametrize(
    "name",
    ["bad/name", "a" * 250, "..", ".", "bad name"],
    ids=["slash", "250-chars", "dotdot", "dot", "space"],
)
def test_invalid_topic_name_is_rejected(porter, name):
    admin = admin_client(porter.bootstrap)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1)],
        operation_timeout=REQUEST_S_MAX,
        request_timeout=REQUEST_S_MAX,
    )
    with pytest.raises(KafkaException) as raised:
        futures[name].result(timeout=REQUEST_S_MAX)
    # INVALID_TOPIC_EXCEPTION (17); confluent-kafka names it TOPIC_EXCEPTION.
    assert kafka_error_code(raised.value) == KafkaError.TOPIC_EXCEPTION, raised.value
    assert name not in all_topics(porter.bootstrap)


# --- Topic configs, partition growth, DeleteRecords, DescribeCluster ---------------------------

def source_of(entry) -> int:
    return getattr(entry.source, "value", entry.source)


def describe_topic(bootstrap: str, name: str) -> dict:
    # The client must outlive its futures: a collected client cancels them.
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, name)
    futures = admin.describe_configs([resource], request_timeout=REQUEST_S_MAX)
    return futures[resource].result(timeout=REQUEST_S_MAX)


def incremental(bootstrap: str, name: str, *entries: ConfigEntry, validate_only: bool = False) -> None:
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=list(entries))
    futures = admin.incremental_alter_configs(
        [resource], request_timeout=REQUEST_S_MAX, validate_only=validate_only
    )
    futures[resource].result(timeout=REQUEST_S_MAX)


def legacy_alter(bootstrap: str, name: str, configs: dict) -> None:
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, name, set_config=configs)
    with warnings.catch_warnings():
        # Deprecated in favour of incremental_alter_configs, but it is a Kafka API Porter serves.
        warnings.simplefilter("ignore", DeprecationWarning)
        futures = admin.alter_configs([resource], request_timeout=REQUEST_S_MAX)
    futures[resource].result(timeout=REQUEST_S_MAX)


def op(name: str, operation: AlterConfigOpType, value: str | None = None) -> ConfigEntry:
    return ConfigEntry(name, value, incremental_operation=operation)


def test_describe_configs_shows_overrides_with_their_sources(porter):
    name = "cfg-describe"
    create_topic(porter.bootstrap, name, 1, {"retention.ms": "3600000", "cleanup.policy": "compact"})
    configs = describe_topic(porter.bootstrap, name)
    for key in [
        "cleanup.policy",
        "retention.ms",
        "retention.bytes",
        "segment.bytes",
        "min.compaction.lag.ms",
        "delete.retention.ms",
        "message.timestamp.type",
        "flush",
        "flush.ms",
    ]:
        assert key in configs, sorted(configs)
    assert configs["retention.ms"].value == "3600000"
    assert source_of(configs["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"
    assert source_of(configs["cleanup.policy"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["message.timestamp.type"].value == "CreateTime"
    assert source_of(configs["segment.bytes"]) == ConfigSource.DEFAULT_CONFIG.value
    assert not configs["retention.ms"].is_read_only

    admin = admin_client(porter.bootstrap)
    unknown = ConfigResource(ResourceType.TOPIC, "cfg-no-such-topic")
    futures = admin.describe_configs([unknown], request_timeout=REQUEST_S_MAX)
    with pytest.raises(KafkaException) as raised:
        futures[unknown].result(timeout=REQUEST_S_MAX)
    assert kafka_error_code(raised.value) == KafkaError.UNKNOWN_TOPIC_OR_PART, raised.value


def test_incremental_and_legacy_alter_change_the_topic_durably(porter):
    name = "cfg-alter"
    create_topic(porter.bootstrap, name, 2, {"segment.ms": "600000"})

    incremental(
        porter.bootstrap,
        name,
        op("retention.ms", AlterConfigOpType.SET, "7200000"),
        op("cleanup.policy", AlterConfigOpType.APPEND, "compact"),
    )
    configs = describe_topic(porter.bootstrap, name)
    assert configs["retention.ms"].value == "7200000"
    assert source_of(configs["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "compact,delete"
    assert configs["segment.ms"].value == "600000"

    incremental(
        porter.bootstrap,
        name,
        op("cleanup.policy", AlterConfigOpType.SUBTRACT, "compact"),
        op("segment.ms", AlterConfigOpType.DELETE),
    )
    configs = describe_topic(porter.bootstrap, name)
    assert configs["cleanup.policy"].value == "delete"
    assert source_of(configs["segment.ms"]) == ConfigSource.DEFAULT_CONFIG.value

    # validate_only changes nothing.
    incremental(porter.bootstrap, name, op("retention.ms", AlterConfigOpType.SET, "1"), validate_only=True)
    assert describe_topic(porter.bootstrap, name)["retention.ms"].value == "7200000"

    # The legacy API replaces the whole override set.
    legacy_alter(porter.bootstrap, name, {"retention.ms": "86400000", "message.timestamp.type": "LogAppendTime"})
    configs = describe_topic(porter.bootstrap, name)
    assert configs["retention.ms"].value == "86400000"
    assert configs["message.timestamp.type"].value == "LogAppendTime"
    assert source_of(configs["cleanup.policy"]) == ConfigSource.DEFAULT_CONFIG.value

    porter.kill9_restart()
    configs = describe_topic(porter.bootstrap, name)
    assert configs["retention.ms"].value == "86400000"
    assert configs["message.timestamp.type"].value == "LogAppendTime"


@pytest.mark.parametrize(
    "entry",
    [
        op("retention.ms", AlterConfigOpType.SET, "soon"),
        op("cleanup.policy", AlterConfigOpType.SET, "shred"),
        op("message.timestamp.type", AlterConfigOpType.SET, "Yesterday"),
        op("no.such.config", AlterConfigOpType.SET, "1"),
    ],
    ids=["not-a-number", "bad-policy", "bad-timestamp-type", "unknown-key"],
)
def test_illegal_config_values_are_invalid_config(porter, entry):
    name = "cfg-illegal"
    create_topic(porter.bootstrap, name, 1)
    with pytest.raises(KafkaException) as raised:
        incremental(porter.bootstrap, name, entry)
    assert kafka_error_code(raised.value) == KafkaError.INVALID_CONFIG, raised.value
    assert entry.name in str(raised.value), raised.value
    with pytest.raises(KafkaException) as raised:
        legacy_alter(porter.bootstrap, name, {entry.name: entry.value})
    assert kafka_error_code(raised.value) == KafkaError.INVALID_CONFIG, raised.value
    assert source_of(describe_topic(porter.bootstrap, name)["retention.ms"]) == ConfigSource.DEFAULT_CONFIG.value


def test_append_to_a_scalar_config_is_refused(porter):
    name = "cfg-append-scalar"
    create_topic(porter.bootstrap, name, 1)
    with pytest.raises(KafkaException) as raised:
        incremental(porter.bootstrap, name, op("retention.ms", AlterConfigOpType.APPEND, "5"))
    assert kafka_error_code(raised.value) == KafkaError.INVALID_REQUEST, raised.value


def describe_broker(bootstrap: str, name: str = "0") -> dict:
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.BROKER, name)
    return admin.describe_configs([resource], request_timeout=REQUEST_S_MAX)[resource].result(timeout=REQUEST_S_MAX)


def alter_broker(bootstrap: str, name: str, *entries: ConfigEntry) -> None:
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.BROKER, name, incremental_configs=list(entries))
    futures = admin.incremental_alter_configs([resource], request_timeout=REQUEST_S_MAX)
    futures[resource].result(timeout=REQUEST_S_MAX)


def test_broker_configs_are_described_and_topic_defaults_change_while_running(porter):
    configs = describe_broker(porter.bootstrap)
    assert configs["log.retention.ms"].value == "604800000", sorted(configs)
    assert source_of(configs["log.retention.ms"]) == ConfigSource.DEFAULT_CONFIG.value
    assert not configs["log.retention.ms"].is_read_only, "a topic default can change while running"
    assert configs["log.dirs"].is_read_only
    assert configs["broker.id"].value == "0"

    plain, pinned = "dyn-plain", "dyn-pinned"
    create_topic(porter.bootstrap, plain, 1)
    create_topic(porter.bootstrap, pinned, 1, {"retention.ms": "1000"})

    # This broker's dynamic default: every topic without its own value takes it, at once.
    alter_broker(porter.bootstrap, "0", op("log.retention.ms", AlterConfigOpType.SET, "3600000"))
    configs = describe_broker(porter.bootstrap)
    assert configs["log.retention.ms"].value == "3600000"
    assert source_of(configs["log.retention.ms"]) == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert describe_topic(porter.bootstrap, plain)["retention.ms"].value == "3600000"
    assert source_of(describe_topic(porter.bootstrap, plain)["retention.ms"]) == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert describe_topic(porter.bootstrap, pinned)["retention.ms"].value == "1000"

    # (The cluster-wide default, the empty broker name, can't be named through confluent-kafka's
    # ConfigResource: crates/server/tests/kafka_dynamic_broker_config.rs covers it.)

    # Kafka's SASL listener settings are stored and reported (Porter has no SASL yet).
    alter_broker(porter.bootstrap, "0", op("sasl.kerberos.min.time.before.relogin", AlterConfigOpType.SET, "58000"))
    assert describe_broker(porter.bootstrap)["sasl.kerberos.min.time.before.relogin"].value == "58000"

    # Dynamic configs are metadata: they survive a restart.
    porter.restart()
    assert describe_topic(porter.bootstrap, plain)["retention.ms"].value == "3600000"
    alter_broker(porter.bootstrap, "0", op("log.retention.ms", AlterConfigOpType.DELETE))
    assert describe_topic(porter.bootstrap, plain)["retention.ms"].value == "604800000"


@pytest.mark.parametrize(
    "entry, code",
    [
        (("log.dirs", "/elsewhere"), KafkaError.INVALID_REQUEST),
        (("auto.create.topics.enable", "false"), KafkaError.INVALID_REQUEST),
        (("log.retention.ms", "soon"), KafkaError.INVALID_CONFIG),
    ],
    ids=["static", "static-flag", "bad-value"],
)
def test_broker_configs_porter_cannot_change_while_running_are_refused(porter, entry, code):
    key, value = entry
    with pytest.raises(KafkaException) as raised:
        alter_broker(porter.bootstrap, "0", op(key, AlterConfigOpType.SET, value))
    assert kafka_error_code(raised.value) == code, raised.value
    assert key in str(raised.value), raised.value
    # The legacy API too.
    admin = admin_client(porter.bootstrap)
    resource = ConfigResource(ResourceType.BROKER, "0", set_config={key: value})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        futures = admin.alter_configs([resource], request_timeout=REQUEST_S_MAX)
    with pytest.raises(KafkaException) as raised:
        futures[resource].result(timeout=REQUEST_S_MAX)
    assert kafka_error_code(raised.value) == code, raised.value


def test_create_partitions_three_to_six_then_produce_to_the_last(porter):
    name = "grow"
    create_topic(porter.bootstrap, name, 3)
    admin = admin_client(porter.bootstrap)

    futures = admin.create_partitions([NewPartitions(name, 6)], validate_only=True, request_timeout=REQUEST_S_MAX)
    futures[name].result(timeout=REQUEST_S_MAX)
    assert len(all_topics(porter.bootstrap)[name].partitions) == 3

    futures = admin.create_partitions([NewPartitions(name, 6)], request_timeout=REQUEST_S_MAX)
    futures[name].result(timeout=REQUEST_S_MAX)
    assert sorted(all_topics(porter.bootstrap)[name].partitions) == list(range(6))

    producer = make_producer(porter.bootstrap)
    tracker = DeliveryTracker()
    producer.produce(name, value=b"to the new partition", partition=5, on_delivery=tracker)
    flush_all(producer, tracker, 1)
    assert tracker.offsets == {5: [0]}

    for count in (6, 4):
        futures = admin.create_partitions([NewPartitions(name, count)], request_timeout=REQUEST_S_MAX)
        with pytest.raises(KafkaException) as raised:
            futures[name].result(timeout=REQUEST_S_MAX)
        assert kafka_error_code(raised.value) == KafkaError.INVALID_PARTITIONS, raised.value

    porter.kill9_restart()
    assert sorted(all_topics(porter.bootstrap)[name].partitions) == list(range(6))
    assert watermarks(porter.bootstrap, name, 5) == (0, 1)


def test_delete_records_moves_the_low_watermark(porter):
    name = "trim"
    create_topic(porter.bootstrap, name, 1)
    producer = make_producer(porter.bootstrap)
    tracker = DeliveryTracker()
    for i in range(10):
        producer.produce(name, value=f"m{i}".encode(), partition=0, on_delivery=tracker)
    flush_all(producer, tracker, 10)
    assert watermarks(porter.bootstrap, name, 0) == (0, 10)

    admin = admin_client(porter.bootstrap)
    futures = admin.delete_records([TopicPartition(name, 0, 4)], request_timeout=REQUEST_S_MAX)
    (deleted,) = [f.result(timeout=REQUEST_S_MAX) for f in futures.values()]
    assert deleted.low_watermark == 4
    assert watermarks(porter.bootstrap, name, 0) == (4, 10)

    futures = admin.delete_records([TopicPartition(name, 0, 11)], request_timeout=REQUEST_S_MAX)
    with pytest.raises(KafkaException) as raised:
        [f.result(timeout=REQUEST_S_MAX) for f in futures.values()]
    assert kafka_error_code(raised.value) == KafkaError.OFFSET_OUT_OF_RANGE, raised.value

    porter.restart()
    assert watermarks(porter.bootstrap, name, 0) == (4, 10)


def test_describe_cluster(porter):
    admin = admin_client(porter.bootstrap)
    cluster = admin.describe_cluster(request_timeout=REQUEST_S_MAX).result(timeout=REQUEST_S_MAX)
    assert cluster.cluster_id
    assert cluster.controller is not None and cluster.controller.id == 0
    assert [node.id for node in cluster.nodes] == [0]
    assert cluster.nodes[0].port == porter.port


def test_create_topic_with_an_illegal_config_is_invalid_config(porter):
    with pytest.raises(KafkaException) as raised:
        create_topic(porter.bootstrap, "cfg-bad-create", 1, {"cleanup.policy": "compact,shred"})
    assert kafka_error_code(raised.value) == KafkaError.INVALID_CONFIG, raised.value
    assert "cleanup.policy" in str(raised.value), raised.value
    assert "cfg-bad-create" not in all_topics(porter.bootstrap)


# Kafka 3.7's topic configs, each with a value Kafka accepts (what librdkafka's tests 0077 and 0081
# create topics with is among them).
KAFKA_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "compression.type": "zstd",
    "delete.retention.ms": "86400",
    "file.delete.delay.ms": "10000",
    "flush.messages": "100",
    "flush.ms": "1000",
    "follower.replication.throttled.replicas": "*",
    "index.interval.bytes": "4096",
    "leader.replication.throttled.replicas": "0:0",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "100",
    "max.message.bytes": "1048588",
    "message.downconversion.enable": "true",
    "message.format.version": "3.0-IV1",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "3600000",
    "message.timestamp.difference.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1048576",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "500",
    "unclean.leader.election.enable": "false",
}


def test_every_kafka_topic_config_is_accepted_and_described(porter):
    assert len(KAFKA_TOPIC_CONFIGS) == 31
    name = "cfg-every-key"
    create_topic(porter.bootstrap, name, 1, KAFKA_TOPIC_CONFIGS)
    configs = describe_topic(porter.bootstrap, name)
    for key, value in KAFKA_TOPIC_CONFIGS.items():
        assert configs[key].value == value, (key, configs[key].value)
        assert source_of(configs[key]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, key
    # Defaults come with their source too.
    plain = "cfg-every-key-defaults"
    create_topic(porter.bootstrap, plain, 1)
    configs = describe_topic(porter.bootstrap, plain)
    assert configs["min.insync.replicas"].value == "1"
    assert configs["compression.type"].value == "producer"
    assert configs["min.cleanable.dirty.ratio"].value == "0.5"
    assert source_of(configs["compression.type"]) == ConfigSource.DEFAULT_CONFIG.value


def test_tiered_storage_is_refused_as_kafka_without_it_does(porter):
    with pytest.raises(KafkaException) as raised:
        create_topic(porter.bootstrap, "cfg-tiered", 1, {"remote.storage.enable": "true"})
    assert kafka_error_code(raised.value) == KafkaError.INVALID_CONFIG, raised.value
    assert "remote.storage.enable" in str(raised.value), raised.value


def produce_one(bootstrap: str, topic: str, acks: str, **message):
    """Produces one record; returns its delivery error (None when acknowledged)."""
    producer = make_producer(bootstrap, **{"acks": acks, "linger.ms": 0, "retries": 0, "message.timeout.ms": 10_000})
    outcome = []
    producer.produce(topic, on_delivery=lambda err, msg: outcome.append(err), **message)
    producer.flush(REQUEST_S_MAX)
    assert len(outcome) == 1
    return outcome[0]


def test_min_insync_replicas_above_one_refuses_acks_all_as_on_a_one_broker_kafka(porter):
    name = "cfg-min-isr"
    create_topic(porter.bootstrap, name, 1, {"min.insync.replicas": "2"})
    error = produce_one(porter.bootstrap, name, "all", value=b"x")
    assert error is not None and error.code() == KafkaError.NOT_ENOUGH_REPLICAS, error
    assert produce_one(porter.bootstrap, name, "1", value=b"y") is None
    assert watermarks(porter.bootstrap, name, 0) == (0, 1)


def test_timestamps_outside_the_topics_window_are_invalid_timestamp(porter):
    import time

    name = "cfg-timestamp-window"
    create_topic(porter.bootstrap, name, 1, {"message.timestamp.before.max.ms": "60000"})
    now_ms = int(time.time() * 1000)
    error = produce_one(porter.bootstrap, name, "all", value=b"old", timestamp=now_ms - 3_600_000)
    assert error is not None and error.code() == KafkaError.INVALID_TIMESTAMP, error
    assert produce_one(porter.bootstrap, name, "all", value=b"now", timestamp=now_ms) is None
    # Far in the future is fine until message.timestamp.after.max.ms says otherwise.
    assert produce_one(porter.bootstrap, name, "all", value=b"later", timestamp=now_ms + 3_600_000) is None
    incremental(porter.bootstrap, name, op("message.timestamp.after.max.ms", AlterConfigOpType.SET, "60000"))
    error = produce_one(porter.bootstrap, name, "all", value=b"later", timestamp=now_ms + 3_600_000)
    assert error is not None and error.code() == KafkaError.INVALID_TIMESTAMP, error
    assert watermarks(porter.bootstrap, name, 0) == (0, 2)
