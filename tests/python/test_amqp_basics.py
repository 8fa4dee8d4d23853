"""AMQP 0-9-1 basics with pika: work queues, basic.get, acks and redelivery, confirms, transactions,
message properties and large messages. Runs against Porter, or any broker in AMQP_TEST_URL."""

from __future__ import annotations

import datetime
import threading
import time
from decimal import Decimal

import pika
import pika.exceptions
import pytest

from amqp_helpers import (
    WAIT_S,
    consume,
    get_n,
    message_count,
    publish_confirmed,
    wait_message_count,
)


def test_default_exchange_round_trip(amqp):
    ch = amqp.channel()
    q = amqp.name("hello")
    declared = ch.queue_declare(q)
    assert declared.method.queue == q
    assert declared.method.message_count == 0 and declared.method.consumer_count == 0
    ch.basic_publish("", q, b"hello")
    [d] = consume(ch, q, 1)
    assert d.body == b"hello"
    assert d.method.exchange == "" and d.method.routing_key == q
    assert d.method.redelivered is False


def test_work_queue_prefetch_one_fair_dispatch(amqp):
    """Two competing consumers with prefetch=1: the slow one holds one message at a time while the
    fast one takes the rest, and every message is processed exactly once."""
    q = amqp.name("work")
    setup = amqp.channel()
    setup.queue_declare(q, durable=True)
    total = 20
    received = {"slow": [], "fast": []}
    ready = threading.Barrier(3, timeout=WAIT_S)
    done = threading.Event()
    errors = []

    def worker(label, delay):
        try:
            ch = amqp.channel()
            ch.basic_qos(prefetch_count=1)
            ready.wait()
            deadline = time.monotonic() + 30
            for method, _props, body in ch.consume(q, inactivity_timeout=0.1):
                if method is not None:
                    time.sleep(delay)
                    received[label].append(body)
                    ch.basic_ack(method.delivery_tag)
                if done.is_set() or time.monotonic() > deadline:
                    break
            ch.cancel()
        except Exception as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)
            ready.abort()

    threads = [threading.Thread(target=worker, args=a, daemon=True) for a in (("slow", 0.5), ("fast", 0.0))]
    for t in threads:
        t.start()
    ready.wait()
    deadline = time.monotonic() + WAIT_S
    while setup.queue_declare(q, passive=True).method.consumer_count < 2:
        assert time.monotonic() < deadline, "consumers did not register"
        time.sleep(0.05)
    for i in range(total):
        setup.basic_publish("", q, f"task-{i}".encode(), pika.BasicProperties(delivery_mode=2))
    deadline = time.monotonic() + 20
    while len(received["slow"]) + len(received["fast"]) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    for t in threads:
        t.join(timeout=WAIT_S)
    assert not errors, errors
    everything = received["slow"] + received["fast"]
    assert sorted(everything) == sorted(f"task-{i}".encode() for i in range(total)), received
    assert len(received["fast"]) >= 3 * max(1, len(received["slow"])), received
    assert message_count(setup, q) == 0


def test_basic_get_with_and_without_ack(amqp):
    ch = amqp.channel()
    q = amqp.name("get")
    ch.queue_declare(q)
    assert ch.basic_get(q) == (None, None, None), "get-empty on a new queue"
    publish_confirmed(ch, "", q, [b"m1", b"m2", b"m3"])
    assert message_count(ch, q) == 3

    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m1"
    assert method.message_count == 2, "message_count in get-ok counts the messages left"
    assert method.redelivered is False
    assert message_count(ch, q) == 2

    method, _props, body = ch.basic_get(q, auto_ack=False)
    assert body == b"m2" and method.message_count == 1
    ch.basic_ack(method.delivery_tag)

    # An unacked get goes back to the queue when its channel closes, marked redelivered.
    other = amqp.connect().channel()
    method, _props, body = other.basic_get(q, auto_ack=False)
    assert body == b"m3" and method.message_count == 0
    assert other.basic_get(q) == (None, None, None)
    other.close()
    method, _props, body = ch.basic_get(q, auto_ack=False)
    assert body == b"m3" and method.redelivered is True
    ch.basic_ack(method.delivery_tag)
    assert ch.basic_get(q) == (None, None, None)
    assert message_count(ch, q) == 0


