"""Queue arguments with pika: TTL and dead-lettering (x-death), retry-with-delay, max-length with
each overflow mode, priorities, single active consumer, exclusive and auto-delete queues."""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest

from amqp_helpers import WAIT_S, assert_empty, consume, get_n, message_count, publish_confirmed, wait_message_count
from conftest import AMQP_TEST_URL


def x_death(props, queue, reason):
    """The x-death entry for (queue, reason), asserting the header has the right shape."""
    deaths = (props.headers or {}).get("x-death")
    assert isinstance(deaths, list) and deaths, f"no x-death header: {props.headers}"
    for entry in deaths:
        if entry.get("queue") == queue and entry.get("reason") == reason:
            return entry
    raise AssertionError(f"no x-death entry for ({queue}, {reason}): {deaths}")


def test_retry_with_delay_via_ttl_and_dead_letter_exchange(amqp):
    """Work queue W dead-letters rejected messages to a delay queue D (x-message-ttl), which
    dead-letters them back to W when they expire: each retry comes back after the delay with an
    x-death history counting the attempts."""
    ch = amqp.channel()
    work = amqp.name("work")
    delay = amqp.name("delay")
    delay_ms = 400
    ch.queue_declare(work, durable=True, arguments={
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": delay,
    })
    ch.queue_declare(delay, durable=True, arguments={
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": work,
    })
    publish_confirmed(ch, "", work, [b"job"], delivery_mode=2, message_id="job-1")

    for attempt in (1, 2):
        [d] = get_n(ch, work, 1, ack=False)
        assert d.body == b"job" and d.properties.message_id == "job-1"
        if attempt > 1:
            expired = x_death(d.properties, delay, "expired")
            assert expired["count"] == attempt - 1
        ch.basic_reject(d.method.delivery_tag, requeue=False)  # fail: retry later
        rejected_at = time.monotonic()
        # it waits in the delay queue, not in the work queue
        assert_empty(ch, work, wait=0.1)
        [back] = get_n(ch, work, 1, timeout=WAIT_S)
        waited = time.monotonic() - rejected_at
        assert waited >= delay_ms / 1000 * 0.8, f"came back after {waited:.3f}s, before the {delay_ms} ms delay"
        props = back.properties
        assert back.body == b"job" and props.message_id == "job-1" and props.delivery_mode == 2
        expired = x_death(props, delay, "expired")
        assert expired["count"] == attempt
        assert expired["exchange"] == ""
        assert expired["routing-keys"] == [delay]
        assert "original-expiration" not in expired, "queue TTL, not a per-message expiration"
        rejected = x_death(props, work, "rejected")
        assert rejected["count"] == attempt
        assert rejected["routing-keys"] == [work]
        # newest first: the expiry in the delay queue happened after the rejection from work
        assert props.headers["x-death"][0]["queue"] == delay
        assert props.headers["x-first-death-reason"] == "rejected"
        assert props.headers["x-first-death-queue"] == work
        assert props.headers["x-first-death-exchange"] == ""
        # put it back at the head of the work queue for the next attempt
        publish_confirmed(ch, "", work, [back.body], delivery_mode=2, message_id="job-1", headers=props.headers)
    # and a success: the message is acked and gone everywhere
    [d] = get_n(ch, work, 1)
    assert_empty(ch, work)
    assert_empty(ch, delay)


def test_per_message_expiration_dead_letters_with_original_expiration(amqp):
    ch = amqp.channel()
    dlx = amqp.exchange("dlx")
    ch.exchange_declare(dlx, "fanout")
    dead = amqp.name("dead")
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx)
    q = amqp.name("expiring")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    publish_confirmed(ch, "", q, [b"short"], expiration="150")
    publish_confirmed(ch, "", q, [b"long"], expiration="600000")
    [d] = get_n(ch, dead, 1, timeout=WAIT_S)
    assert d.body == b"short"
    assert d.properties.expiration is None, "the expiration is removed when dead-lettered"
    entry = x_death(d.properties, q, "expired")
    assert entry["count"] == 1
    assert entry["original-expiration"] == "150"
    assert entry["exchange"] == "" and entry["routing-keys"] == [q]
    assert d.properties.headers["x-first-death-reason"] == "expired"
    assert message_count(ch, q) == 1, "the long-lived message is still there"
    [alive] = get_n(ch, q, 1)
    assert alive.body == b"long" and alive.properties.expiration == "600000"


