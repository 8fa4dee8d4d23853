"""STOMP applications against Porter with stomp.py (the reference Python STOMP client), RabbitMQ's
destinations (/queue, /topic, /exchange, /amq/queue, /temp-queue), ack modes, NACK, transactions,
receipts, durable topic subscriptions, prefetch, heart-beats, Kafka topics as destinations, the
same message crossing STOMP, AMQP (pika) and Kafka (confluent-kafka), and bad input on raw
sockets: each gets an ERROR frame where the protocol allows one, and the server stays up."""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from pathlib import Path

import pika
import pytest
import stomp
from confluent_kafka import Consumer, Producer

from conftest import PORTER_BIN, run_porter

WAIT_S = 15

# Small limits so bad input reaches them quickly; the server's defaults are in docs/stomp.md.
CONFIG = """
[stomp]
frame_bytes_max = 65536
headers_max = 20
header_line_bytes_max = 1024
handshake_timeout_ms = 1500
transaction_frames_max = 100
subscriptions_max = 50
"""


@pytest.fixture
def porter(tmp_path: Path):
    """A Porter with STOMP (small limits, see CONFIG) besides Kafka and AMQP."""
    config = tmp_path / "porter.toml"
    config.write_text(CONFIG)
    server = None
    for server in run_porter(tmp_path, ["--config", str(config)]):
        assert server.stomp_enabled, f"{PORTER_BIN} has no --stomp-listen: rebuild it"
        yield server
    # A connection task that panicked leaves the server up: the log is where it shows.
    assert server is not None and "panicked" not in Path(server.log_path).read_text(), server.log_tail()


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages: queue.Queue = queue.Queue()
        self.errors: list = []
        self.receipts: list[str] = []
        self.heartbeats = 0

    def on_message(self, frame):
        self.messages.put(frame)

    def on_error(self, frame):
        self.errors.append(frame)

    def on_receipt(self, frame):
        self.receipts.append(frame.headers["receipt-id"])

    def on_heartbeat(self):
        self.heartbeats += 1

    def next(self, timeout: float = WAIT_S):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no MESSAGE within {timeout}s; errors: {[f.body for f in self.errors]}") from None

    def take(self, n: int) -> list:
        return [self.next() for _ in range(n)]


@contextmanager
def connect(server, heartbeats=(0, 0), **connect_args):
    conn = stomp.Connection12([("127.0.0.1", server.stomp_port)], heartbeats=heartbeats, auto_content_length=True)
    listener = Listener()
    conn.set_listener("test", listener)
    conn.connect("guest", "guest", wait=True, **connect_args)
    try:
        yield conn, listener
    finally:
        if conn.is_connected():
            conn.disconnect()


def amqp(server):
    return pika.BlockingConnection(pika.URLParameters(server.amqp_url))


def ready_messages(server, queue_name: str) -> int:
    with amqp(server) as c:
        return c.channel().queue_declare(queue_name, passive=True).method.message_count


