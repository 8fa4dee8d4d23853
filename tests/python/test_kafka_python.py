"""kafka-python, a second Kafka client written independently of librdkafka (its own protocol
encoders, version negotiation, compression and group coordinator): produce with gzip, lz4 and
snappy, consume in a group with manual commits, resume after a restart from the committed offset,
and the admin client's topic and group calls."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from kafka.structs import OffsetAndMetadata

PARTITIONS = 3
RECORDS = 3000
REQUEST_MS = 15_000
CONSUME_S_MAX = 60.0
CODECS = ["gzip", "lz4", "snappy"]


def admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="porter-e2e-admin", request_timeout_ms=REQUEST_MS)


def make_consumer(bootstrap: str, group: str, topic: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=f"porter-e2e-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=100,
        request_timeout_ms=REQUEST_MS + 15_000,
    )


def consume(consumer: KafkaConsumer, want: int, commit_every: int | None = None) -> list:
    """Polls until `want` records arrived (bounded); with commit_every, commits the consumed
    positions each time that many more records have been read."""
    records = []
    since_commit = 0
    deadline = time.monotonic() + CONSUME_S_MAX
    while len(records) < want:
        assert time.monotonic() < deadline, f"read {len(records)} of {want} records in {CONSUME_S_MAX} s"
        for batch in consumer.poll(timeout_ms=200, max_records=min(500, want - len(records))).values():
            records.extend(batch)
            since_commit += len(batch)
        if commit_every and since_commit >= commit_every:
            consumer.commit()
            since_commit = 0
    return records


def produce(bootstrap: str, topic: str, codec: str, start: int, count: int, partitions: int = PARTITIONS) -> dict[int, list[int]]:
    """Records start..start+count-1 (number n to partition n % partitions, key and value carry n);
    returns partition -> acknowledged offsets, in send order."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=codec,
        linger_ms=5,
        batch_size=32 * 1024,
        request_timeout_ms=REQUEST_MS,
    )
    try:
        futures = [
            (n % partitions, producer.send(
                topic,
                key=f"k{n}".encode(),
                value=(f"record {n} " + "payload " * (n % 7)).encode(),
                headers=[("n", str(n).encode())],
                partition=n % partitions,
            ))
            for n in range(start, start + count)
        ]
        producer.flush(timeout=CONSUME_S_MAX)
        offsets: dict[int, list[int]] = {}
        for partition, future in futures:
            metadata = future.get(timeout=REQUEST_MS / 1000)
            assert metadata.partition == partition
            offsets.setdefault(partition, []).append(metadata.offset)
        return offsets
    finally:
        producer.close(timeout=10)


def number(record) -> int:
    return int(record.key.decode()[1:])


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_produce_group_consume_and_resume(porter, codec):
    bootstrap = porter.bootstrap
    topic, group = f"kp-{codec}", f"kp-group-{codec}"
    client = admin(bootstrap)
    try:
        client.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=REQUEST_MS)
    finally:
        client.close()

    acked = produce(bootstrap, topic, codec, 0, RECORDS)
    per_partition = RECORDS // PARTITIONS
    for p in range(PARTITIONS):
        assert acked[p] == list(range(per_partition)), f"acked offsets of partition {p}"

    # First consumer: reads two thirds, committing as it goes, then stops (LeaveGroup on close).
    first_part = 2 * RECORDS // 3
    consumer = make_consumer(bootstrap, group, topic)
    try:
        records = consume(consumer, first_part, commit_every=250)
        consumer.commit()
        positions = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
    finally:
        consumer.close()
    assert len(records) == first_part
    for r in records:
        assert r.partition == number(r) % PARTITIONS
        assert r.value == (f"record {number(r)} " + "payload " * (number(r) % 7)).encode()
        assert r.headers == [("n", str(number(r)).encode())]
    for p in range(PARTITIONS):
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == list(range(len(offsets))), f"partition {p} read out of order or with gaps"
        assert positions.get(p, 0) == len(offsets)

    client = admin(bootstrap)
    try:
        committed = client.list_consumer_group_offsets(group)
        assert {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic} == {
            p: positions.get(p, 0) for p in range(PARTITIONS)
        }
        groups = {entry[0] for entry in client.list_consumer_groups()}
        assert group in groups
    finally:
        client.close()

    # Restarted consumer: resumes at the committed offsets and reads exactly the rest.
    consumer = make_consumer(bootstrap, group, topic)
    try:
        rest = consume(consumer, RECORDS - first_part)
        consumer.commit()
        extra = consumer.poll(timeout_ms=500)
    finally:
        consumer.close()
    assert sum(len(batch) for batch in extra.values()) == 0, "read past the end"
    for p in range(PARTITIONS):
        offsets = [r.offset for r in rest if r.partition == p]
        assert offsets == list(range(positions.get(p, 0), per_partition)), f"partition {p} did not resume at its commit"
    assert sorted(number(r) for r in records + rest) == list(range(RECORDS))


