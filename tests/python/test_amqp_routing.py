"""AMQP 0-9-1 routing with pika: fanout, direct, topic (* and #), headers (x-match all/any),
exchange-to-exchange bindings, alternate exchanges, mandatory returns and RPC over reply_to."""

from __future__ import annotations

import time
import uuid

import pika
import pika.exceptions
import pytest

from amqp_helpers import WAIT_S, assert_empty, consume, get_n, message_count, publish_confirmed


def declare_queues(amqp, ch, n, prefix="q"):
    names = [amqp.name(f"{prefix}{i}") for i in range(n)]
    for q in names:
        ch.queue_declare(q)
    return names


def bodies(ch, q):
    """All messages now in q (acked), as a sorted list of bodies."""
    out = []
    while True:
        method, _p, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            return sorted(out)
        out.append(body)


def test_fanout_copies_to_every_bound_queue(amqp):
    ch = amqp.channel()
    ex = amqp.exchange("fan")
    ch.exchange_declare(ex, "fanout")
    queues = declare_queues(amqp, ch, 3)
    for q in queues:
        ch.queue_bind(q, ex, routing_key="ignored-by-fanout")
    unbound = amqp.name("unbound")
    ch.queue_declare(unbound)
    publish_confirmed(ch, ex, "any.key", [b"news-1", b"news-2"])
    for q in queues:
        assert [d.body for d in consume(ch, q, 2)] == [b"news-1", b"news-2"]
    assert_empty(ch, unbound)
    # unbinding one queue stops its copies
    ch.queue_unbind(queues[0], ex, routing_key="ignored-by-fanout")
    publish_confirmed(ch, ex, "", [b"news-3"])
    assert_empty(ch, queues[0])
    for q in queues[1:]:
        assert [d.body for d in get_n(ch, q, 1)] == [b"news-3"]


def test_direct_exchange_routes_by_exact_key(amqp):
    ch = amqp.channel()
    ex = amqp.exchange("direct")
    ch.exchange_declare(ex, "direct")
    errors, audit = declare_queues(amqp, ch, 2)
    ch.queue_bind(errors, ex, "error")
    ch.queue_bind(audit, ex, "error")
    ch.queue_bind(audit, ex, "info")
    publish_confirmed(ch, ex, "error", [b"e1"])
    publish_confirmed(ch, ex, "info", [b"i1"])
    publish_confirmed(ch, ex, "debug", [b"d1"])
    publish_confirmed(ch, ex, "Error", [b"E1"])  # keys are case sensitive
    time.sleep(0.1)
    assert bodies(ch, errors) == [b"e1"]
    assert bodies(ch, audit) == [b"e1", b"i1"]
    # the pre-declared amq.direct exchange behaves the same
    q = amqp.name("amqdirect")
    ch.queue_declare(q)
    ch.queue_bind(q, "amq.direct", q)
    publish_confirmed(ch, "amq.direct", q, [b"via-amq.direct"])
    assert [d.body for d in get_n(ch, q, 1)] == [b"via-amq.direct"]


def test_topic_wildcards(amqp):
    ch = amqp.channel()
    ex = amqp.exchange("topic")
    ch.exchange_declare(ex, "topic")
    patterns = {
        "star_middle": "stock.*.nyse",
        "hash_tail": "stock.#",
        "hash_only": "#",
        "star_only": "*",
        "hash_middle": "a.#.z",
        "exact": "stock.usd.nyse",
        "two_stars": "*.*",
    }
    queues = {label: amqp.name(label) for label in patterns}
    for label, pattern in patterns.items():
        ch.queue_declare(queues[label])
        ch.queue_bind(queues[label], ex, pattern)
    keys = ["stock.usd.nyse", "stock.eur.nyse", "stock.nyse", "stock", "stock.usd.nyse.extra", "a.z",
            "a.b.c.z", "az", "x.y", "", "a.b"]
    for key in keys:
        publish_confirmed(ch, ex, key, [key.encode() or b"<empty>"])
    time.sleep(0.1)
    expected = {
        "star_middle": ["stock.eur.nyse", "stock.usd.nyse"],
        "hash_tail": ["stock", "stock.eur.nyse", "stock.nyse", "stock.usd.nyse", "stock.usd.nyse.extra"],
        "hash_only": keys,
        "star_only": ["stock", "az"],
        "hash_middle": ["a.z", "a.b.c.z"],
        "exact": ["stock.usd.nyse"],
        "two_stars": ["stock.nyse", "x.y", "a.z", "a.b"],
    }
    for label, want in expected.items():
        got = bodies(ch, queues[label])
        assert got == sorted(k.encode() or b"<empty>" for k in want), (label, patterns[label], got)


