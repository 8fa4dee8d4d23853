"""AMQP 0-9-1 errors with pika: channel errors carry the right reply code and close only their channel
(the connection and its other channels keep working); connection errors (authentication, vhost,
unsupported features) close the connection with the right code. Reply texts are RabbitMQ's but only
codes are asserted, so a broker may word them differently."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from amqp_helpers import connection_parameters, consume, get_n, publish_confirmed

NOT_FOUND, ACCESS_REFUSED, RESOURCE_LOCKED, PRECONDITION_FAILED = 404, 403, 405, 406
NOT_ALLOWED, COMMAND_INVALID, NOT_IMPLEMENTED = 530, 503, 540


def assert_channel_error(amqp, conn, code, action, *, keep_alive_queue=None):
    """Run action(channel) on a fresh channel of conn: it must close that channel with `code`, and
    only that channel: a bystander channel opened before still works, as does a new one."""
    bystander = conn.channel()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        action(ch)
    assert info.value.reply_code == code, f"want {code}, got {info.value.reply_code} {info.value.reply_text!r}"
    assert ch.is_closed
    assert conn.is_open, "a channel error must not close the connection"
    probe = amqp.name("probe")
    bystander.queue_declare(probe, auto_delete=False)
    publish_confirmed(conn.channel(), "", probe, [b"still-alive"])
    assert [d.body for d in get_n(bystander, probe, 1)] == [b"still-alive"]
    bystander.queue_delete(probe)
    return info.value


def test_passive_declare_of_missing_queue_is_404(amqp):
    conn = amqp.connect()
    missing = amqp.name("missing")
    err = assert_channel_error(amqp, conn, NOT_FOUND, lambda ch: ch.queue_declare(missing, passive=True))
    assert err.reply_text.startswith("NOT_FOUND")


def test_passive_declare_of_missing_exchange_is_404(amqp):
    conn = amqp.connect()
    missing = amqp.exchange("missing")
    assert_channel_error(amqp, conn, NOT_FOUND, lambda ch: ch.exchange_declare(missing, "direct", passive=True))


@pytest.mark.parametrize("what", ["consume", "get", "purge", "bind-queue", "bind-exchange", "exchange-bind"])
def test_operations_on_missing_entities_are_404(amqp, what):
    conn = amqp.connect()
    missing_q = amqp.name("missing")
    missing_x = amqp.exchange("missing")
    existing_q = amqp.name("existing")
    existing_x = amqp.exchange("existing")
    setup = conn.channel()
    setup.queue_declare(existing_q)
    setup.exchange_declare(existing_x, "fanout")
    actions = {
        "consume": lambda ch: ch.basic_consume(missing_q, lambda *a: None),
        "get": lambda ch: ch.basic_get(missing_q),
        "purge": lambda ch: ch.queue_purge(missing_q),
        "bind-queue": lambda ch: ch.queue_bind(missing_q, existing_x),
        "bind-exchange": lambda ch: ch.queue_bind(existing_q, missing_x),
        "exchange-bind": lambda ch: ch.exchange_bind(existing_x, missing_x),
    }
    assert_channel_error(amqp, conn, NOT_FOUND, actions[what])


def test_publish_to_missing_exchange_is_404(amqp):
    conn = amqp.connect()
    missing = amqp.exchange("missing")

    def publish(ch):
        ch.confirm_delivery()
        ch.basic_publish(missing, "key", b"x")

    assert_channel_error(amqp, conn, NOT_FOUND, publish)

    # without confirms the error arrives asynchronously; the next synchronous call sees it
    def publish_then_sync(ch):
        ch.basic_publish(missing, "key", b"x")
        ch.queue_declare(amqp.name("after"))

    assert_channel_error(amqp, conn, NOT_FOUND, publish_then_sync)


def test_deleting_missing_queue_or_exchange_is_not_an_error(amqp):
    ch = amqp.channel()
    assert ch.queue_delete(amqp.name("never-was")).method.message_count == 0
    ch.exchange_delete(amqp.exchange("never-was"))
    ch.queue_unbind(amqp.name("never-was"), "amq.direct", "k")
    assert ch.is_open


@pytest.mark.parametrize("change", ["arguments", "argument-removed", "durable", "auto-delete", "exclusive"])
def test_redeclaring_a_queue_differently_is_406(amqp, change):
    conn = amqp.connect()
    q = amqp.name("redeclare")
    conn.channel().queue_declare(q, durable=False, arguments={"x-max-length": 10})
    kwargs = {"durable": False, "arguments": {"x-max-length": 10}}
    if change == "arguments":
        kwargs["arguments"] = {"x-max-length": 20}
    elif change == "argument-removed":
        kwargs["arguments"] = None
    elif change == "durable":
        kwargs["durable"] = True
    elif change == "auto-delete":
        kwargs["auto_delete"] = True
    if change == "exclusive":
        # on the declaring connection itself: a non-exclusive queue cannot be re-declared exclusive
        assert_channel_error(amqp, conn, RESOURCE_LOCKED, lambda ch: ch.queue_declare(q, exclusive=True, **kwargs))
        return
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: ch.queue_declare(q, **kwargs))
    # the same declaration again is fine, and passive ignores the differences
    ch = conn.channel()
    ch.queue_declare(q, durable=False, arguments={"x-max-length": 10})
    ch.queue_declare(q, passive=True, durable=True)


def test_redeclaring_an_exchange_differently_is_406(amqp):
    conn = amqp.connect()
    ex = amqp.exchange("redeclare")
    conn.channel().exchange_declare(ex, "fanout", durable=False)
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: ch.exchange_declare(ex, "direct"))
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: ch.exchange_declare(ex, "fanout", durable=True))
    conn.channel().exchange_declare(ex, "fanout", durable=False)


@pytest.mark.parametrize(
    "arguments",
    [
        {"x-max-length": "ten"},
        {"x-message-ttl": -1},
        {"x-max-priority": 300},
        {"x-overflow": "explode"},
        {"x-dead-letter-exchange": 5},
    ],
    ids=["max-length-string", "negative-ttl", "priority-over-255", "bad-overflow", "dlx-not-a-string"],
)
def test_invalid_queue_arguments_are_406(amqp, arguments):
    conn = amqp.connect()
    q = amqp.name("badargs")
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: ch.queue_declare(q, arguments=arguments))
    probe = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        probe.queue_declare(q, passive=True)
    assert info.value.reply_code == NOT_FOUND, "a refused declaration creates nothing"


@pytest.mark.parametrize("operation", ["declare", "passive", "consume", "get", "bind", "purge", "delete"])
def test_another_connections_exclusive_queue_is_405(amqp, operation):
    owner = amqp.connect()
    q = amqp.name("exclusive")
    owner.channel().queue_declare(q, exclusive=True)
    other = amqp.connect()
    actions = {
        "declare": lambda ch: ch.queue_declare(q),
        "passive": lambda ch: ch.queue_declare(q, passive=True),
        "consume": lambda ch: ch.basic_consume(q, lambda *a: None),
        "get": lambda ch: ch.basic_get(q),
        "bind": lambda ch: ch.queue_bind(q, "amq.fanout"),
        "purge": lambda ch: ch.queue_purge(q),
        "delete": lambda ch: ch.queue_delete(q),
    }
    assert_channel_error(amqp, other, RESOURCE_LOCKED, actions[operation])
    # publishing to it is allowed, and the owner still has it
    publish_confirmed(other.channel(), "", q, [b"for-the-owner"])
    assert [d.body for d in get_n(owner.channel(), q, 1)] == [b"for-the-owner"]


@pytest.mark.parametrize(
    "operation",
    ["declare-amq-exchange", "declare-amq-queue", "declare-default-exchange", "bind-default-exchange",
     "unbind-default-exchange", "delete-default-exchange", "delete-amq-direct", "exchange-bind-default"],
)
def test_reserved_names_and_default_exchange_are_403(amqp, operation):
    conn = amqp.connect()
    q = amqp.name("reserved")
    ex = amqp.exchange("reserved")
    setup = conn.channel()
    setup.queue_declare(q)
    setup.exchange_declare(ex, "fanout")
    actions = {
        "declare-amq-exchange": lambda ch: ch.exchange_declare("amq.porter-test", "direct"),
        "declare-amq-queue": lambda ch: ch.queue_declare("amq.porter-test"),
        "declare-default-exchange": lambda ch: ch.exchange_declare("", "direct"),
        "bind-default-exchange": lambda ch: ch.queue_bind(q, "", routing_key="other"),
        "unbind-default-exchange": lambda ch: ch.queue_unbind(q, "", routing_key=q),
        "delete-default-exchange": lambda ch: ch.exchange_delete(""),
        "delete-amq-direct": lambda ch: ch.exchange_delete("amq.direct"),
        "exchange-bind-default": lambda ch: ch.exchange_bind(ex, ""),
    }
    assert_channel_error(amqp, conn, ACCESS_REFUSED, actions[operation])


def test_predeclared_exchanges_exist(amqp):
    ch = amqp.channel()
    for name, kind in [("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                       ("amq.headers", "headers"), ("amq.match", "headers")]:
        ch.exchange_declare(name, kind, passive=True)
        ch.exchange_declare(name, kind, durable=True)  # an equivalent re-declare is allowed


def test_ack_of_unknown_delivery_tag_is_406(amqp):
    conn = amqp.connect()

    def ack_unknown(ch):
        ch.basic_ack(42)
        ch.basic_qos(prefetch_count=1)  # a synchronous call to see the channel close

    err = assert_channel_error(amqp, conn, PRECONDITION_FAILED, ack_unknown)
    assert "42" in err.reply_text or err.reply_code == PRECONDITION_FAILED


def test_double_ack_and_reject_after_ack_are_406(amqp):
    conn = amqp.connect()
    q = amqp.name("dblack")
    conn.channel().queue_declare(q)

    def double_ack(ch):
        publish_confirmed(conn.channel(), "", q, [b"x"])
        [d] = get_n(ch, q, 1)  # acked once
        ch.basic_ack(d.method.delivery_tag)
        ch.basic_qos(prefetch_count=1)

    assert_channel_error(amqp, conn, PRECONDITION_FAILED, double_ack)

    def ack_auto_acked(ch):
        publish_confirmed(conn.channel(), "", q, [b"y"])
        [d] = consume(ch, q, 1, auto_ack=True)
        ch.basic_reject(d.method.delivery_tag)
        ch.basic_qos(prefetch_count=1)

    assert_channel_error(amqp, conn, PRECONDITION_FAILED, ack_auto_acked)


def test_user_id_other_than_the_authenticated_user_is_406(amqp):
    conn = amqp.connect()
    q = amqp.name("userid")
    conn.channel().queue_declare(q)

    def forge(ch):
        ch.confirm_delivery()
        ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="mallory"))

    assert_channel_error(amqp, conn, PRECONDITION_FAILED, forge)
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0


def test_invalid_expiration_is_406(amqp):
    conn = amqp.connect()
    q = amqp.name("badexp")
    conn.channel().queue_declare(q)

    def publish(ch):
        ch.confirm_delivery()
        ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="soon"))

    assert_channel_error(amqp, conn, PRECONDITION_FAILED, publish)


def test_mixing_tx_and_confirm_modes_is_406(amqp):
    conn = amqp.connect()
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: (ch.confirm_delivery(), ch.tx_select()))
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: (ch.tx_select(), ch.confirm_delivery()))
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: ch.tx_commit())
    assert_channel_error(amqp, conn, PRECONDITION_FAILED, lambda ch: ch.tx_rollback())


def test_unknown_exchange_type_closes_the_connection_with_503(amqp):
    conn = amqp.connect()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.channel().exchange_declare(amqp.exchange("weird"), "no-such-type")
    assert info.value.reply_code == COMMAND_INVALID
    # the broker goes on serving others
    ch = amqp.channel()
    ch.queue_declare(amqp.name("after"))


def test_prefetch_size_is_not_implemented_540(amqp):
    conn = amqp.connect()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.channel().basic_qos(prefetch_size=4096)
    assert info.value.reply_code == NOT_IMPLEMENTED


def test_wrong_password_is_access_refused(amqp):
    params = connection_parameters(amqp.url, credentials=pika.PlainCredentials("guest", "not-the-password"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params)
    assert "403" in str(info.value) and "ACCESS_REFUSED" in str(info.value)


def test_unknown_user_is_access_refused(amqp):
    params = connection_parameters(amqp.url, credentials=pika.PlainCredentials("nobody-here", "guest"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params)
    assert "403" in str(info.value)


def test_unknown_vhost_is_530_not_allowed(amqp):
    params = connection_parameters(amqp.url, virtual_host="no-such-vhost")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(params)
    assert "530" in str(info.value) and "NOT_ALLOWED" in str(info.value)
    # and the broker still accepts good connections
    amqp.channel().queue_declare(amqp.name("after"))


def test_channel_max_is_enforced_by_the_client_negotiation(amqp):
    conn = amqp.connect(channel_max=4)
    channels = [conn.channel() for _ in range(4)]
    assert [c.channel_number for c in channels] == [1, 2, 3, 4]
    with pytest.raises(pika.exceptions.NoFreeChannels):
        conn.channel()
    channels[1].close()
    assert conn.channel().channel_number == 2