def test_passive_declare_counts_messages_and_consumers(amqp):
    ch = amqp.channel()
    q = amqp.name("count")
    ch.queue_declare(q)
    publish_confirmed(ch, "", q, [b"x"] * 7)
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 7, 0)
    consumer = amqp.channel()
    consumer.basic_qos(prefetch_count=2)
    consumer.basic_consume(q, lambda *a: None)
    consumer.connection.process_data_events(time_limit=0.3)
    ok = ch.queue_declare(q, passive=True).method
    # ready messages only: the two delivered (unacked) ones are not counted
    assert ok.consumer_count == 1 and ok.message_count == 5, (ok.consumer_count, ok.message_count)
    # queue.purge answers with the number of messages purged and leaves the unacked ones alone
    assert ch.queue_purge(q).method.message_count == 5
    # the consumer's two unacked messages go back when its connection closes; queue.delete
    # answers with the number of messages deleted
    consumer.connection.close()
    wait_message_count(ch, q, 2)
    assert ch.queue_delete(q).method.message_count == 2


def test_unacked_messages_of_a_closed_connection_are_redelivered(amqp):
    ch = amqp.channel()
    q = amqp.name("crashy")
    ch.queue_declare(q)
    publish_confirmed(ch, "", q, [b"a", b"b", b"c"])

    doomed = amqp.connect()
    dch = doomed.channel()
    first = consume(dch, q, 3, ack=False)
    assert [d.body for d in first] == [b"a", b"b", b"c"]
    assert all(d.method.redelivered is False for d in first)
    assert message_count(ch, q) == 0
    doomed.close()  # unacked: all three go back to the queue, in their original order

    again = consume(amqp.channel(), q, 3)
    assert [d.body for d in again] == [b"a", b"b", b"c"]
    assert all(d.method.redelivered is True for d in again)


def test_nack_and_reject_with_requeue_set_redelivered(amqp):
    ch = amqp.channel()
    q = amqp.name("requeue")
    ch.queue_declare(q)
    publish_confirmed(ch, "", q, [b"one", b"two"])
    [d1, d2] = consume(ch, q, 2, ack=False)
    ch.basic_reject(d1.method.delivery_tag, requeue=True)
    ch.basic_nack(d2.method.delivery_tag, requeue=True)
    again = get_n(ch, q, 2)
    assert sorted(d.body for d in again) == [b"one", b"two"]
    assert all(d.method.redelivered for d in again)
    # nack with multiple=True requeues everything up to the tag
    publish_confirmed(ch, "", q, [b"p", b"q", b"r"])
    got = consume(ch, q, 3, ack=False)
    ch.basic_nack(got[-1].method.delivery_tag, multiple=True, requeue=True)
    again = get_n(ch, q, 3)
    assert [d.body for d in again] == [b"p", b"q", b"r"]
    assert all(d.method.redelivered for d in again)


def test_basic_recover_requeues_unacked(amqp):
    ch = amqp.channel()
    q = amqp.name("recover")
    ch.queue_declare(q)
    publish_confirmed(ch, "", q, [b"r1", b"r2"])
    got = get_n(ch, q, 2, ack=False)
    assert [d.method.redelivered for d in got] == [False, False]
    assert message_count(ch, q) == 0
    ch.basic_recover(requeue=True)
    again = get_n(ch, q, 2)
    assert [d.body for d in again] == [b"r1", b"r2"]
    assert all(d.method.redelivered for d in again)
    # the old delivery tags are gone: nothing is left to ack on the channel
    assert message_count(ch, q) == 0


def test_ack_multiple(amqp):
    ch = amqp.channel()
    q = amqp.name("multi")
    ch.queue_declare(q)
    publish_confirmed(ch, "", q, [str(i).encode() for i in range(10)])
    got = consume(ch, q, 10, ack=False)
    ch.basic_ack(got[4].method.delivery_tag, multiple=True)  # acks 0..4
    ch.close()  # 5..9 come back
    again = consume(amqp.channel(), q, 5)
    assert [d.body for d in again] == [str(i).encode() for i in range(5, 10)]


def test_publisher_confirms_many_messages(amqp):
    ch = amqp.channel()
    q = amqp.name("confirms")
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    total = 1000
    for i in range(total):
        # with confirms on, pika's basic_publish returns only once the broker acked the message
        ch.basic_publish("", q, f"{i}".encode(), pika.BasicProperties(delivery_mode=2))
    assert message_count(ch, q) == total
    got = consume(amqp.channel(), q, total, timeout=30)
    assert [int(d.body) for d in got] == list(range(total)), "order of one publisher is kept"


def test_transactions_commit_and_rollback(amqp):
    ch = amqp.channel()
    q = amqp.name("tx")
    ch.queue_declare(q)
    ch.tx_select()
    ch.basic_publish("", q, b"discarded-1")
    ch.basic_publish("", q, b"discarded-2")
    assert message_count(amqp.channel(), q) == 0, "uncommitted publishes are invisible"
    ch.tx_rollback()
    assert message_count(ch, q) == 0
    ch.basic_publish("", q, b"kept-1")
    ch.basic_publish("", q, b"kept-2")
    ch.tx_commit()
    assert message_count(ch, q) == 2
    # acks are transactional too: a rolled back ack leaves the message unacked
    method, _p, body = ch.basic_get(q)
    assert body == b"kept-1"
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    ch.basic_ack(method.delivery_tag)
    ch.tx_commit()
    [d] = get_n(ch, q, 1)
    assert d.body == b"kept-2"
    ch.tx_commit()
    assert message_count(ch, q) == 0