def topic_names(bootstrap: str) -> set[str]:
    """Topic names from a plain client's Metadata (not the admin client's)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_MS + 15_000)
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


def test_admin_lists_and_describes_topics(porter):
    """KafkaAdminClient asks Metadata v8 for authorized operations (include_*_authorized_operations
    = true); Kafka answers with the operations allowed (all of a resource's, without an authorizer)."""
    client = admin(porter.bootstrap)
    try:
        client.create_topics([NewTopic("kp-listed", num_partitions=2, replication_factor=1)], timeout_ms=REQUEST_MS)
        assert "kp-listed" in client.list_topics()
        [described] = client.describe_topics(["kp-listed"])
        assert described["error_code"] == 0
        assert sorted(p["partition"] for p in described["partitions"]) == [0, 1]
        assert {"READ", "WRITE", "DESCRIBE"} <= set(described["authorized_operations"])
    finally:
        client.close()


def test_admin_topics_and_explicit_offset_commits(porter):
    bootstrap = porter.bootstrap
    client = admin(bootstrap)
    try:
        client.create_topics([NewTopic("kp-admin", num_partitions=2, replication_factor=1)], timeout_ms=REQUEST_MS)
        with pytest.raises(TopicAlreadyExistsError):
            client.create_topics([NewTopic("kp-admin", num_partitions=2, replication_factor=1)], timeout_ms=REQUEST_MS)
        assert "kp-admin" in topic_names(bootstrap)
        produce(bootstrap, "kp-admin", "gzip", 0, 20, partitions=2)

        # Explicit commits (with metadata) from a group member, read back through the admin client.
        consumer = make_consumer(bootstrap, "kp-explicit", "kp-admin")
        try:
            consume(consumer, 1)
            consumer.commit({
                TopicPartition("kp-admin", 0): OffsetAndMetadata(3, "three", -1),
                TopicPartition("kp-admin", 1): OffsetAndMetadata(5, "five", -1),
            })
            assert consumer.committed(TopicPartition("kp-admin", 0)) == 3
        finally:
            consumer.close()
        offsets = client.list_consumer_group_offsets("kp-explicit")
        assert {(tp.partition, meta.offset, meta.metadata) for tp, meta in offsets.items()} == {
            (0, 3, "three"), (1, 5, "five"),
        }
        assert "kp-explicit" in {entry[0] for entry in client.list_consumer_groups()}

        client.delete_topics(["kp-admin"], timeout_ms=REQUEST_MS)
        deadline = time.monotonic() + REQUEST_MS / 1000
        while "kp-admin" in topic_names(bootstrap):
            assert time.monotonic() < deadline, "deleted topic still listed"
            time.sleep(0.1)
        with pytest.raises(UnknownTopicOrPartitionError):
            client.delete_topics(["kp-admin"], timeout_ms=REQUEST_MS)
    finally:
        client.close()