def wait_until(check, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- destinations ---------------------------------------------------------------------------------


def test_queue_destination_carries_body_and_rabbitmq_headers(porter):
    q = fresh("/queue/orders")
    with connect(porter) as (c, l):
        c.subscribe(q, id="s1")
        c.send(q, "order 1", headers={"content-type": "text/plain", "persistent": "true", "priority": "3",
                                      "correlation-id": "c-1", "x-region": "eu", "reply-to": "/queue/replies"},
               receipt="r-send")
        m = l.next()
        assert m.body == "order 1"
        h = m.headers
        assert h["destination"] == q and h["subscription"] == "s1" and h["redelivered"] == "false"
        assert (h["content-type"], h["persistent"], h["priority"], h["correlation-id"], h["x-region"],
                h["reply-to"]) == ("text/plain", "true", "3", "c-1", "eu", "/queue/replies")
        wait_until(lambda: "r-send" in l.receipts, "RECEIPT for the SEND")


def test_queue_properties_in_headers_declare_the_queue_as_rabbitmq_does(porter):
    name = fresh("capped")
    with connect(porter) as (c, l):
        # The first SEND declares the queue with the arguments its headers carry.
        for i in range(5):
            c.send(f"/queue/{name}", f"m{i}", headers={"x-max-length": "2", "x-queue-type": "classic"},
                   receipt=f"r{i}")
        wait_until(lambda: len(l.receipts) == 5, "RECEIPTs for the SENDs")
        assert ready_messages(porter, name) == 2, "x-max-length kept the newest two"
        c.subscribe(f"/queue/{name}", id="s", headers={"x-max-length": "2"})
        assert [l.next().body for _ in range(2)] == ["m3", "m4"]
        # Different properties for the existing queue are refused, as RabbitMQ's 406.
        c.subscribe(f"/queue/{name}", id="other", headers={"x-max-length": "3"})
        wait_until(lambda: l.errors, "ERROR for different queue properties")
        assert l.errors[0].headers["message"] == "precondition_failed", l.errors[0].headers


def test_a_subscription_whose_queue_is_deleted_gets_an_error_naming_it(porter):
    name = fresh("doomed")
    with connect(porter) as (c, l):
        c.subscribe(f"/queue/{name}", id="d1")
        c.send(f"/queue/{name}", "first", receipt="r1")
        assert l.next().body == "first"
        with amqp(porter) as a:
            a.channel().queue_delete(name)
        wait_until(lambda: l.errors, "ERROR for the cancelled subscription")
        error = l.errors[0]
        assert (error.headers["message"], error.headers["subscription"]) == ("Server cancelled subscription", "d1")
        assert f"/queue/{name}" in error.body
        # The connection stays open for its other subscriptions.
        other = fresh("/queue/alive")
        c.subscribe(other, id="d2")
        c.send(other, "still here")
        assert l.next().body == "still here"


def test_a_body_holding_nul_octets_travels_with_content_length(porter):
    q = fresh("/queue/binary")
    body = b"a\x00b\x00\x00c"
    with connect(porter) as (c, l):
        c.subscribe(q, id="s")
        c.send(q, body)
        m = l.next()
        assert m.headers["content-length"] == str(len(body))
        assert m.body == body.decode()


def test_topic_subscription_matches_routing_key_patterns(porter):
    with connect(porter) as (c, l):
        c.subscribe("/topic/stock.*.nyse", id="t")
        c.send("/topic/stock.ibm.nasdaq", "not for us")
        c.send("/topic/stock.ibm.nyse", "ibm")
        m = l.next()
        assert (m.body, m.headers["destination"]) == ("ibm", "/topic/stock.ibm.nyse")
        c.send("/topic/stock.aapl.nyse", "aapl")
        assert l.next().body == "aapl"


def test_exchange_destination_routes_through_a_named_exchange(porter):
    with amqp(porter) as a:
        a.channel().exchange_declare("logs", exchange_type="direct")
    with connect(porter) as (c, l):
        c.subscribe("/exchange/logs/error", id="e")
        c.send("/exchange/logs/info", "info line")
        c.send("/exchange/logs/error", "error line")
        m = l.next()
        assert (m.body, m.headers["destination"]) == ("error line", "/exchange/logs/error")


def test_x_queue_name_names_a_topic_subscriptions_queue(porter):
    with connect(porter) as (c, l):
        c.subscribe("/topic/prices.#", id="p", headers={"x-queue-name": "price-feed", "receipt": "bound"})
        wait_until(lambda: "bound" in l.receipts, "RECEIPT for SUBSCRIBE")
        with amqp(porter) as a:
            a.channel().basic_publish("amq.topic", "prices.eur", b"1.08")
        assert l.next().body == "1.08"
        # It exists under that name, exclusive to the STOMP connection (405 to others, as in RabbitMQ).
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="405.*price-feed"):
            ready_messages(porter, "price-feed")


def test_amq_queue_uses_an_existing_queue_and_refuses_a_missing_one(porter):
    with amqp(porter) as a:
        a.channel().queue_declare("made-by-amqp", durable=True)
    with connect(porter) as (c, l):
        c.subscribe("/amq/queue/made-by-amqp", id="a")
        c.send("/amq/queue/made-by-amqp", "via amq/queue")
        assert l.next().body == "via amq/queue"
    with connect(porter) as (c, l):
        c.subscribe("/amq/queue/no-such-queue", id="x")
        wait_until(lambda: l.errors, "ERROR for a missing queue")
        assert l.errors[0].headers["message"] == "not_found"
        assert "no-such-queue" in l.errors[0].body


