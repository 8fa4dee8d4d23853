"""Consumer groups as a Kafka user relies on them, with confluent-kafka (librdkafka): members share a
topic's partitions, rebalance when members join, leave or die, resume from committed offsets, keep
them across a broker kill -9; static membership, the cooperative protocol, the group admin APIs,
and the coordinator's answers to commits from a stale generation or an unknown member.

Consumers here commit synchronously after each processed batch and in the revoke callback, the usual
at-least-once pattern; a record is processed twice only after a member died before committing it.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from kafka_helpers import (
    REQUEST_S_MAX,
    DeliveryTracker,
    admin_client,
    create_topic,
    flush_all,
    kafka_error_code,
    make_producer,
    produce,
    watermarks,
)

PARTITIONS = 6
SESSION_MS = 6000
HEARTBEAT_MS = 500
# Rebalances here take the 500 ms initial delay plus a join round; 30 s is a hung group, not a slow one.
REBALANCE_S_MAX = 30.0
PRODUCE_S_MAX = 60.0
HERE = Path(__file__).resolve().parent


def produce_numbers(bootstrap: str, topic: str, start: int, count: int) -> dict[int, list[int]]:
    """Records start..start+count-1, number n to partition n % PARTITIONS, value str(n).
    Returns partition -> acknowledged offsets."""
    producer = make_producer(bootstrap)
    tracker = DeliveryTracker()
    deadline = time.monotonic() + PRODUCE_S_MAX
    for n in range(start, start + count):
        produce(producer, tracker, deadline, topic=topic, partition=n % PARTITIONS, value=str(n).encode())
    flush_all(producer, tracker, count)
    return tracker.offsets


class Ledger:
    """Who processed which record, what was committed, every assignment change."""

    def __init__(self):
        self.lock = threading.Lock()
        self.processed: dict[tuple[int, int], list[str]] = defaultdict(list)  # (partition, offset) -> members
        self.values: dict[tuple[int, int], bytes] = {}
        self.commit_errors: list[tuple[str, str]] = []
        self.last_commit: dict[str, dict[int, int]] = defaultdict(dict)  # member -> partition -> offset
        self.assignments: dict[str, set[int]] = {}
        self.events: list[tuple[float, str, str, list[int]]] = []  # (time, member, kind, partitions)

    def on_processed(self, member: str, partition: int, offset: int, value: bytes) -> None:
        with self.lock:
            self.processed[(partition, offset)].append(member)
            self.values[(partition, offset)] = value

    def on_committed(self, member: str, offsets: dict[int, int]) -> None:
        with self.lock:
            self.last_commit[member].update(offsets)

    def on_commit_error(self, member: str, error: str) -> None:
        with self.lock:
            self.commit_errors.append((member, error))

    def on_rebalance(self, member: str, kind: str, partitions: list[int], assignment: set[int]) -> None:
        with self.lock:
            self.events.append((time.monotonic(), member, kind, sorted(partitions)))
            self.assignments[member] = set(assignment)

    def events_of(self, member: str, since: float = 0.0) -> list[tuple[str, list[int]]]:
        with self.lock:
            return [(kind, parts) for t, m, kind, parts in self.events if m == member and t >= since]


class Member:
    """One group member: subscribe(), consume, process (into the ledger), commit after each batch
    and on revoke. Incremental (cooperative) or eager callbacks both keep `assignment` right.

    Each member polls in its own thread, as applications do: a member blocked in a synchronous
    commit (which waits behind its own pending JoinGroup on the coordinator connection) must not
    stop the others from serving the rebalance that JoinGroup waits for."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, ledger, threaded: bool = True, **overrides):
        self.name = name
        self.topic = topic
        self.ledger = ledger
        self.assignment: set[int] = set()
        self.pending: dict[int, int] = {}  # processed but not yet committed: partition -> next offset
        self.first_offsets: dict[int, int] = {}  # first offset this member consumed, per partition
        self.member_id: str | None = None
        self.cooperative = overrides.get("partition.assignment.strategy") == "cooperative-sticky"
        config = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "max.poll.interval.ms": 60_000,
            "fetch.wait.max.ms": 100,
        }
        config.update(overrides)
        self.consumer = Consumer(config)
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.closed = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step(0.05)
        except BaseException as e:  # noqa: BLE001 - surfaced by pump()
            self.error = e

    def _on_assign(self, consumer, partitions) -> None:
        self.member_id = consumer.memberid()
        added = [tp.partition for tp in partitions]
        if self.cooperative:
            self.assignment = self.assignment | set(added)
        else:
            self.assignment = set(added)
        self.ledger.on_rebalance(self.name, "assign", added, self.assignment)

    def _on_revoke(self, consumer, partitions) -> None:
        removed = [tp.partition for tp in partitions]
        self._commit(only=set(removed))
        for p in removed:
            self.pending.pop(p, None)
        self.assignment = self.assignment - set(removed)
        self.ledger.on_rebalance(self.name, "revoke", removed, self.assignment)

    def _on_lost(self, consumer, partitions) -> None:
        lost = [tp.partition for tp in partitions]
        for p in lost:
            self.pending.pop(p, None)
        self.assignment = self.assignment - set(lost)
        self.ledger.on_rebalance(self.name, "lost", lost, self.assignment)

    def _commit(self, only: set[int] | None = None) -> None:
        offsets = {p: o for p, o in self.pending.items() if only is None or p in only}
        if not offsets:
            return
        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())], asynchronous=False
            )
        except KafkaException as e:
            # A commit refused during a rebalance means redelivery (at-least-once), not loss; kept
            # in the ledger so an assertion on duplicates can say why.
            self.ledger.on_commit_error(self.name, str(e))
            return
        for p, o in offsets.items():
            if self.pending.get(p) == o:
                del self.pending[p]
        self.ledger.on_committed(self.name, offsets)

    def step(self, timeout: float = 0.05) -> int:
        """One consume() and the processing and commit of what it returned."""
        messages = self.consumer.consume(num_messages=1000, timeout=timeout)
        count = 0
        for msg in messages:
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"{self.name}: consumer error {msg.error()}")
            p, o = msg.partition(), msg.offset()
            self.first_offsets.setdefault(p, o)
            self.ledger.on_processed(self.name, p, o, msg.value())
            self.pending[p] = o + 1
            count += 1
        self._commit()
        return count

    def close(self) -> None:
        """Stops the polling thread, then closes the consumer (for a dynamic member: LeaveGroup)."""
        if not self.closed:
            self.closed = True
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=REBALANCE_S_MAX)
                assert not self._thread.is_alive(), f"{self.name}: polling thread stuck"
            self.consumer.close()


