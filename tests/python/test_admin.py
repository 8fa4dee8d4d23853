"""CreateTopics / DeleteTopics / Metadata through confluent-kafka's AdminClient."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from kafka_helpers import REQUEST_S_MAX, admin_client, all_topics, create_topic, kafka_error_code


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