def test_temp_queue_request_reply(porter):
    service = fresh("/queue/service")
    with connect(porter) as (server_conn, server_l), connect(porter) as (client, client_l):
        server_conn.subscribe(service, id="svc")
        client.send(service, "what time is it?", headers={"reply-to": "/temp-queue/answers"})
        request = server_l.next()
        reply_to = request.headers["reply-to"]
        assert reply_to.startswith("/reply-queue/"), reply_to
        server_conn.send(reply_to, "noon", headers={"correlation-id": "q1"})
        reply = client_l.next()
        assert reply.body == "noon"
        assert reply.headers["subscription"] == "/temp-queue/answers"
        assert reply.headers["destination"] == "/temp-queue/answers"


def test_stomp_1_1_and_1_0_clients(porter):
    q = fresh("/queue/old")
    c11 = stomp.Connection11([("127.0.0.1", porter.stomp_port)])
    l11 = Listener()
    c11.set_listener("", l11)
    c11.connect("guest", "guest", wait=True)
    c11.subscribe(q, id="s11", ack="client-individual")
    c11.send(q, "one-one:with a colon")
    m = l11.next()
    assert "ack" not in m.headers  # 1.1 names a message by message-id and subscription
    assert m.headers["message-id"] and m.body == "one-one:with a colon"
    c11.ack(m.headers["message-id"], "s11", receipt="acked")
    wait_until(lambda: "acked" in l11.receipts, "RECEIPT for the 1.1 ACK")
    assert not l11.errors
    c11.disconnect()
    c10 = stomp.Connection10([("127.0.0.1", porter.stomp_port)])
    l10 = Listener()
    c10.set_listener("", l10)
    c10.connect("guest", "guest", wait=True)
    c10.subscribe(q)  # 1.0: no id; the destination names the subscription
    c10.send(q, "one-oh")
    m = l10.next()
    assert (m.body, m.headers["subscription"]) == ("one-oh", q)
    c10.disconnect()


def test_pipelined_sends_keep_their_order_and_an_error_ends_them_where_it_happens(porter):
    q = fresh("/queue/burst")
    with connect(porter) as (c, l):
        c.subscribe(q, id="s", headers={"receipt": "subscribed"})
        wait_until(lambda: "subscribed" in l.receipts, "RECEIPT for SUBSCRIBE")
        s = raw_connect(porter)
        frames = [f"SEND\ndestination:{q}\n{'receipt:r150' + chr(10) if i == 150 else ''}\nm{i}\x00" for i in range(300)]
        frames.append(f"SEND\ndestination:{q}\nexpiration:soon\nreceipt:bad\n\nlost\x00")
        frames.append(f"SEND\ndestination:{q}\n\nafter the error\x00")
        s.sendall("".join(frames).encode())
        receipt = read_frame(s)
        assert receipt.startswith(b"RECEIPT\n") and b"receipt-id:r150" in receipt, receipt
        error = read_frame(s)
        assert error.startswith(b"ERROR\n") and b"receipt-id:bad" in error, error
        assert b"message:precondition_failed" in error and b"invalid expiration" in error, error
        assert wait_closed(s)
        c.send(q, "marker")
        got = [l.next().body for _ in range(301)]
        assert got == [f"m{i}" for i in range(300)] + ["marker"]


# --- acknowledgements ------------------------------------------------------------------------------


def _three_then_ack_second(server, mode: str) -> list[str]:
    """Sends 1..3, acks the second in `mode`, reconnects; returns what is redelivered."""
    q = fresh("/queue/acks")
    with connect(server) as (c, l):
        c.subscribe(q, id="s", ack=mode)
        for i in range(1, 4):
            c.send(q, f"m{i}")
        got = l.take(3)
        c.ack(got[1].headers["ack"], receipt="acked")
        wait_until(lambda: "acked" in l.receipts, "RECEIPT for the ACK")
    with connect(server) as (c, l):
        c.subscribe(q, id="s", ack="auto")
        c.send(q, "end")
        bodies = []
        while (m := l.next()).body != "end":
            assert m.headers["redelivered"] == "true"
            bodies.append(m.body)
        return bodies


