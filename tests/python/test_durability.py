"""Acknowledged (acks=all) records survive kill -9. PORTER_CRASH_CYCLES (default 1) repeats
produce → kill -9 → restart → verify, each cycle checking everything written so far."""

from __future__ import annotations

import os
import time

from kafka_helpers import DeliveryTracker, consume_exactly, create_topic, flush_all, make_producer, produce

RECORDS_PER_CYCLE = 10_000
PRODUCE_S_MAX = 90.0


def crash_cycles() -> int:
    cycles = int(os.environ.get("PORTER_CRASH_CYCLES", "1"))
    assert cycles >= 1, f"PORTER_CRASH_CYCLES must be >= 1, got {cycles}"
    return cycles


def test_acked_records_survive_kill9(porter):
    topic = "durable"
    create_topic(porter.bootstrap, topic, 1)
    expected: list[tuple[bytes, bytes]] = []

    for cycle in range(crash_cycles()):
        producer = make_producer(porter.bootstrap)
        tracker = DeliveryTracker()
        deadline = time.monotonic() + PRODUCE_S_MAX
        batch = [
            (f"c{cycle}-k{i}".encode(), f"cycle {cycle} record {i} ".encode() * (1 + i % 3))
            for i in range(RECORDS_PER_CYCLE)
        ]
        for i, (key, value) in enumerate(batch):
            produce(producer, tracker, deadline, topic=topic, partition=0, key=key, value=value)
            if i % 1000 == 0:
                producer.poll(0)
        flush_all(producer, tracker, RECORDS_PER_CYCLE)
        del producer
        expected.extend(batch)

        porter.kill9_restart()

        received = consume_exactly(porter.bootstrap, topic, {0: len(expected)})[0]
        assert [r.offset for r in received] == list(range(len(expected))), f"offsets after cycle {cycle}"
        actual = [(r.key, r.value) for r in received]
        assert len(actual) == len(expected), f"cycle {cycle}: {len(actual)} records, expected {len(expected)}"
        if actual != expected:
            first_bad = next(i for i, (a, e) in enumerate(zip(actual, expected)) if a != e)
            raise AssertionError(
                f"cycle {cycle}: record {first_bad} is {actual[first_bad]!r}, expected {expected[first_bad]!r}"
            )