def pump(members: list[Member], done, what: str, timeout_s: float = REBALANCE_S_MAX, describe=None) -> float:
    """Waits, while the members poll in their threads, until done() holds; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        for m in members:
            if m.error is not None:
                raise AssertionError(f"member {m.name} failed: {m.error!r}") from m.error
        if done():
            return time.monotonic() - start
        time.sleep(0.02)
    state = {m.name: sorted(m.assignment) for m in members}
    extra = f"; {describe()}" if describe else ""
    ledger = members[0].ledger if members else None
    history = [(round(t - start, 2), name, kind, parts) for t, name, kind, parts in ledger.events] if ledger else []
    raise AssertionError(
        f"after {timeout_s} s, not yet: {what}; assignments {state}{extra}; rebalance callbacks "
        f"(s since this wait, member, kind, partitions): {history[-20:]}"
    )


def assignments_cover(owners: dict[str, set[int]]) -> bool:
    """Every partition assigned exactly once across the given owners, and none left out."""
    every = [p for parts in owners.values() for p in parts]
    return sorted(every) == list(range(PARTITIONS))


def all_processed(ledger: Ledger, expected: dict[int, int]) -> bool:
    with ledger.lock:
        return all((p, o) in ledger.processed for p, n in expected.items() for o in range(n))


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """OffsetFetch from a consumer outside the group's membership (a member's own consumer is
    polled by its thread; librdkafka handles are not for concurrent use)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=REQUEST_S_MAX)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed}


def end_offsets(counts: dict[int, int], acked: dict[int, list[int]]) -> None:
    for p, offsets in acked.items():
        counts[p] = max(counts.get(p, 0), max(offsets) + 1)


# --- a member in a child process, to be SIGKILLed (it never leaves the group) ---

CHILD_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from test_groups import Member

class PrintLedger:
    def emit(self, **event):
        print(json.dumps(event), flush=True)
    def on_processed(self, member, partition, offset, value):
        self.emit(kind="processed", partition=partition, offset=offset, value=value.decode())
    def on_committed(self, member, offsets):
        self.emit(kind="committed", offsets={str(p): o for p, o in offsets.items()})
    def on_commit_error(self, member, error):
        self.emit(kind="commit_error", error=error)
    def on_rebalance(self, member, kind, partitions, assignment):
        self.emit(kind=kind, partitions=sorted(partitions), assignment=sorted(assignment))

