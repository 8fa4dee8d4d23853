"""Produce and consume with confluent-kafka (librdkafka): every codec, a graceful restart in
between, and ListOffsets by timestamp."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_END, KafkaError, TopicPartition

from kafka_helpers import (
    REQUEST_S_MAX,
    DeliveryTracker,
    consume_exactly,
    create_topic,
    flush_all,
    make_consumer,
    make_producer,
    produce,
    watermarks,
)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS = 100_000
PARTITIONS = 3
PRODUCE_S_MAX = 90.0


def record(i: int) -> dict:
    """Record i: partition i % 3, small varied values, three headers (one null on every 10th)."""
    headers = [("seq", str(i).encode()), ("origin", b"porter-e2e"), ("empty", b"")]
    if i % 10 == 0:
        headers.append(("nullable", None))
    return {
        "partition": i % PARTITIONS,
        "key": f"key-{i:06d}".encode(),
        "value": (f"value-{i:06d}:" + "abcdefgh"[: i % 9] * (1 + i % 5)).encode(),
        "headers": headers,
    }


@pytest.mark.parametrize("codec", CODECS)
def test_100k_records_round_trip_across_restart(porter, codec):
    topic = f"roundtrip-{codec}"
    create_topic(porter.bootstrap, topic, PARTITIONS)

    producer = make_producer(porter.bootstrap, **{"compression.type": codec})
    tracker = DeliveryTracker()
    deadline = time.monotonic() + PRODUCE_S_MAX
    for i in range(RECORDS):
        produce(producer, tracker, deadline, topic=topic, **record(i))
        if i % 1000 == 0:
            producer.poll(0)
    flush_all(producer, tracker, RECORDS)

    expected = {p: [] for p in range(PARTITIONS)}
    for i in range(RECORDS):
        r = record(i)
        expected[r["partition"]].append((r["key"], r["value"], r["headers"]))
    for p in range(PARTITIONS):
        assert tracker.offsets[p] == list(range(len(expected[p]))), f"acked offsets of partition {p}"

    porter.restart()

    received = consume_exactly(porter.bootstrap, topic, {p: len(expected[p]) for p in expected})
    for p in range(PARTITIONS):
        records = received[p]
        assert [r.offset for r in records] == list(range(len(expected[p]))), f"offsets of partition {p}"
        actual = [(r.key, r.value, r.headers) for r in records]
        if actual != expected[p]:
            first_bad = next(i for i, (a, e) in enumerate(zip(actual, expected[p])) if a != e)
            pytest.fail(
                f"partition {p} differs first at offset {first_bad}: "
                f"got {actual[first_bad]!r}, expected {expected[p][first_bad]!r}"
            )
        assert watermarks(porter.bootstrap, topic, p) == (0, len(expected[p]))


def offsets_for_times(bootstrap: str, topic: str, timestamps_ms: list[int]) -> list[int]:
    """One ListOffsets per timestamp: a request naming the same partition twice is not a
    meaningful query (Kafka rejects duplicates), so each lookup gets its own call."""
    consumer = make_consumer(bootstrap)
    offsets = []
    try:
        for t in timestamps_ms:
            [found] = consumer.offsets_for_times([TopicPartition(topic, 0, t)], timeout=REQUEST_S_MAX)
            assert found.error is None, f"ListOffsets error for {found}: {found.error}"
            offsets.append(found.offset)
    finally:
        consumer.close()
    return offsets


def test_list_offsets_by_timestamp_and_watermarks(porter):
    topic = "timestamps"
    create_topic(porter.bootstrap, topic, 1)
    # Recent enough that no retention or timestamp-skew rule can touch it.
    t0 = (int(time.time()) - 3600) * 1000
    producer = make_producer(porter.bootstrap, **{"linger.ms": 50})
    tracker = DeliveryTracker()
    deadline = time.monotonic() + PRODUCE_S_MAX
    for k in range(5):
        produce(producer, tracker, deadline, topic=topic, partition=0, value=f"t{k}".encode(), timestamp=t0 + 1000 * k)
    flush_all(producer, tracker, 5)

    queries = [t0 - 1, t0, t0 + 1, t0 + 1500, t0 + 2000, t0 + 4000, t0 + 4001]
    # First offset whose timestamp is >= the query; past the last record Kafka answers -1.
    wanted = [0, 0, 1, 2, 2, 4, OFFSET_END]
    assert OFFSET_END == -1
    assert offsets_for_times(porter.bootstrap, topic, queries) == wanted
    assert watermarks(porter.bootstrap, topic, 0) == (0, 5)

    porter.restart()  # the time index must survive (or be rebuilt)
    assert offsets_for_times(porter.bootstrap, topic, queries) == wanted
    assert watermarks(porter.bootstrap, topic, 0) == (0, 5)

    received = consume_exactly(porter.bootstrap, topic, {0: 5})
    assert [r.timestamp_ms for r in received[0]] == [t0 + 1000 * k for k in range(5)]


def test_compacted_topic_refuses_records_without_a_key(porter):
    """Kafka refuses a batch holding a keyless record on a compacted topic with INVALID_RECORD:
    compaction keeps the latest record per key, so a keyless one could never be kept. The keyed
    records of other batches go in."""
    topic = "compacted-needs-keys"
    create_topic(porter.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    producer = make_producer(porter.bootstrap, **{"linger.ms": 0, "retries": 0})
    outcomes = {}

    def record(err, msg):
        outcomes[msg.value()] = err

    producer.produce(topic, key=b"k", value=b"keyed", on_delivery=record)
    producer.flush(REQUEST_S_MAX)
    producer.produce(topic, value=b"keyless", on_delivery=record)
    producer.flush(REQUEST_S_MAX)
    assert outcomes[b"keyed"] is None
    error = outcomes[b"keyless"]
    assert error is not None and error.code() == KafkaError.INVALID_RECORD, error
    assert watermarks(porter.bootstrap, topic, 0) == (0, 1)