def test_all_message_properties_round_trip(amqp):
    ch = amqp.channel()
    q = amqp.name("props")
    ch.queue_declare(q)
    # pika cannot encode a float header (UnsupportedAMQPFieldException): float ('d'), 'f' and the
    # small integer types are covered by test_amqp_wire.py (raw frames) and the amqplib tests.
    stamp = datetime.datetime(2024, 5, 17, 12, 34, 56, tzinfo=datetime.timezone.utc)
    headers = {
        "str": "text ünïcode",
        "int": 42,
        "negative": -7,
        "big": 2**40,
        "bool_true": True,
        "bool_false": False,
        "bytes": b"\x00\x01\xffraw",
        "decimal": Decimal("3.14"),
        "timestamp": stamp,
        "none": None,
        "array": [1, "two", True, [3, 4], {"k": "v"}],
        "table": {"nested": {"deeper": 1}, "list": ["a", "b"], "n": 5},
    }
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers=headers,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-123",
        reply_to="replies",
        expiration="60000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="order.created",
        user_id="guest",  # must be the connection's user, or the broker refuses the publish
        app_id="porter-tests",
    )
    publish_confirmed(ch, "", q, [])
    ch.basic_publish("", q, b'{"id": 1}', props)
    [d] = consume(ch, q, 1)
    p = d.properties
    assert d.body == b'{"id": 1}'
    assert p.content_type == "application/json"
    assert p.content_encoding == "gzip"
    assert p.delivery_mode == 2
    assert p.priority == 7
    assert p.correlation_id == "corr-123"
    assert p.reply_to == "replies"
    assert p.expiration == "60000"
    assert p.message_id == "msg-1"
    assert p.timestamp == 1_700_000_000
    assert p.type == "order.created"
    assert p.user_id == "guest"
    assert p.app_id == "porter-tests"
    h = p.headers
    assert h["str"] == "text ünïcode"
    assert h["int"] == 42 and h["negative"] == -7 and h["big"] == 2**40
    assert h["bool_true"] is True and h["bool_false"] is False
    assert h["bytes"] == b"\x00\x01\xffraw"
    assert h["decimal"] == Decimal("3.14")
    assert h["timestamp"] == stamp
    assert h["none"] is None
    assert h["array"] == [1, "two", True, [3, 4], {"k": "v"}]
    assert h["table"] == {"nested": {"deeper": 1}, "list": ["a", "b"], "n": 5}
    assert set(h) == set(headers), "the broker adds no headers of its own here"


def test_empty_body_and_no_properties(amqp):
    ch = amqp.channel()
    q = amqp.name("empty")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"")
    [d] = consume(ch, q, 1)
    assert d.body == b""
    p = d.properties
    assert (p.content_type, p.headers, p.delivery_mode, p.priority, p.message_id) == (None, None, None, None, None)


@pytest.mark.parametrize("size", [1 << 20, 3 * (1 << 20) + 12345])
def test_large_messages_span_many_body_frames(amqp, size):
    conn = amqp.connect(frame_max=131072)
    ch = conn.channel()
    q = amqp.name("large")
    ch.queue_declare(q)
    body = bytes((i * 7 + i // 251) % 256 for i in range(size))
    publish_confirmed(ch, "", q, [body, body[::-1]])
    [d1] = get_n(ch, q, 1)
    [d2] = consume(ch, q, 1)
    assert len(d1.body) == size and d1.body == body
    assert len(d2.body) == size and d2.body == body[::-1]


def test_small_frame_max_is_honoured(amqp):
    """A client asking for the protocol minimum frame_max (4096) still moves a 100 KiB message."""
    conn = amqp.connect(frame_max=4096)
    ch = conn.channel()
    q = amqp.name("small-frames")
    ch.queue_declare(q)
    body = b"z" * 100_000
    publish_confirmed(ch, "", q, [body])
    [d] = consume(ch, q, 1)
    assert d.body == body


def test_many_channels_on_one_connection(amqp):
    conn = amqp.connect()
    q = amqp.name("chans")
    channels = [conn.channel() for _ in range(20)]
    channels[0].queue_declare(q)
    for i, ch in enumerate(channels):
        ch.basic_publish("", q, f"c{i}".encode())
    for ch in channels[1:]:
        ch.close()
    got = consume(channels[0], q, 20)
    assert sorted(d.body for d in got) == sorted(f"c{i}".encode() for i in range(20))