def test_headers_exchange_match_all_and_any(amqp):
    ch = amqp.channel()
    ex = amqp.exchange("headers")
    ch.exchange_declare(ex, "headers")
    q_all, q_any, q_empty = declare_queues(amqp, ch, 3)
    ch.queue_bind(q_all, ex, arguments={"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(q_any, ex, arguments={"x-match": "any", "format": "pdf", "type": "log"})
    ch.queue_bind(q_empty, ex, arguments={"x-match": "all"})  # no conditions: matches everything
    cases = {
        b"pdf-report": {"format": "pdf", "type": "report"},
        b"pdf-report-extra": {"format": "pdf", "type": "report", "lang": "en"},
        b"pdf-only": {"format": "pdf"},
        b"log-only": {"type": "log"},
        b"zip-report": {"format": "zip", "type": "report"},
        b"no-headers": None,
    }
    ch.confirm_delivery()
    for body, headers in cases.items():
        ch.basic_publish(ex, "routing-key-ignored", body, pika.BasicProperties(headers=headers))
    time.sleep(0.1)
    assert bodies(ch, q_all) == sorted([b"pdf-report", b"pdf-report-extra"])
    assert bodies(ch, q_any) == sorted([b"pdf-report", b"pdf-report-extra", b"pdf-only", b"log-only"])
    assert bodies(ch, q_empty) == sorted(cases)


def test_headers_exchange_value_types_must_match(amqp):
    ch = amqp.channel()
    ex = amqp.exchange("headers-types")
    ch.exchange_declare(ex, "headers")
    q = amqp.name("typed")
    ch.queue_declare(q)
    ch.queue_bind(q, ex, arguments={"x-match": "all", "n": 1, "flag": True})
    publish_confirmed(ch, ex, "", [b"match"], headers={"n": 1, "flag": True})
    publish_confirmed(ch, ex, "", [b"wrong-value"], headers={"n": 2, "flag": True})
    publish_confirmed(ch, ex, "", [b"missing"], headers={"n": 1})
    time.sleep(0.1)
    assert bodies(ch, q) == [b"match"]


def test_exchange_to_exchange_binding(amqp):
    ch = amqp.channel()
    upstream = amqp.exchange("e2e-up")
    downstream = amqp.exchange("e2e-down")
    ch.exchange_declare(upstream, "topic")
    ch.exchange_declare(downstream, "fanout")
    ch.exchange_bind(destination=downstream, source=upstream, routing_key="orders.#")
    q_down, q_up = declare_queues(amqp, ch, 2)
    ch.queue_bind(q_down, downstream)
    ch.queue_bind(q_up, upstream, "#")
    publish_confirmed(ch, upstream, "orders.eu", [b"order"])
    publish_confirmed(ch, upstream, "payments.eu", [b"payment"])
    time.sleep(0.1)
    assert bodies(ch, q_down) == [b"order"]
    assert bodies(ch, q_up) == [b"order", b"payment"]
    # a queue reachable twice (directly and through the chain) still gets one copy
    ch.queue_bind(q_up, downstream)
    publish_confirmed(ch, upstream, "orders.us", [b"once"])
    time.sleep(0.1)
    assert bodies(ch, q_up) == [b"once"]
    assert bodies(ch, q_down) == [b"once"]
    ch.exchange_unbind(destination=downstream, source=upstream, routing_key="orders.#")
    publish_confirmed(ch, upstream, "orders.eu", [b"after-unbind"])
    time.sleep(0.1)
    assert bodies(ch, q_down) == []


def test_alternate_exchange_takes_unroutable_messages(amqp):
    ch = amqp.channel()
    ae = amqp.exchange("ae")
    main = amqp.exchange("main")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
    routed, unrouted = declare_queues(amqp, ch, 2)
    ch.queue_bind(routed, main, "known")
    ch.queue_bind(unrouted, ae)
    ch.confirm_delivery()
    # mandatory does not return a message the alternate exchange routed
    ch.basic_publish(main, "known", b"to-routed", mandatory=True)
    ch.basic_publish(main, "unknown", b"to-ae", mandatory=True)
    assert [d.body for d in get_n(ch, routed, 1)] == [b"to-routed"]
    [d] = get_n(ch, unrouted, 1)
    assert d.body == b"to-ae"
    assert d.method.exchange == main and d.method.routing_key == "unknown", "exchange and key are the original"
    assert_empty(ch, routed)


def test_mandatory_unroutable_with_confirms_is_returned(amqp):
    ch = amqp.channel()
    ex = amqp.exchange("nowhere")
    ch.exchange_declare(ex, "direct")
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        ch.basic_publish(ex, "no-such-key", b"lost", pika.BasicProperties(message_id="m-1"), mandatory=True)
    [returned] = info.value.messages
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.method.exchange == ex and returned.method.routing_key == "no-such-key"
    assert returned.body == b"lost" and returned.properties.message_id == "m-1"
    # without mandatory the same publish is confirmed and silently dropped
    ch.basic_publish(ex, "no-such-key", b"dropped")
    # to the default exchange with no such queue: returned as well
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", amqp.name("missing"), b"lost-too", mandatory=True)


def test_mandatory_unroutable_without_confirms_calls_on_return(amqp):
    conn = amqp.connect()
    ch = conn.channel()
    returns = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returns.append((method, props, body)))
    ch.basic_publish("", amqp.name("missing"), b"bounce", mandatory=True)
    deadline = time.monotonic() + WAIT_S
    while not returns and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert returns, "no basic.return"
    method, _props, body = returns[0]
    assert (method.reply_code, method.reply_text, body) == (312, "NO_ROUTE", b"bounce")


def test_rpc_with_reply_to_and_correlation_id(amqp):
    """The classic RPC pattern: a server consumes a request queue and answers to each request's
    reply_to (an exclusive, auto-delete, server-named queue) with its correlation_id."""
    server_conn = amqp.connect()
    server = server_conn.channel()
    rpc_queue = amqp.name("rpc")
    server.queue_declare(rpc_queue)
    server.basic_qos(prefetch_count=1)

    def on_request(ch, method, props, body):
        ch.basic_publish(
            "",
            props.reply_to,
            str(int(body) ** 2).encode(),
            pika.BasicProperties(correlation_id=props.correlation_id),
        )
        ch.basic_ack(method.delivery_tag)

    server.basic_consume(rpc_queue, on_request)

    client_conn = amqp.connect()
    client = client_conn.channel()
    reply = client.queue_declare("", exclusive=True, auto_delete=True).method.queue
    assert reply.startswith("amq.gen-"), reply
    responses = {}

    def on_response(_ch, _method, props, body):
        responses[props.correlation_id] = body

    client.basic_consume(reply, on_response, auto_ack=True)
    calls = {str(uuid.uuid4()): n for n in range(1, 6)}
    for corr, n in calls.items():
        client.basic_publish("", rpc_queue, str(n).encode(),
                             pika.BasicProperties(reply_to=reply, correlation_id=corr))
    deadline = time.monotonic() + WAIT_S
    while len(responses) < len(calls) and time.monotonic() < deadline:
        server_conn.process_data_events(time_limit=0.05)
        client_conn.process_data_events(time_limit=0.05)
    assert responses == {corr: str(n * n).encode() for corr, n in calls.items()}

    # the reply queue is exclusive to the client's connection and goes away with it
    client_conn.close()
    probe = amqp.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        probe.queue_declare(reply, passive=True)
    assert info.value.reply_code == 404


def test_direct_reply_to_pseudo_queue(amqp):
    """amq.rabbitmq.reply-to: RPC replies without declaring a reply queue."""
    conn = amqp.connect()
    ch = conn.channel()
    rpc_queue = amqp.name("rpc-direct")
    ch.queue_declare(rpc_queue)
    replies = []
    ch.basic_consume("amq.rabbitmq.reply-to", lambda _c, _m, p, b: replies.append((p.correlation_id, b)),
                     auto_ack=True)
    ch.basic_publish("", rpc_queue, b"ping",
                     pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="c1"))
    [req] = get_n(amqp.channel(), rpc_queue, 1)
    assert req.properties.reply_to.startswith("amq.rabbitmq.reply-to.")
    server = amqp.channel()
    server.basic_publish("", req.properties.reply_to, b"pong",
                         pika.BasicProperties(correlation_id=req.properties.correlation_id))
    deadline = time.monotonic() + WAIT_S
    while not replies and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert replies == [("c1", b"pong")]


def test_exchange_delete_if_unused_and_queue_delete_if_empty(amqp):
    ch = amqp.channel()
    ex = amqp.exchange("ifunused")
    q = amqp.name("ifempty")
    ch.exchange_declare(ex, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, ex)
    publish_confirmed(ch, ex, "", [b"x"])
    assert message_count(ch, q) == 1
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_delete(q, if_empty=True)
    assert info.value.reply_code == 406
    ch = amqp.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.exchange_delete(ex, if_unused=True)
    assert info.value.reply_code == 406
    ch = amqp.channel()
    ch.queue_purge(q)
    ch.queue_delete(q, if_empty=True)
    ch.exchange_delete(ex, if_unused=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.exchange_declare(ex, passive=True)
    assert info.value.reply_code == 404