def test_client_ack_is_cumulative(porter):
    assert _three_then_ack_second(porter, "client") == ["m3"]


def test_client_individual_ack_settles_one_message(porter):
    assert _three_then_ack_second(porter, "client-individual") == ["m1", "m3"]


def test_nack_redelivers(porter):
    q = fresh("/queue/nack")
    with connect(porter) as (c, l):
        c.subscribe(q, id="s", ack="client-individual")
        c.send(q, "try again")
        first = l.next()
        assert first.headers["redelivered"] == "false"
        c.nack(first.headers["ack"])
        again = l.next()
        assert (again.body, again.headers["redelivered"]) == ("try again", "true")
        c.ack(again.headers["ack"])


def test_prefetch_count_bounds_unacknowledged_messages(porter):
    name = fresh("prefetch")
    with connect(porter) as (c, l):
        c.subscribe(f"/queue/{name}", id="s", ack="client-individual", headers={"prefetch-count": "2"})
        for i in range(5):
            c.send(f"/queue/{name}", f"m{i}")
        got = l.take(2)
        wait_until(lambda: ready_messages(porter, name) == 3, "3 messages left ready")
        assert l.messages.qsize() == 0, "more than prefetch-count delivered"
        c.ack(got[0].headers["ack"])
        assert l.next().body == "m2"
        wait_until(lambda: ready_messages(porter, name) == 2, "2 messages left ready")
        assert l.messages.qsize() == 0


# --- transactions, receipts, disconnect -----------------------------------------------------------


def test_transactions_commit_and_abort(porter):
    q = fresh("/queue/tx")
    with connect(porter) as (c, l):
        c.subscribe(q, id="s")
        tx = c.begin()
        c.send(q, "in committed tx", transaction=tx)
        c.send(q, "outside")
        assert l.next().body == "outside", "a transactional SEND was delivered before COMMIT"
        c.commit(tx)
        assert l.next().body == "in committed tx"
        tx = c.begin()
        c.send(q, "in aborted tx", transaction=tx)
        c.abort(tx)
        c.send(q, "after abort")
        assert l.next().body == "after abort"


def test_transactional_ack_is_applied_on_commit(porter):
    q = fresh("/queue/txack")
    with connect(porter) as (c, l):
        c.subscribe(q, id="s", ack="client-individual")
        c.send(q, "m")
        m = l.next()
        tx = c.begin()
        c.ack(m.headers["ack"], transaction=tx)
        c.abort(tx)
    # Aborted: the ACK never happened, so the message comes back.
    with connect(porter) as (c, l):
        c.subscribe(q, id="s", ack="client-individual")
        m = l.next()
        assert m.headers["redelivered"] == "true"
        tx = c.begin()
        c.ack(m.headers["ack"], transaction=tx)
        c.commit(tx, receipt="committed")
        wait_until(lambda: "committed" in l.receipts, "RECEIPT for COMMIT")
    assert ready_messages(porter, q.removeprefix("/queue/")) == 0


def test_disconnect_with_receipt_gets_its_receipt_then_the_close(porter):
    s = raw_connect(porter)
    s.sendall(b"DISCONNECT\nreceipt:bye-77\n\n\x00")
    frame = read_frame(s)
    assert frame.startswith(b"RECEIPT\n") and b"receipt-id:bye-77" in frame
    assert wait_closed(s)


def test_shutdown_tells_connected_clients_and_durable_subscriptions_survive_a_restart(porter):
    s = raw_connect(porter)
    s.sendall(b"SUBSCRIBE\nid:keep\ndestination:/topic/orders.*\npersistent:true\nack:client\nreceipt:s\n\n\x00")
    assert b"receipt-id:s" in read_frame(s)
    s.sendall(b"SEND\ndestination:/topic/orders.new\npersistent:true\nreceipt:p\n\nkept\x00")
    frames = [read_frame(s), read_frame(s)]  # the RECEIPT and the MESSAGE, in either order
    assert any(b"receipt-id:p" in f for f in frames), frames
    porter.restart()  # SIGTERM must exit 0
    goodbye = read_frame(s)
    assert goodbye.startswith(b"ERROR\n") and b"message:connection closed by the broker" in goodbye, goodbye
    with connect(porter) as (c, l):
        c.subscribe("/topic/orders.*", id="keep", ack="client", headers={"persistent": "true"})
        m = l.next()
        assert (m.body, m.headers["redelivered"]) == ("kept", "true")
        c.ack(m.headers["ack"])