def test_expired_messages_without_dlx_are_dropped(amqp):
    ch = amqp.channel()
    q = amqp.name("ttl-drop")
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    publish_confirmed(ch, "", q, [b"gone-1", b"gone-2"])
    publish_confirmed(ch, "", q, [b"gone-3"], expiration="50")
    time.sleep(0.4)
    assert ch.basic_get(q) == (None, None, None)
    assert message_count(ch, q) == 0
    # expiration 0: delivered only if a consumer can take it at once, else dropped
    publish_confirmed(ch, "", q, [b"now-or-never"], expiration="0")
    time.sleep(0.1)
    assert message_count(ch, q) == 0


def test_rejected_without_requeue_is_dead_lettered(amqp):
    ch = amqp.channel()
    dlx = amqp.exchange("dlx")
    ch.exchange_declare(dlx, "direct")
    dead = amqp.name("dead")
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx, "failed")
    q = amqp.name("orders")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "failed"})
    publish_confirmed(ch, "", q, [b"bad-1", b"bad-2", b"good"], headers={"source": "test"})
    got = consume(ch, q, 3, ack=False)
    ch.basic_reject(got[0].method.delivery_tag, requeue=False)
    ch.basic_nack(got[1].method.delivery_tag, requeue=False)
    ch.basic_ack(got[2].method.delivery_tag)
    dead_letters = get_n(ch, dead, 2)
    assert sorted(d.body for d in dead_letters) == [b"bad-1", b"bad-2"]
    for d in dead_letters:
        entry = x_death(d.properties, q, "rejected")
        assert entry["count"] == 1 and entry["exchange"] == "" and entry["routing-keys"] == [q]
        assert d.properties.headers["source"] == "test", "the publisher's headers are kept"
        assert d.properties.headers["x-first-death-reason"] == "rejected"
        assert d.properties.headers["x-first-death-queue"] == q
        assert d.method.exchange == dlx and d.method.routing_key == "failed"
    assert_empty(ch, q)


def test_max_length_drop_head_drops_and_dead_letters_the_oldest(amqp):
    ch = amqp.channel()
    dead = amqp.name("dropped")
    ch.queue_declare(dead)
    q = amqp.name("maxlen")
    ch.queue_declare(q, arguments={
        "x-max-length": 3,
        "x-overflow": "drop-head",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead,
    })
    publish_confirmed(ch, "", q, [f"m{i}".encode() for i in range(1, 6)])
    assert message_count(ch, q) == 3
    assert [d.body for d in get_n(ch, q, 3)] == [b"m3", b"m4", b"m5"]
    dropped = get_n(ch, dead, 2)
    assert [d.body for d in dropped] == [b"m1", b"m2"]
    for d in dropped:
        assert x_death(d.properties, q, "maxlen")["count"] == 1


def test_max_length_default_overflow_is_drop_head(amqp):
    ch = amqp.channel()
    q = amqp.name("maxlen-default")
    ch.queue_declare(q, arguments={"x-max-length": 2})
    publish_confirmed(ch, "", q, [b"a", b"b", b"c"])
    assert [d.body for d in get_n(ch, q, 2)] == [b"b", b"c"]


def test_max_length_bytes_drop_head(amqp):
    ch = amqp.channel()
    q = amqp.name("maxbytes")
    ch.queue_declare(q, arguments={"x-max-length-bytes": 25})
    publish_confirmed(ch, "", q, [b"0123456789", b"abcdefghij", b"ABCDEFGHIJ"])
    # 30 bytes of bodies > 25: the oldest goes
    assert [d.body for d in get_n(ch, q, 2)] == [b"abcdefghij", b"ABCDEFGHIJ"]
    assert_empty(ch, q)


