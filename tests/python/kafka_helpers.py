"""confluent-kafka helpers shared by the end-to-end tests. Every wait is bounded.

Porter has no consumer groups yet: consumers set a group.id (confluent-kafka requires one) but only
use assign() with explicit offsets and never commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

REQUEST_S_MAX = 15.0
FLUSH_S_MAX = 90.0
CONSUME_S_MAX = 90.0


@dataclass(frozen=True)
class Received:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp_ms: int


@dataclass
class DeliveryTracker:
    """on_delivery callback: counts successes, keeps errors and per-partition offsets."""

    delivered: int = 0
    errors: list = field(default_factory=list)
    offsets: dict = field(default_factory=dict)

    def __call__(self, err, msg) -> None:
        if err is not None:
            self.errors.append((str(err), msg.partition(), msg.key()))
        else:
            self.delivered += 1
            self.offsets.setdefault(msg.partition(), []).append(msg.offset())


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int, config: dict | None = None) -> None:
    admin = admin_client(bootstrap)
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    futures = admin.create_topics([topic], operation_timeout=REQUEST_S_MAX, request_timeout=REQUEST_S_MAX)
    futures[name].result(timeout=REQUEST_S_MAX)


def all_topics(bootstrap: str) -> dict:
    """Metadata for all topics, from a fresh client (a client that named a topic may re-request
    it later, and a metadata request for one topic can auto-create it)."""
    return admin_client(bootstrap).list_topics(timeout=REQUEST_S_MAX).topics


def make_producer(bootstrap: str, **overrides) -> Producer:
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "queue.buffering.max.messages": 200_000,
        "message.timeout.ms": 60_000,
        "enable.idempotence": False,
    }
    config.update(overrides)
    return Producer(config)


def produce(producer: Producer, tracker: DeliveryTracker, deadline: float, **message) -> None:
    """produce() that waits (bounded) for queue space instead of failing with BufferError."""
    while True:
        try:
            producer.produce(on_delivery=tracker, **message)
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise TimeoutError("producer queue stayed full") from None
            producer.poll(0.05)


def flush_all(producer: Producer, tracker: DeliveryTracker, expected: int) -> None:
    remaining = producer.flush(FLUSH_S_MAX)
    assert remaining == 0, f"{remaining} messages still undelivered after {FLUSH_S_MAX} s"
    assert tracker.errors == [], f"{len(tracker.errors)} delivery errors, first: {tracker.errors[:5]}"
    assert tracker.delivered == expected, f"delivered {tracker.delivered} of {expected}"


def make_consumer(bootstrap: str, **overrides) -> Consumer:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "porter-e2e-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
    }
    config.update(overrides)
    return Consumer(config)


def consume_exactly(bootstrap: str, topic: str, expected_counts: dict[int, int]) -> dict[int, list[Received]]:
    """Reads each partition from the beginning until it has reached end-of-partition holding at
    least the expected number of records. Returns what was read, in order, per partition."""
    consumer = make_consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in expected_counts])
        received: dict[int, list[Received]] = {p: [] for p in expected_counts}
        # Length of received[p] when end-of-partition was last reported, or -1.
        eof_at = {p: -1 for p in expected_counts}
        deadline = time.monotonic() + CONSUME_S_MAX
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof_at[msg.partition()] = len(received[msg.partition()])
                        continue
                    raise AssertionError(f"consumer error on {topic}[{msg.partition()}]: {err}")
                _, timestamp_ms = msg.timestamp()
                received[msg.partition()].append(
                    Received(
                        partition=msg.partition(),
                        offset=msg.offset(),
                        key=msg.key(),
                        value=msg.value(),
                        headers=msg.headers(),
                        timestamp_ms=timestamp_ms,
                    )
                )
            if all(
                eof_at[p] == len(received[p]) and len(received[p]) >= n for p, n in expected_counts.items()
            ):
                return received
        counts = {p: len(records) for p, records in received.items()}
        raise AssertionError(
            f"{topic}: after {CONSUME_S_MAX} s read {counts}, expected {expected_counts} (eof at {eof_at})"
        )
    finally:
        consumer.close()


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    consumer = make_consumer(bootstrap)
    try:
        return consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=REQUEST_S_MAX, cached=False
        )
    finally:
        consumer.close()


def kafka_error_code(exc: BaseException) -> int | None:
    """The KafkaError code inside an exception raised by an admin future, if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


def fill_and_commit(bootstrap: str, topic: str, records: int, partitions: int, group: str,
                    committed: list[int], keep_open: bool = False):
    """Creates `topic`, produces `records` spread round-robin over its `partitions`, and commits
    `committed[p]` for partition p as `group` from outside the group protocol (assign()), the way
    an operator's tool sees a consumer group. Returns the consumer if `keep_open`, else closes it."""
    create_topic(bootstrap, topic, partitions)
    producer, tracker = make_producer(bootstrap), DeliveryTracker()
    deadline = time.monotonic() + 30
    for i in range(records):
        produce(producer, tracker, deadline, topic=topic, partition=i % partitions, value=b"%d" % i)
    flush_all(producer, tracker, records)
    consumer = make_consumer(bootstrap, **{"group.id": group, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in enumerate(committed)],
                    asynchronous=False)
    if keep_open:
        return consumer
    consumer.close()
    return None