# --- durable topic subscriptions -----------------------------------------------------------------


def test_durable_topic_subscription_survives_disconnect(porter):
    with connect(porter) as (c, l):
        c.subscribe("/topic/news.#", id="newsreader", ack="client", headers={"persistent": "true"})
        c.send("/topic/news.sport", "before")
        assert l.next().body == "before"
    with connect(porter) as (c, _):
        c.send("/topic/news.world", "while away", receipt="sent")
    with connect(porter) as (c, l):
        c.subscribe("/topic/news.#", id="newsreader", ack="client", headers={"persistent": "true"})
        m = l.next()
        assert m.body in ("before", "while away")
        bodies = {m.body}
        c.ack(m.headers["ack"])
        if m.body == "before":  # the first was never acked: redelivered first
            m = l.next()
            bodies.add(m.body)
            c.ack(m.headers["ack"])
        assert "while away" in bodies
        c.unsubscribe("newsreader", headers={"persistent": "true"}, receipt="gone")
        wait_until(lambda: "gone" in l.receipts, "RECEIPT for UNSUBSCRIBE")
    with amqp(porter) as a, pytest.raises(pika.exceptions.ChannelClosedByBroker):
        a.channel().queue_declare("stomp-subscription-newsreader", passive=True)


# --- heart-beats ----------------------------------------------------------------------------------


def test_server_sends_heartbeats(porter):
    with connect(porter, heartbeats=(200, 200)) as (c, l):
        wait_until(lambda: l.heartbeats >= 3, "3 heart-beats from the server")
        c.send("/queue/" + fresh("hb"), "still alive", receipt="alive")
        wait_until(lambda: "alive" in l.receipts, "RECEIPT after heart-beats")


def test_a_client_that_stops_beating_is_closed(porter):
    s = raw_connect(porter, "heart-beat:100,0\n")
    # No beats from us: closed after the grace (2 x 100 ms), long before WAIT_S.
    assert wait_closed(s)
    assert server_still_serves(porter)


# --- crossing protocols ---------------------------------------------------------------------------


def test_stomp_send_reaches_an_amqp_queue_bound_to_amq_topic_and_back(porter):
    with amqp(porter) as a:
        ch = a.channel()
        ch.queue_declare("sensor-readings")
        ch.queue_bind("sensor-readings", "amq.topic", "sensor.*")
        with connect(porter) as (c, l):
            c.send("/topic/sensor.t1", "21.5", headers={"content-type": "text/plain", "x-unit": "C"},
                   receipt="sent")
            wait_until(lambda: "sent" in l.receipts, "RECEIPT")
            method, props, body = ch.basic_get("sensor-readings", auto_ack=True)
            assert (method.routing_key, body, props.content_type) == ("sensor.t1", b"21.5", "text/plain")
            assert props.headers == {"x-unit": "C"}

            c.subscribe("/topic/alerts.fire", id="a", headers={"receipt": "bound"})
            wait_until(lambda: "bound" in l.receipts, "RECEIPT for SUBSCRIBE (its queue is bound)")
            ch.basic_publish("amq.topic", "alerts.fire", b"evacuate",
                             pika.BasicProperties(content_type="text/plain", correlation_id="c9",
                                                  headers={"floor": 3}, delivery_mode=2))
            m = l.next()
            assert (m.body, m.headers["destination"]) == ("evacuate", "/topic/alerts.fire")
            assert (m.headers["content-type"], m.headers["correlation-id"], m.headers["floor"],
                    m.headers["persistent"]) == ("text/plain", "c9", "3", "true")