bootstrap, group, topic, name = sys.argv[2:6]
member = Member(bootstrap, group, topic, name, PrintLedger(), threaded=False)
while True:
    member.step(0.05)
"""


class ChildMember:
    """A Member running in its own Python process; its ledger events arrive on stdout."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, ledger: Ledger):
        self.name = name
        self.ledger = ledger
        self.assignment: set[int] = set()
        self.committed: dict[int, int] = {}
        self.ever_owned: set[int] = set()
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD_SCRIPT, str(HERE), bootstrap, group, topic, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event["kind"]
            if kind == "processed":
                self.ledger.on_processed(self.name, event["partition"], event["offset"], event["value"].encode())
            elif kind == "committed":
                offsets = {int(p): o for p, o in event["offsets"].items()}
                self.committed.update(offsets)
                self.ledger.on_committed(self.name, offsets)
            elif kind == "commit_error":
                self.ledger.on_commit_error(self.name, event["error"])
            else:
                self.assignment = set(event["assignment"])
                self.ever_owned |= self.assignment
                self.ledger.on_rebalance(self.name, kind, event["partitions"], self.assignment)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)


# --- tests ---


def test_group_shares_partitions_through_join_leave_and_crash(porter):
    bootstrap = porter.bootstrap
    topic, group = "shared", "workers"
    create_topic(bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    counts: dict[int, int] = {}
    produced = 0

    def add_records(n: int) -> None:
        nonlocal produced
        end_offsets(counts, produce_numbers(bootstrap, topic, produced, n))
        produced += n

    def state() -> str:
        return f"commit errors {ledger.commit_errors[:3]}; counts {counts}"

    add_records(1200)
    members = [Member(bootstrap, group, topic, f"c{i}", ledger) for i in range(3)]
    child = None
    try:
        # Three members: two partitions each, every record processed.
        pump(
            members,
            lambda: all(len(m.assignment) == 2 for m in members)
            and assignments_cover({m.name: m.assignment for m in members})
            and all_processed(ledger, counts),
            "3 members with 2 partitions each, 1200 records processed",
            describe=state,
        )

        # A fourth joins: everyone rebalances and all four own partitions.
        members.append(Member(bootstrap, group, topic, "c3", ledger))
        add_records(1200)
        pump(
            members,
            lambda: all(m.assignment for m in members)
            and assignments_cover({m.name: m.assignment for m in members})
            and all_processed(ledger, counts),
            "4 members each owning partitions, 2400 records processed",
            describe=state,
        )

        # One closes (LeaveGroup): its partitions move to the other three at once (no session wait).
        leaving = members.pop(1)
        left_behind = set(leaving.assignment)
        leaving.close()
        add_records(1200)
        took = pump(
            members,
            lambda: assignments_cover({m.name: m.assignment for m in members}) and all_processed(ledger, counts),
            f"c1's partitions {sorted(left_behind)} reassigned after LeaveGroup, 3600 records processed",
            describe=state,
        )
        assert took < SESSION_MS / 1000, f"reassignment after LeaveGroup took {took:.1f} s: the leave was ignored"

        # A member in another process joins and takes work; then it is SIGKILLed (no LeaveGroup).
        child = ChildMember(bootstrap, group, topic, "killed", ledger)
        add_records(1200)
        pump(
            members,
            lambda: bool(child.assignment)
            and assignments_cover({**{m.name: m.assignment for m in members}, child.name: child.assignment})
            and all_processed(ledger, counts),
            "the child member owns partitions, 4800 records processed",
            describe=state,
        )
        orphaned = set(child.assignment)
        child.kill()
        killed_at = time.monotonic()
        add_records(1200)
        pump(
            members,
            lambda: assignments_cover({m.name: m.assignment for m in members}) and all_processed(ledger, counts),
            f"the killed member's partitions {sorted(orphaned)} reassigned, 6000 records processed",
            timeout_s=SESSION_MS / 1000 + REBALANCE_S_MAX,
            describe=state,
        )
        took = time.monotonic() - killed_at
        # The child heartbeat every 0.5 s, so its session could not expire sooner than 5.5 s after the kill.
        assert took >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.5, f"partitions of a silent member moved after {took:.1f} s"

        # Committed offsets: every partition's committed offset is its end offset.
        assert committed_offsets(bootstrap, group, topic, PARTITIONS) == counts
        for p in range(PARTITIONS):
            assert watermarks(bootstrap, topic, p) == (0, counts[p])

        # At least once: every record processed; more than once only where the killed member had
        # processed it without a commit that stuck.
        expected = {(p, o) for p, n in counts.items() for o in range(n)}
        assert set(ledger.processed) == expected
        for (p, o), value in ledger.values.items():
            assert int(value) % PARTITIONS == p
        duplicates = {key: who for key, who in ledger.processed.items() if len(who) > 1}
        unexplained = {
            (p, o): who
            for (p, o), who in duplicates.items()
            if not ("killed" in who and o >= child.committed.get(p, 0))
        }
        assert unexplained == {}, (
            f"{len(unexplained)} records processed twice although committed (first: "
            f"{sorted(unexplained.items())[:5]}); commit errors: {ledger.commit_errors[:5]}"
        )
    finally:
        if child is not None and child.process.poll() is None:
            child.kill()
        for m in members:
            m.close()

    # A restarted consumer resumes at the committed offsets, not at the beginning.
    before = dict(counts)
    add_records(60)
    resumed = Member(bootstrap, group, topic, "resumed", ledger)
    try:
        pump(
            [resumed],
            lambda: len(resumed.assignment) == PARTITIONS and all_processed(ledger, counts)
            and all(resumed.pending.get(p) is None for p in range(PARTITIONS)),
            "a restarted member takes all 6 partitions and reads the 60 new records",
            describe=state,
        )
        assert resumed.first_offsets == before, "the restarted member did not start at the committed offsets"
    finally:
        resumed.close()


def test_cooperative_sticky_incremental_rebalances(porter):
    bootstrap = porter.bootstrap
    topic, group = "cooperative", "coop-workers"
    create_topic(bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    counts: dict[int, int] = {}
    end_offsets(counts, produce_numbers(bootstrap, topic, 0, 600))
    coop = {"partition.assignment.strategy": "cooperative-sticky"}
    a, b = (Member(bootstrap, group, topic, name, ledger, **coop) for name in ("a", "b"))
    members = [a, b]
    try:
        pump(
            members,
            lambda: len(a.assignment) == 3 and len(b.assignment) == 3
            and assignments_cover({"a": a.assignment, "b": b.assignment}) and all_processed(ledger, counts),
            "a and b with 3 partitions each",
        )
        a_before, b_before = set(a.assignment), set(b.assignment)

        # c joins: a and b each give up exactly one partition and keep the others (no stop-the-world).
        joined_at = time.monotonic()
        c = Member(bootstrap, group, topic, "c", ledger, **coop)
        members.append(c)
        end_offsets(counts, produce_numbers(bootstrap, topic, 600, 600))
        pump(
            members,
            lambda: all(len(m.assignment) == 2 for m in members)
            and assignments_cover({m.name: m.assignment for m in members}) and all_processed(ledger, counts),
            "a, b, c with 2 partitions each",
        )
        assert a.assignment < a_before and b.assignment < b_before, "sticky: a and b keep two of their three"
        for m, before in ((a, a_before), (b, b_before)):
            revoked = [parts for kind, parts in ledger.events_of(m.name, joined_at) if kind == "revoke"]
            assigned = [parts for kind, parts in ledger.events_of(m.name, joined_at) if kind == "assign"]
            assert revoked == [sorted(before - m.assignment)], f"{m.name}: incremental revokes {revoked}"
            assert all(parts == [] for parts in assigned), f"{m.name}: assigned {assigned} while giving up"
        assert sorted(p for kind, parts in ledger.events_of("c") if kind == "assign" for p in parts) == sorted(
            c.assignment
        )

        # a leaves: its two partitions go to b and c, who revoke nothing.
        a_had = set(a.assignment)
        left_at = time.monotonic()
        a.close()
        members.remove(a)
        end_offsets(counts, produce_numbers(bootstrap, topic, 1200, 600))
        pump(
            members,
            lambda: len(b.assignment) == 3 and len(c.assignment) == 3
            and assignments_cover({"b": b.assignment, "c": c.assignment}) and all_processed(ledger, counts),
            "b and c with 3 partitions each after a left",
        )
        for m in members:
            events = ledger.events_of(m.name, left_at)
            assert all(not parts for kind, parts in events if kind in ("revoke", "lost")), f"{m.name}: {events}"
        gained = {p for m in members for kind, parts in ledger.events_of(m.name, left_at) if kind == "assign" for p in parts}
        assert gained == a_had

        assert committed_offsets(bootstrap, group, topic, PARTITIONS) == counts
        assert set(ledger.processed) == {(p, o) for p, n in counts.items() for o in range(n)}
        duplicates = {k: v for k, v in ledger.processed.items() if len(v) > 1}
        assert duplicates == {}, f"records processed twice: {sorted(duplicates.items())[:5]}; {ledger.commit_errors[:3]}"
    finally:
        for m in members:
            m.close()


def test_static_member_restart_keeps_partitions_without_rebalance(porter):
    bootstrap = porter.bootstrap
    topic, group = "static", "static-workers"
    create_topic(bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    counts: dict[int, int] = {}
    end_offsets(counts, produce_numbers(bootstrap, topic, 0, 600))

    def static(i: int) -> Member:
        return Member(bootstrap, group, topic, f"s{i}", ledger, **{"group.instance.id": f"instance-{i}"})

    members = [static(i) for i in range(3)]
    try:
        pump(
            members,
            lambda: all(len(m.assignment) == 2 for m in members)
            and assignments_cover({m.name: m.assignment for m in members}) and all_processed(ledger, counts),
            "3 static members with 2 partitions each",
        )
        owned = {m.name: set(m.assignment) for m in members}
        committed_before = {p: n for p, n in counts.items()}

        # s1 closes (a static member sends no LeaveGroup) and comes back at once with the same id.
        restart_at = time.monotonic()
        members[1].close()
        members[1] = static(1)
        end_offsets(counts, produce_numbers(bootstrap, topic, 600, 600))
        pump(
            members,
            lambda: members[1].assignment == owned["s1"] and all_processed(ledger, counts),
            "the restarted static member gets its partitions back and the new records are processed",
            timeout_s=SESSION_MS / 1000 - 1,  # within the session: no expiry may be involved
        )
        # Let a would-be rebalance show itself, then check the others saw none.
        time.sleep(2.0)
        for m in (members[0], members[2]):
            assert ledger.events_of(m.name, restart_at) == [], f"{m.name} was rebalanced: {ledger.events_of(m.name, restart_at)}"
            assert m.assignment == owned[m.name]
        assert {p: members[1].first_offsets[p] for p in owned["s1"]} == {p: committed_before[p] for p in owned["s1"]}

        [description] = describe_groups(bootstrap, [group])
        assert description.state == ConsumerGroupState.STABLE
        by_instance = {m.group_instance_id: m for m in description.members}
        assert sorted(by_instance) == ["instance-0", "instance-1", "instance-2"]
        for i in range(3):
            parts = {tp.partition for tp in by_instance[f"instance-{i}"].assignment.topic_partitions}
            assert parts == owned[f"s{i}"]
        assert by_instance["instance-1"].member_id == members[1].member_id
    finally:
        for m in members:
            m.close()


def test_committed_offsets_survive_kill9(porter):
    bootstrap = porter.bootstrap
    topic, group = "durable-offsets", "durable-group"
    create_topic(bootstrap, topic, 3)
    for p in range(3):
        producer = make_producer(bootstrap)
        tracker = DeliveryTracker()
        deadline = time.monotonic() + PRODUCE_S_MAX
        for i in range(50):
            produce(producer, tracker, deadline, topic=topic, partition=p, value=f"p{p}-{i}".encode())
        flush_all(producer, tracker, 50)
    wanted = {0: 17, 1: 33, 2: 50}

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + REBALANCE_S_MAX
        while len(consumer.assignment()) < 3:
            assert time.monotonic() < deadline, "no assignment"
            consumer.poll(0.1)
        consumer.commit(
            offsets=[TopicPartition(topic, p, o, metadata=f"checkpoint-{p}") for p, o in wanted.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()

    porter.kill9_restart()

    admin = admin_client(bootstrap)
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=REQUEST_S_MAX)[group]
    listed = future.result(timeout=REQUEST_S_MAX)
    assert {tp.partition: tp.offset for tp in listed.topic_partitions if tp.topic == topic} == wanted

    resumed = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    resumed.subscribe([topic])
    try:
        committed = resumed.committed([TopicPartition(topic, p) for p in range(3)], timeout=REQUEST_S_MAX)
        assert {tp.partition: (tp.offset, tp.metadata) for tp in committed} == {
            p: (o, f"checkpoint-{p}") for p, o in wanted.items()
        }
        first: dict[int, str] = {}
        deadline = time.monotonic() + REBALANCE_S_MAX
        while len(first) < 2:
            assert time.monotonic() < deadline, f"resumed consumer read only {first}"
            msg = resumed.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            first.setdefault(msg.partition(), (msg.offset(), msg.value().decode()))
        assert first == {0: (17, "p0-17"), 1: (33, "p1-33")}
    finally:
        resumed.close()


def describe_groups(bootstrap: str, groups: list[str]):
    admin = admin_client(bootstrap)  # kept referenced until the futures complete: destroying it fails them
    futures = admin.describe_consumer_groups(groups, request_timeout=REQUEST_S_MAX)
    return [futures[g].result(timeout=REQUEST_S_MAX) for g in groups]


def list_groups(bootstrap: str) -> dict[str, object]:
    admin = admin_client(bootstrap)
    result = admin.list_consumer_groups(request_timeout=REQUEST_S_MAX).result(timeout=REQUEST_S_MAX)
    assert result.errors == [], f"ListGroups errors {result.errors}"
    return {listing.group_id: listing for listing in result.valid}


def test_list_describe_delete_groups(porter):
    bootstrap = porter.bootstrap
    topic, group = "admin-groups", "admin-group"
    create_topic(bootstrap, topic, 2)
    ledger = Ledger()
    member = Member(bootstrap, group, topic, "only", ledger)
    admin = admin_client(bootstrap)
    try:
        pump([member], lambda: member.assignment == {0, 1}, "the single member owns both partitions")
        listed = list_groups(bootstrap)
        assert group in listed
        assert listed[group].state == ConsumerGroupState.STABLE
        assert listed[group].is_simple_consumer_group is False

        [description] = describe_groups(bootstrap, [group])
        assert description.group_id == group
        assert description.state == ConsumerGroupState.STABLE
        assert description.partition_assignor == "range"
        [m] = description.members
        assert m.client_id == "only"
        assert m.member_id == member.member_id
        assert {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} == {(topic, 0), (topic, 1)}

        # Deleting a group that has members is refused.
        future = admin.delete_consumer_groups([group], request_timeout=REQUEST_S_MAX)[group]
        with pytest.raises(KafkaException) as refused:
            future.result(timeout=REQUEST_S_MAX)
        assert kafka_error_code(refused.value) == KafkaError.NON_EMPTY_GROUP, str(refused.value)
    finally:
        member.close()

    [description] = describe_groups(bootstrap, [group])
    assert description.state == ConsumerGroupState.EMPTY and description.members == []

    admin.delete_consumer_groups([group], request_timeout=REQUEST_S_MAX)[group].result(timeout=REQUEST_S_MAX)
    assert group not in list_groups(bootstrap)

    # A group that does not exist (any more): GROUP_ID_NOT_FOUND.
    future = admin.delete_consumer_groups([group], request_timeout=REQUEST_S_MAX)[group]
    with pytest.raises(KafkaException) as missing:
        future.result(timeout=REQUEST_S_MAX)
    assert kafka_error_code(missing.value) == KafkaError.GROUP_ID_NOT_FOUND, str(missing.value)


# --- raw protocol: the coordinator's errors (kafka-python's request classes, our own socket) ---


class Wire:
    """One connection to the broker; send() encodes a kafka-python request (non-flexible versions
    only: a v1 request header, a v0 response header) and decodes its response."""

    def __init__(self, bootstrap: str):
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=REQUEST_S_MAX)
        self.correlation_id = 0

    def send(self, request):
        from kafka.protocol.api import RequestHeader

        assert not getattr(request, "FLEXIBLE_VERSION", False)
        self.correlation_id += 1
        header = RequestHeader(request, correlation_id=self.correlation_id, client_id="porter-e2e-raw")
        payload = header.encode() + request.encode()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", self._read(4))[0]
        reply = self._read(size)
        assert struct.unpack(">i", reply[:4])[0] == self.correlation_id
        return request.RESPONSE_TYPE.decode(reply[4:])

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "broker closed the connection"
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def consumer_subscription(topic: str) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, null user data."""
    raw = topic.encode()
    return struct.pack(">hih", 0, 1, len(raw)) + raw + struct.pack(">i", -1)


def consumer_assignment(topic: str, partitions: list[int]) -> bytes:
    """ConsumerProtocolAssignment v0: version, [topic, [partition]], null user data."""
    raw = topic.encode()
    return (
        struct.pack(">hih", 0, 1, len(raw)) + raw + struct.pack(">i", len(partitions))
        + b"".join(struct.pack(">i", p) for p in partitions) + struct.pack(">i", -1)
    )


NONE, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED = 0, 22, 25, 27, 79


class RawGroupClient:
    """Group requests by hand, one connection, for one topic's partition 0 commits."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        self.wire = Wire(bootstrap)
        self.group = group
        self.topic = topic

    def join(self, member_id: str):
        from kafka.protocol.group import JoinGroupRequest_v5

        return self.wire.send(
            JoinGroupRequest_v5(
                group=self.group, session_timeout=10_000, rebalance_timeout=10_000, member_id=member_id,
                group_instance_id=None, protocol_type="consumer",
                group_protocols=[("range", consumer_subscription(self.topic))],
            )
        )

    def join_as_new_member(self):
        """KIP-394: the first JoinGroup without a member id is answered with one to rejoin with."""
        first = self.join("")
        assert first.error_code == MEMBER_ID_REQUIRED, first
        assert first.member_id
        return self.join(first.member_id)

    def sync(self, generation: int, member_id: str, assignment: list[tuple[str, bytes]]):
        from kafka.protocol.group import SyncGroupRequest_v3

        return self.wire.send(
            SyncGroupRequest_v3(
                group=self.group, generation_id=generation, member_id=member_id, group_instance_id=None,
                group_assignment=assignment,
            )
        )

    def commit(self, generation: int, member_id: str, offset: int, group_id: str | None = None) -> int:
        from kafka.protocol.commit import OffsetCommitRequest_v7

        response = self.wire.send(
            OffsetCommitRequest_v7(
                group_id=group_id or self.group, generation_id=generation, member_id=member_id,
                group_instance_id=None, topics=[(self.topic, [(0, offset, -1, "")])],
            )
        )
        [(name, [(partition, error_code)])] = response.topics
        assert (name, partition) == (self.topic, 0)
        return error_code

    def fetch_committed(self, group_id: str | None = None) -> int:
        from kafka.protocol.commit import OffsetFetchRequest_v5

        response = self.wire.send(OffsetFetchRequest_v5(consumer_group=group_id or self.group, topics=[(self.topic, [0])]))
        assert response.error_code == NONE
        [(_, [(_, offset, _, _, error_code)])] = response.topics
        assert error_code == NONE
        return offset

    def heartbeat(self, generation: int, member_id: str) -> int:
        from kafka.protocol.group import HeartbeatRequest_v3

        return self.wire.send(
            HeartbeatRequest_v3(group=self.group, generation_id=generation, member_id=member_id, group_instance_id=None)
        ).error_code

    def leave(self, member_id: str) -> int:
        from kafka.protocol.group import LeaveGroupRequest_v2

        return self.wire.send(LeaveGroupRequest_v2(group=self.group, member_id=member_id)).error_code

    def close(self) -> None:
        self.wire.close()


def test_coordinator_rejects_stale_generation_and_unknown_member(porter):
    topic, group = "raw-commits", "raw-group"
    create_topic(porter.bootstrap, topic, 2)
    raw = RawGroupClient(porter.bootstrap, group, topic)
    try:
        joined = raw.join_as_new_member()
        assert joined.error_code == NONE, joined
        member_id, generation = joined.member_id, joined.generation_id
        assert generation >= 1 and joined.leader_id == member_id and joined.group_protocol == "range"

        # Joined but not synced: the group is completing its rebalance; commits must wait.
        assert raw.commit(generation, member_id, 5) == REBALANCE_IN_PROGRESS

        synced = raw.sync(generation, member_id, [(member_id, consumer_assignment(topic, [0, 1]))])
        assert synced.error_code == NONE
        assert synced.member_assignment == consumer_assignment(topic, [0, 1])

        assert raw.commit(generation + 1, member_id, 5) == ILLEGAL_GENERATION
        assert raw.commit(generation - 1, member_id, 5) == ILLEGAL_GENERATION
        assert raw.commit(generation, "not-a-member", 5) == UNKNOWN_MEMBER_ID
        assert raw.heartbeat(generation + 1, member_id) == ILLEGAL_GENERATION
        assert raw.heartbeat(generation, "not-a-member") == UNKNOWN_MEMBER_ID
        assert raw.fetch_committed() == -1, "a refused commit was stored"

        assert raw.heartbeat(generation, member_id) == NONE
        assert raw.commit(generation, member_id, 7) == NONE
        assert raw.fetch_committed() == 7

        # A stale-generation SyncGroup is refused too.
        assert raw.sync(generation + 1, member_id, []).error_code == ILLEGAL_GENERATION

        # After LeaveGroup the old member id is unknown; the offset it committed stays.
        assert raw.leave(member_id) == NONE
        assert raw.commit(generation, member_id, 9) == UNKNOWN_MEMBER_ID
        assert raw.fetch_committed() == 7

        # Outside any generation (generation -1, no member: what assign()+commit() sends), a commit
        # to an empty group is accepted, and to a group that does not exist yet creates it.
        assert raw.commit(-1, "", 11) == NONE
        assert raw.fetch_committed() == 11
        assert raw.commit(-1, "", 3, group_id="standalone") == NONE
        assert raw.fetch_committed("standalone") == 3
    finally:
        raw.close()


def test_commit_accepted_while_group_prepares_rebalance(porter):
    """A member of the current generation may commit while the group waits for members to rejoin
    (PreparingRebalance): that is how an eager consumer saves its progress in its revoke callback
    before rejoining. Kafka accepts it (only CompletingRebalance answers REBALANCE_IN_PROGRESS);
    refusing it makes every rebalance redeliver the records processed since the last commit."""
    topic, group = "raw-preparing", "raw-preparing-group"
    create_topic(porter.bootstrap, topic, 2)
    first = RawGroupClient(porter.bootstrap, group, topic)
    second = RawGroupClient(porter.bootstrap, group, topic)
    try:
        joined = first.join_as_new_member()
        member_id, generation = joined.member_id, joined.generation_id
        assert first.sync(generation, member_id, [(member_id, consumer_assignment(topic, [0, 1]))]).error_code == NONE
        assert first.commit(generation, member_id, 4) == NONE

        # A second member joins: its JoinGroup waits (on its own connection) for the first to rejoin.
        pending = {}
        waiter = threading.Thread(target=lambda: pending.setdefault("join", second.join_as_new_member()), daemon=True)
        waiter.start()
        deadline = time.monotonic() + REBALANCE_S_MAX
        while first.heartbeat(generation, member_id) != REBALANCE_IN_PROGRESS:
            assert time.monotonic() < deadline, "the second member's join never started a rebalance"
            time.sleep(0.05)

        # The first member, still of the current generation, commits before rejoining.
        assert first.commit(generation, member_id, 6) == NONE
        assert first.fetch_committed() == 6

        rejoined = first.join(member_id)
        assert rejoined.error_code == NONE and rejoined.generation_id == generation + 1
        waiter.join(timeout=REBALANCE_S_MAX)
        assert pending["join"].error_code == NONE and pending["join"].generation_id == generation + 1
    finally:
        first.close()
        second.close()


def test_closed_static_member_expires_at_its_session_deadline(porter):
    """A static member sends no LeaveGroup when it closes; Kafka removes it once its session
    (last heartbeat, join, sync or commit plus session.timeout.ms) runs out, and the group is then
    empty and deletable (librdkafka's test 0081 deletes it 6 s after closing, with a 5 s session)."""
    bootstrap = porter.bootstrap
    topic, group = "static-expiry", "static-expiry-group"
    create_topic(bootstrap, topic, PARTITIONS)
    produce_numbers(bootstrap, topic, 0, 10)
    session_ms = 5000
    ledger = Ledger()
    member = Member(
        bootstrap, group, topic, "leaving", ledger,
        **{"group.instance.id": "leaving-1", "session.timeout.ms": session_ms},
    )
    try:
        pump(
            [member],
            lambda: member.assignment == set(range(PARTITIONS)) and len(ledger.processed) >= 10,
            "the member consumes",
        )
    finally:
        member.close()
    closed_at = time.monotonic()
    deadline = closed_at + session_ms / 1000 + 1.0
    while True:
        [description] = describe_groups(bootstrap, [group])
        if description.state == ConsumerGroupState.EMPTY:
            break
        assert time.monotonic() < deadline, (
            f"the member is still in the group {time.monotonic() - closed_at:.1f} s after closing "
            f"with a {session_ms} ms session: {description.state}"
        )
        time.sleep(0.1)
    admin = admin_client(bootstrap)
    admin.delete_consumer_groups([group], request_timeout=REQUEST_S_MAX)[group].result(timeout=REQUEST_S_MAX)