def test_max_length_reject_publish_nacks_the_overflow(amqp):
    ch = amqp.channel()
    dead = amqp.name("never")
    ch.queue_declare(dead)
    q = amqp.name("reject-publish")
    ch.queue_declare(q, arguments={
        "x-max-length": 2,
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead,
    })
    ch.confirm_delivery()
    ch.basic_publish("", q, b"first")
    ch.basic_publish("", q, b"second")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"third")
    assert message_count(ch, q) == 2
    # room again once one is consumed
    assert [d.body for d in get_n(ch, q, 1)] == [b"first"]
    ch.basic_publish("", q, b"fourth")
    assert [d.body for d in get_n(ch, q, 2)] == [b"second", b"fourth"]
    assert_empty(ch, dead, wait=0.1)  # reject-publish never dead-letters


def test_max_length_reject_publish_dlx_nacks_and_dead_letters(amqp):
    ch = amqp.channel()
    dead = amqp.name("overflowed")
    ch.queue_declare(dead)
    q = amqp.name("reject-publish-dlx")
    ch.queue_declare(q, arguments={
        "x-max-length": 1,
        "x-overflow": "reject-publish-dlx",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead,
    })
    ch.confirm_delivery()
    ch.basic_publish("", q, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"overflow")
    [d] = get_n(ch, dead, 1)
    assert d.body == b"overflow"
    assert x_death(d.properties, q, "maxlen")["count"] == 1
    assert [d.body for d in get_n(ch, q, 1)] == [b"kept"]


def test_reject_publish_without_confirms_drops_silently(amqp):
    ch = amqp.channel()
    q = amqp.name("reject-noconfirm")
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.basic_publish("", q, b"kept")
    ch.basic_publish("", q, b"dropped")
    # without confirms a publish is asynchronous: wait for it to land, then make sure it stays one
    wait_message_count(ch, q, 1)
    time.sleep(0.2)
    assert ch.is_open
    assert [d.body for d in get_n(ch, q, 1)] == [b"kept"]
    assert_empty(ch, q)


def test_priority_queue_delivers_highest_first(amqp):
    ch = amqp.channel()
    q = amqp.name("prio")
    ch.queue_declare(q, durable=True, arguments={"x-max-priority": 10})
    sent = [("low-1", 1), ("none-1", None), ("high-1", 9), ("mid-1", 5), ("high-2", 9), ("over-max", 200),
            ("low-2", 1), ("mid-2", 5), ("none-2", None)]
    ch.confirm_delivery()
    for body, prio in sent:
        ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=prio))
    assert message_count(ch, q) == len(sent)
    consumer = amqp.channel()
    consumer.basic_qos(prefetch_count=1)
    got = [d.body.decode() for d in consume(consumer, q, len(sent))]
    # a priority above x-max-priority counts as the maximum (10 here, above 9); no priority counts
    # as 0; FIFO within one priority
    assert got == ["over-max", "high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2", "none-1", "none-2"]