def test_kafka_topics_are_stomp_destinations(porter):
    topic = fresh("clicks")
    p = Producer({"bootstrap.servers": porter.bootstrap})
    p.produce(topic, b"from kafka", key=b"user-1", headers=[("source", b"web")])
    assert p.flush(WAIT_S) == 0
    with connect(porter) as (c, l):
        c.subscribe(f"/kafka/{topic}", id="k", headers={"x-stream-offset": "first"})
        m = l.next()
        assert m.body == "from kafka"
        assert (m.headers["x-key"], m.headers["source"], m.headers["x-stream-offset"],
                m.headers["destination"]) == ("user-1", "web", "0", f"/kafka/{topic}")
        assert "x-partition" in m.headers
        # And a STOMP SEND produces a record a Kafka consumer reads.
        c.send(f"/kafka/{topic}", "from stomp", headers={"x-key": "user-2", "x-origin": "stomp"},
               receipt="produced")
        wait_until(lambda: "produced" in l.receipts, "RECEIPT for the produce")
        m = l.next()
        assert (m.body, m.headers["x-key"]) == ("from stomp", "user-2")
    consumer = Consumer({"bootstrap.servers": porter.bootstrap, "group.id": fresh("g"),
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + WAIT_S
    while len(records) < 2 and time.monotonic() < deadline:
        r = consumer.poll(0.5)
        if r is not None and r.error() is None:
            records.append(r)
    consumer.close()
    stomp_record = [r for r in records if r.value() == b"from stomp"]
    assert stomp_record, records
    assert stomp_record[0].key() == b"user-2"
    assert ("x-origin", b"stomp") in (stomp_record[0].headers() or [])


def test_kafka_subscription_from_next_sees_only_new_records(porter):
    topic = fresh("events")
    p = Producer({"bootstrap.servers": porter.bootstrap})
    p.produce(topic, b"old")
    assert p.flush(WAIT_S) == 0
    with connect(porter) as (c, l):
        c.subscribe(f"/kafka/{topic}", id="k", headers={"x-stream-offset": "next", "receipt": "subscribed"})
        wait_until(lambda: "subscribed" in l.receipts, "RECEIPT")
        p.produce(topic, b"new")
        assert p.flush(WAIT_S) == 0
        assert l.next().body == "new"


# --- bad input on raw sockets ---------------------------------------------------------------------


def raw_connect(server, extra_headers: str = "") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.stomp_port), timeout=WAIT_S)
    s.sendall(f"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n{extra_headers}\n\x00".encode())
    frame = read_frame(s)
    assert frame.startswith(b"CONNECTED\n"), frame
    return s


_unread: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def read_frame(s: socket.socket) -> bytes:
    """The next frame (heart-beat end-of-lines skipped), up to its NUL; bytes read past it are
    kept for the next call. Bodies here hold no NUL."""
    data = _unread.pop(s, b"")
    while True:
        data = data.lstrip(b"\r\n")
        if b"\x00" in data:
            end = data.index(b"\x00")
            _unread[s] = data[end + 1 :]
            return data[:end]
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def wait_closed(s: socket.socket) -> bool:
    """Whether the server closes the socket within WAIT_S (anything it sends first is skipped)."""
    s.settimeout(WAIT_S)
    try:
        while s.recv(65536):
            pass
        return True
    except (TimeoutError, socket.timeout):
        return False
    except ConnectionResetError:
        return True


def server_still_serves(server) -> bool:
    q = fresh("/queue/alive")
    with connect(server) as (c, l):
        c.subscribe(q, id="s")
        c.send(q, "ok")
        return l.next().body == "ok"