def test_single_active_consumer_fails_over_on_cancel(amqp):
    q = amqp.name("sac")
    setup = amqp.channel()
    setup.queue_declare(q, arguments={"x-single-active-consumer": True})
    conn_a = amqp.connect()
    conn_b = amqp.connect()
    ch_a, ch_b = conn_a.channel(), conn_b.channel()
    got_a, got_b = [], []

    def on(store):
        def callback(ch, method, _props, body):
            store.append(body)
            ch.basic_ack(method.delivery_tag)
        return callback

    tag_a = ch_a.basic_consume(q, on(got_a))
    conn_a.process_data_events(time_limit=0.1)
    ch_b.basic_consume(q, on(got_b))

    def pump(until, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            conn_a.process_data_events(time_limit=0.05)
            conn_b.process_data_events(time_limit=0.05)

    publish_confirmed(setup, "", q, [f"a{i}".encode() for i in range(5)])
    pump(lambda: len(got_a) == 5)
    pump(lambda: False, timeout=0.2)
    assert got_a == [f"a{i}".encode() for i in range(5)]
    assert got_b == [], "only the active consumer receives"

    ch_a.basic_cancel(tag_a)
    publish_confirmed(setup, "", q, [f"b{i}".encode() for i in range(5)])
    pump(lambda: len(got_b) == 5)
    assert got_b == [f"b{i}".encode() for i in range(5)], "the waiting consumer took over, in order"
    assert len(got_a) == 5


def test_single_active_consumer_takes_over_unacked_when_connection_dies(amqp):
    q = amqp.name("sac-crash")
    setup = amqp.channel()
    setup.queue_declare(q, arguments={"x-single-active-consumer": True})
    publish_confirmed(setup, "", q, [b"m1", b"m2"])
    conn_a = amqp.connect()
    ch_a = conn_a.channel()
    first = consume_keep(ch_a, q, 2)
    assert [d for d in first] == [b"m1", b"m2"]
    conn_b = amqp.connect()
    ch_b = conn_b.channel()
    got = []
    ch_b.basic_consume(q, lambda c, m, p, b: (got.append((b, m.redelivered)), c.basic_ack(m.delivery_tag)))
    conn_b.process_data_events(time_limit=0.2)
    assert got == []
    conn_a.close()
    deadline = time.monotonic() + WAIT_S
    while len(got) < 2 and time.monotonic() < deadline:
        conn_b.process_data_events(time_limit=0.05)
    assert got == [(b"m1", True), (b"m2", True)]


def consume_keep(ch, q, n):
    """Start a consumer on ch and take n messages without acking them (the consumer stays)."""
    bodies = []
    ch.basic_consume(q, lambda _c, _m, _p, b: bodies.append(b))
    deadline = time.monotonic() + WAIT_S
    while len(bodies) < n and time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.05)
    return bodies


def test_exclusive_queue_is_deleted_with_its_connection(amqp):
    conn = amqp.connect()
    ch = conn.channel()
    q = amqp.name("exclusive")
    ch.queue_declare(q, exclusive=True)
    publish_confirmed(ch, "", q, [b"x"])
    conn.close()
    probe = amqp.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        probe.queue_declare(q, passive=True)
    assert info.value.reply_code == 404


def test_auto_delete_queue_goes_when_its_last_consumer_cancels(amqp):
    ch = amqp.channel()
    q = amqp.name("autodel")
    ch.queue_declare(q, auto_delete=True)
    # no consumer yet: it stays
    time.sleep(0.1)
    ch.queue_declare(q, passive=True)
    tag1 = ch.basic_consume(q, lambda *a: None)
    tag2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag1)
    ch.queue_declare(q, passive=True)
    ch.basic_cancel(tag2)
    deadline = time.monotonic() + WAIT_S
    probe = amqp.channel()
    while True:
        try:
            probe.queue_declare(q, passive=True)
        except pika.exceptions.ChannelClosedByBroker as err:
            assert err.reply_code == 404
            break
        assert time.monotonic() < deadline, "auto-delete queue still there"
        time.sleep(0.05)


def test_queue_expires_when_unused(amqp):
    ch = amqp.channel()
    q = amqp.name("x-expires")
    ch.queue_declare(q, arguments={"x-expires": 300})
    wait_message_count(ch, q, 0)
    time.sleep(1.0)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(q, passive=True)
    assert info.value.reply_code == 404