def error_for(server, payload: bytes, connected: bool = True) -> bytes:
    if connected:
        s = raw_connect(server)
    else:
        s = socket.create_connection(("127.0.0.1", server.stomp_port), timeout=WAIT_S)
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    frame = read_frame(s)
    assert wait_closed(s), "the connection stays open after ERROR"
    s.close()
    return frame


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"FLY\ndestination:/queue/a\n\n\x00", b"message:unknown command"),
        (b"SEND\n\nno destination\x00", b"message:missing header"),
        (b"SEND\ndestination:/queue/a\ncontent-length:ten\n\nx\x00", b"message:malformed frame"),
        (b"SEND\ndestination:/queue/a\ncontent-length:3\n\nabcdef\x00", b"message:malformed frame"),
        (b"SEND\ndestination:/queue/a\ncontent-length:999999999\n\n", b"message:frame too large"),
        (b"SEND\ndestination:/queue/a\n\n" + b"x" * 70000 + b"\x00", b"message:frame too large"),
        (b"SEND\ndestination:/queue/a\n" + b"h:1\n" * 25 + b"\n\x00", b"message:too many headers"),
        (b"SEND\ndestination:/queue/a\nx:" + b"y" * 2000 + b"\n\n\x00", b"message:header too long"),
        (b"SEND\ndestination:/queue/a\nbad:tab\\t\n\n\x00", b"message:malformed frame"),
        (b"SEND\ndestination:/nowhere/a\n\n\x00", b"message:unknown destination"),
        (b"SEND\ndestination:/exchange/no-such-exchange/k\n\n\x00", b"message:not_found"),
        (b"SUBSCRIBE\ndestination:/queue/a\n\n\x00", b"message:missing header"),
        (b"ACK\nid:12345\n\n\x00", b"message:unknown message"),
        (b"COMMIT\ntransaction:never-begun\n\n\x00", b"message:invalid transaction"),
        (b"CONNECT\naccept-version:1.2\n\n\x00", b"message:already connected"),
    ],
    ids=["unknown-command", "missing-destination", "bad-content-length", "content-length-without-nul",
         "content-length-over-limit", "frame-over-limit", "too-many-headers", "header-line-too-long",
         "invalid-escape", "unknown-destination", "missing-exchange", "subscribe-without-id", "unknown-ack",
         "commit-unknown-tx", "second-connect"],
)
def test_bad_frames_get_an_error_frame_and_the_server_stays_up(porter, payload, message):
    frame = error_for(porter, payload)
    assert frame.startswith(b"ERROR\n"), frame
    assert message in frame, frame
    assert server_still_serves(porter)


def test_bad_handshakes_are_refused(porter):
    unsupported = error_for(porter, b"CONNECT\naccept-version:2.0,3.1\n\n\x00", connected=False)
    assert unsupported.startswith(b"ERROR\n") and b"message:version not supported" in unsupported
    not_connect = error_for(porter, b"SEND\ndestination:/queue/a\n\n\x00", connected=False)
    assert b"message:expected CONNECT" in not_connect
    wrong_password = error_for(porter, b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:nope\n\n\x00",
                               connected=False)
    assert b"message:access refused" in wrong_password
    # Heart-beat numbers no timer can take are clamped, not a crash.
    huge = raw_connect(porter, "heart-beat:18446744073709551615,18446744073709551615\n")
    huge.sendall(b"SEND\ndestination:/queue/hb-huge\nreceipt:r\n\nx\x00")
    assert b"receipt-id:r" in read_frame(huge)
    huge.close()
    assert server_still_serves(porter)
    assert "panicked" not in Path(porter.log_path).read_text()


def test_a_client_of_another_protocol_is_named_in_the_log(porter):
    amqp_client = socket.create_connection(("127.0.0.1", porter.stomp_port), timeout=WAIT_S)
    amqp_client.sendall(b"AMQP\x00\x00\x09\x01")
    assert wait_closed(amqp_client)
    browser = socket.create_connection(("127.0.0.1", porter.stomp_port), timeout=WAIT_S)
    browser.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = browser.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert wait_closed(browser)
    wait_until(lambda: "an AMQP 0-9-1 client connected to the STOMP listener" in Path(porter.log_path).read_text(),
               "the wrong-protocol log line")
    assert server_still_serves(porter)


def test_a_client_that_connects_and_says_nothing_is_closed_after_the_handshake_deadline(porter):
    s = socket.create_connection(("127.0.0.1", porter.stomp_port), timeout=WAIT_S)
    frame = read_frame(s)  # handshake_timeout_ms = 1500 in CONFIG
    assert frame.startswith(b"ERROR\n") and b"message:handshake timeout" in frame
    assert wait_closed(s)
    assert server_still_serves(porter)


def rss_bytes(server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# A subscriber that never reads holds at most: the connection's delivery feed (256 deliveries of
# 32 KiB: 8 MiB), the queue's cache (8 MiB), one write burst (256 KiB plus a frame) and the kernel's
# socket buffers (not RSS); the publisher's read buffer holds a frame at a time. 128 MiB published
# must cost about that, not the 128 MiB.
FLOOD_MESSAGES = 4096
FLOOD_BODY = 32 * 1024
RSS_GROWTH_MAX = 48 << 20


def test_a_subscriber_that_never_reads_keeps_server_memory_bounded(porter):
    stalled = socket.create_connection(("127.0.0.1", porter.stomp_port), timeout=WAIT_S)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\n\n\x00")
    assert read_frame(stalled).startswith(b"CONNECTED")
    stalled.sendall(b"SUBSCRIBE\nid:flood\ndestination:/topic/flood\nreceipt:sub\n\n\x00")
    assert b"receipt-id:sub" in read_frame(stalled)
    before = rss_bytes(porter)
    peak = before
    body = "x" * FLOOD_BODY
    with connect(porter) as (c, l):
        for i in range(FLOOD_MESSAGES):
            c.send("/topic/flood", body)
            if i % 256 == 0:
                peak = max(peak, rss_bytes(porter))
        c.send("/topic/flood", "last", receipt="flooded")
        wait_until(lambda: "flooded" in l.receipts, "the flood published")
        peak = max(peak, rss_bytes(porter))
        # Others keep working meanwhile.
        assert server_still_serves(porter)
    peak = max(peak, rss_bytes(porter))
    sent = FLOOD_MESSAGES * FLOOD_BODY
    print(f"RSS {before >> 20} MiB before, {peak >> 20} MiB at peak, {sent >> 20} MiB sent to a stalled subscriber")
    assert peak - before <= RSS_GROWTH_MAX, (
        f"RSS grew {(peak - before) >> 20} MiB while {sent >> 20} MiB went to a subscriber that never reads"
    )
    stalled.close()
    assert server_still_serves(porter)


def test_transaction_size_is_limited(porter):
    s = raw_connect(porter)
    frames = b"BEGIN\ntransaction:t\n\n\x00" + b"SEND\ndestination:/queue/txq\ntransaction:t\n\nx\x00" * 101
    s.sendall(frames)
    frame = read_frame(s)
    assert frame.startswith(b"ERROR\n") and b"message:limit reached" in frame and b"transaction_frames_max" in frame
    assert wait_closed(s)
    assert server_still_serves(porter)


IDLE_CONNECTIONS = 400
IDLE_CONNECTION_BYTES_MAX = 16 << 10


def test_idle_connections_cost_little_memory(porter):
    """An idle connection holds no read buffer, no charge and no delivery feed: its task and
    registry entry only (about 5 KiB measured on a debug build)."""
    warm = [raw_connect(porter) for _ in range(20)]
    before = rss_bytes(porter)
    idle = [raw_connect(porter) for _ in range(IDLE_CONNECTIONS)]
    after = rss_bytes(porter)
    per_connection = (after - before) / IDLE_CONNECTIONS
    print(f"{IDLE_CONNECTIONS} idle STOMP connections: {per_connection / 1024:.1f} KiB each")
    assert per_connection <= IDLE_CONNECTION_BYTES_MAX
    for s in warm + idle:
        s.close()
    assert server_still_serves(porter)


def test_subscriptions_per_connection_are_limited(porter):
    s = raw_connect(porter)
    frames = b"".join(f"SUBSCRIBE\nid:{i}\ndestination:/topic/t{i}\n\n\x00".encode() for i in range(51))
    s.sendall(frames)
    frame = read_frame(s)
    assert frame.startswith(b"ERROR\n") and b"message:limit reached" in frame and b"subscriptions_max" in frame
    assert wait_closed(s)


def test_concurrent_clients_each_get_their_own_messages(porter):
    results: dict[int, list[str]] = {}

    def worker(n: int):
        q = f"/queue/{fresh('w')}"
        with connect(porter) as (c, l):
            c.subscribe(q, id="s")
            for i in range(20):
                c.send(q, f"{n}-{i}")
            results[n] = [l.next().body for _ in range(20)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 2)
    assert {n: r for n, r in results.items()} == {n: [f"{n}-{i}" for i in range(20)] for n in range(4)}