def test_queue_types_and_arguments_porter_does_not_act_on_are_served_and_logged(porter):
    """Applications written for RabbitMQ's quorum queues declare them with `x-queue-type` and
    `x-delivery-limit`. On Porter the declare works and the queue carries messages as a classic
    queue (honouring `x-delivery-limit`), and the log says, once, at creation, what is not acted
    on (docs/amqp.md)."""
    connection = pika.BlockingConnection(pika.URLParameters(porter.amqp_url))
    try:
        channel = connection.channel()
        arguments = {"x-queue-type": "quorum", "x-delivery-limit": 5, "x-message-ttl": 60000}
        channel.queue_declare("orders.quorum", durable=True, arguments=arguments)
        channel.queue_declare("orders.quorum", durable=True, arguments=arguments)  # re-declare: no second line
        channel.queue_declare("orders.classic", durable=True, arguments={"x-message-ttl": 60000})
        channel.confirm_delivery()
        channel.basic_publish("", "orders.quorum", b"order-1", pika.BasicProperties(delivery_mode=2))
        method, _, body = channel.basic_get("orders.quorum", auto_ack=True)
        assert body == b"order-1"
    finally:
        connection.close()
    log = porter.log_path.read_text(errors="replace")
    warnings = [line for line in log.splitlines() if "does not act on" in line]
    assert len(warnings) == 1, porter.log_tail()
    assert "orders.quorum" in warnings[0]
    assert "x-queue-type = quorum" in warnings[0], warnings[0]
    assert "x-delivery-limit" not in warnings[0], "acted on since issue 15: " + warnings[0]
    assert "x-message-ttl" not in warnings[0], warnings[0]


def test_delivery_limit_dead_letters_a_message_that_keeps_coming_back(amqp):
    """`x-delivery-limit` (a quorum-queue argument in RabbitMQ; Porter honours it on any queue):
    once a message has come back unacknowledged more than the limit, it is dead-lettered with
    reason `delivery_limit` instead of delivered again."""
    ch = amqp.channel()
    dlx = amqp.name("poison-dlx")
    ch.exchange_declare(dlx, "fanout")
    parked = amqp.name("parked")
    ch.queue_declare(parked)
    ch.queue_bind(parked, dlx)
    q = amqp.name("limited")
    ch.queue_declare(q, durable=True, arguments={
        "x-queue-type": "quorum",
        "x-delivery-limit": 2,
        "x-dead-letter-exchange": dlx,
    })
    publish_confirmed(ch, "", q, [b"poison"], delivery_mode=2)
    for _ in range(3):  # the first delivery and two redeliveries
        [d] = get_n(ch, q, 1, ack=False, timeout=WAIT_S)
        assert d.body == b"poison"
        ch.basic_nack(d.method.delivery_tag, requeue=True)
    [dead] = get_n(ch, parked, 1, timeout=WAIT_S)
    assert dead.body == b"poison"
    assert x_death(dead.properties, q, "delivery_limit")["count"] == 1
    assert_empty(ch, q, wait=0.2)


@pytest.mark.skipif(bool(AMQP_TEST_URL), reason="RabbitMQ needs the delayed-message plugin for this")
def test_a_delayed_message_exchange_holds_a_message_for_its_x_delay(amqp):
    """RabbitMQ's delayed-message plugin convention: an `x-delayed-message` exchange routes as
    its `x-delayed-type`, after holding each message for its `x-delay` milliseconds."""
    ch = amqp.channel()
    exchange = amqp.name("later")
    ch.exchange_declare(exchange, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    # Re-declared as RabbitMQ compares it: same type and x-delayed-type.
    ch.exchange_declare(exchange, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    q = amqp.name("reminders")
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, exchange, "remind")
    sent = time.monotonic()
    publish_confirmed(ch, exchange, "remind", [b"in 1.5 s"], delivery_mode=2, headers={"x-delay": 1500})
    publish_confirmed(ch, exchange, "remind", [b"at once"], delivery_mode=2)
    [now] = get_n(ch, q, 1, timeout=WAIT_S)
    assert now.body == b"at once"
    [later] = get_n(ch, q, 1, timeout=WAIT_S)
    waited = time.monotonic() - sent
    assert later.body == b"in 1.5 s"
    assert waited >= 1.5, f"delivered after {waited:.3f} s, before its x-delay"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        amqp.channel().exchange_declare(amqp.name("untyped"), "x-delayed-message")
    assert refused.value.reply_code == 406
