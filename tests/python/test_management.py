"""The HTTP management API (issue 17) as its users meet it: RabbitMQ's own CLI, `rabbitmqadmin`
(from Debian's rabbitmq-server package, see scripts/rabbitmqadmin.sh), declaring, listing,
purging and deleting while pika publishes; plain HTTP for the errors RabbitMQ's API returns;
confluent-kafka for a consumer group's lag; and Prometheus's own parser for /metrics."""

from __future__ import annotations

import json
from urllib.parse import quote
import subprocess
import time
from pathlib import Path

import pika
import pytest
import requests
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from amqp_helpers import connection_parameters, publish_confirmed
from kafka_helpers import create_topic, fill_and_commit, make_consumer

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH = ("guest", "guest")
REQUEST_S = 10.0
CLI_S = 30.0
WAIT_S = 10.0


@pytest.fixture(scope="module")
def rabbitmqadmin() -> str:
    """The path of rabbitmqadmin (installed by scripts/test.sh's deps step)."""
    result = subprocess.run([str(REPO_ROOT / "scripts" / "rabbitmqadmin.sh")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def admin(tool: str, server, *args: str) -> str:
    """Runs rabbitmqadmin against the server's HTTP listener; returns its stdout."""
    command = [tool, "-H", "127.0.0.1", "-P", str(server.http_port), "-u", "guest", "-p", "guest",
               *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=CLI_S)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def api(server, method: str, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    return requests.request(method, server.http_url + path, timeout=REQUEST_S, **kwargs)


def queue_depth(server, name: str) -> int:
    response = api(server, "GET", f"/api/queues/%2F/{name}")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_rabbitmqadmin_declares_lists_purges_and_deletes(porter, rabbitmqadmin):
    assert "queue declared" in admin(rabbitmqadmin, porter, "declare", "queue", "name=orders",
                                     "durable=true", 'arguments={"x-max-length": 100}')
    assert "exchange declared" in admin(rabbitmqadmin, porter, "declare", "exchange", "name=shop",
                                        "type=topic")
    admin(rabbitmqadmin, porter, "declare", "binding", "source=shop", "destination=orders",
          "routing_key=order.*")

    # pika publishes through the binding the CLI made; the CLI sees the depth change.
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    publish_confirmed(channel, "shop", "order.created", [b"o1", b"o2", b"o3"])
    queues = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "list", "queues"))
    orders = next(q for q in queues if q["name"] == "orders")
    assert orders["messages"] == 3 and orders["messages_ready"] == 3
    assert orders["arguments"] == {"x-max-length": 100} and orders["durable"] is True

    bindings = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "list", "bindings"))
    assert {"source": "shop", "destination": "orders", "routing_key": "order.*"}.items() <= next(
        b for b in bindings if b["source"] == "shop").items()
    overview = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "show", "overview"))
    assert overview[0]["product_name"] == "Porter"
    assert overview[0]["queue_totals"]["messages"] == 3

    assert "queue purged" in admin(rabbitmqadmin, porter, "purge", "queue", "name=orders")
    assert queue_depth(porter, "orders") == 0

    admin(rabbitmqadmin, porter, "delete", "binding", "source=shop", "destination_type=queue",
          "destination=orders", "properties_key=order.*")
    publish_confirmed(channel, "shop", "order.created", [b"unrouted"])
    assert queue_depth(porter, "orders") == 0, "the deleted binding still routes"

    assert "queue deleted" in admin(rabbitmqadmin, porter, "delete", "queue", "name=orders")
    assert "exchange deleted" in admin(rabbitmqadmin, porter, "delete", "exchange", "name=shop")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.queue_declare("orders", passive=True)
    assert closed.value.reply_code == 404
    connection.close()


def test_queues_declared_by_amqp_clients_are_listed_with_consumers(porter):
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    channel.queue_declare("work", durable=True)
    channel.basic_consume("work", lambda *a: None)
    listed = wait_for(lambda: [q for q in api(porter, "GET", "/api/queues/%2F").json()
                               if q["name"] == "work" and q["consumers"] == 1], "the consumer")
    assert listed[0]["vhost"] == "/" and listed[0]["exclusive"] is False
    connection.close()


def test_rabbitmqadmin_lists_channels_and_consumers_with_their_unacked_deliveries(porter, rabbitmqadmin):
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    publisher = connection.channel()
    publisher.confirm_delivery()
    publisher.queue_declare("tasks", durable=True)
    publish_confirmed(publisher, "", "tasks", [b"t1", b"t2", b"t3"])
    worker = connection.channel()
    worker.basic_qos(prefetch_count=2)
    worker.basic_consume("tasks", lambda *a: None, consumer_tag="worker-1")

    def worker_channel():
        channels = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "list", "channels"))
        found = [c for c in channels if c["number"] == worker.channel_number]
        return found if found and found[0]["messages_unacknowledged"] == 2 else None
    listed = wait_for(worker_channel, "two unacknowledged deliveries on the worker's channel")[0]
    assert listed["prefetch_count"] == 2 and listed["consumer_count"] == 1
    assert listed["confirm"] is False and listed["vhost"] == "/" and listed["user"] == "guest"
    channels = api(porter, "GET", "/api/channels").json()
    assert next(c for c in channels if c["number"] == publisher.channel_number)["confirm"] is True

    consumers = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "list", "consumers"))
    assert [(c["consumer_tag"], c["queue"]["name"], c["ack_required"], c["prefetch_count"])
            for c in consumers] == [("worker-1", "tasks", True, 2)]
    assert consumers[0]["channel_details"]["name"] == listed["name"]
    assert api(porter, "GET", "/api/consumers/%2F").json()[0]["consumer_tag"] == "worker-1"

    shown = api(porter, "GET", "/api/channels/" + quote(listed["name"], safe=""))
    assert shown.status_code == 200
    assert shown.json()["consumer_details"][0]["consumer_tag"] == "worker-1"
    connection_name = listed["connection_details"]["name"]
    on_connection = api(porter, "GET", f"/api/connections/{quote(connection_name, safe='')}/channels")
    assert sorted(c["number"] for c in on_connection.json()) == sorted(
        [publisher.channel_number, worker.channel_number])
    assert api(porter, "GET", "/api/channels/" + quote("1.2.3.4:5 -> 6.7.8.9:10 (1)", safe="")
               ).status_code == 404

    connection.close()
    wait_for(lambda: api(porter, "GET", "/api/channels").json() == [], "the channels to go")
    assert api(porter, "GET", "/api/consumers").json() == []


def test_mqtt_and_stomp_subscriptions_are_listed_as_consumers(porter):
    import stomp
    from mqtt_helpers import Client
    mqtt = Client(porter.mqtt_port, client_id="sensor-reader", clean=False)
    mqtt.connect()
    mqtt.subscribe("sensors/+/temp", qos=1)
    conn = stomp.Connection([("127.0.0.1", porter.stomp_port)])
    conn.connect("guest", "guest", wait=True)
    conn.subscribe("/queue/stomp-jobs", id="1", ack="client")
    try:
        def both():
            consumers = api(porter, "GET", "/api/consumers").json()
            protocols = {c.get("protocol") for c in consumers}
            return consumers if {"MQTT", "STOMP"} <= protocols else None
        consumers = wait_for(both, "an MQTT and a STOMP consumer")
        by_protocol = {c["protocol"]: c for c in consumers}
        assert "sensor-reader" in by_protocol["MQTT"]["queue"]["name"]
        assert by_protocol["STOMP"]["queue"]["name"] == "stomp-jobs"
        assert by_protocol["STOMP"]["ack_required"] is True
    finally:
        conn.disconnect()
        mqtt.close()


def test_errors_are_rabbitmq_json_with_the_right_status(porter):
    assert api(porter, "GET", "/api/overview", auth=None).status_code == 401
    refused = api(porter, "GET", "/api/overview", auth=("guest", "wrong"))
    assert refused.status_code == 401 and refused.json()["error"] == "not_authorized"
    assert "Basic" in refused.headers["WWW-Authenticate"]

    missing = api(porter, "GET", "/api/queues/%2F/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "Object Not Found",
                                                              "reason": "Not Found"}
    assert api(porter, "GET", "/api/queues/no-such-vhost").status_code == 404
    bad = api(porter, "PUT", "/api/queues/%2F/q", data=b"{not json")
    assert bad.status_code == 400 and "JSON" in bad.json()["reason"]
    assert api(porter, "PUT", "/api/queues/%2F/q", json={"durable": "maybe"}).status_code == 400
    assert api(porter, "PUT", "/api/queues/%2F/amq.reserved", json={}).status_code == 403

    assert api(porter, "PUT", "/api/queues/%2F/q", json={"durable": True}).status_code == 201
    assert api(porter, "PUT", "/api/queues/%2F/q", json={"durable": True}).status_code == 204
    inequivalent = api(porter, "PUT", "/api/queues/%2F/q", json={"durable": False})
    assert inequivalent.status_code == 400
    assert "inequivalent arg 'durable'" in inequivalent.json()["reason"]

    assert api(porter, "PUT", "/api/exchanges/%2F/x", json={}).status_code == 400  # no type
    assert api(porter, "PUT", "/api/exchanges/%2F/x", json={"type": "nonsense"}).status_code >= 400
    assert api(porter, "GET", "/api/queues?page=1&page_size=501").status_code == 400


def test_lists_page_and_filter(porter):
    for i in range(7):
        assert api(porter, "PUT", f"/api/queues/%2F/page-{i}", json={}).status_code == 201
    page = api(porter, "GET", "/api/queues?page=2&page_size=3&name=page-").json()
    assert page["filtered_count"] == 7 and page["page_count"] == 3
    assert [q["name"] for q in page["items"]] == ["page-3", "page-4", "page-5"]


def test_topics_and_group_lag_as_kafka_consumer_groups_shows_it(porter):
    fill_and_commit(porter.bootstrap, "clicks", 10, 2, "reports", [2, 5])

    topic = api(porter, "GET", "/api/topics/clicks").json()
    assert topic["partitions"] == 2 and topic["messages"] == 10
    assert [p["high_watermark"] for p in topic["partition_details"]] == [5, 5]
    group = api(porter, "GET", "/api/groups/reports").json()
    lags = {(o["topic"], o["partition"]): o["lag"] for o in group["offsets"]}
    assert lags == {("clicks", 0): 3, ("clicks", 1): 0} and group["lag"] == 3
    assert "reports" in [g["group_id"] for g in api(porter, "GET", "/api/groups").json()]
    assert api(porter, "GET", "/api/groups/nobody").status_code == 404

    samples = metric_samples(porter)
    assert samples[("porter_group_lag", (("group", "reports"), ("partition", "0"), ("topic", "clicks")))] == 3
    assert samples[("porter_group_members", (("group", "reports"),))] == 0
    produced = samples[("porter_request_duration_seconds_count", (("operation", "Produce"), ("protocol", "kafka")))]
    assert produced >= 1
    assert samples[("porter_request_duration_seconds_bucket",
                    (("le", "+Inf"), ("operation", "Produce"), ("protocol", "kafka")))] == produced
    assert samples[("porter_fsync_duration_seconds_count", ())] >= 1
    assert samples[("porter_partition_high_watermark", (("partition", "1"), ("topic", "clicks")))] == 5


def metric_samples(server) -> dict:
    """/metrics parsed by Prometheus's own parser: {(name, sorted labels): value}."""
    response = requests.get(server.http_url + "/metrics", timeout=REQUEST_S)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_follow_the_queue_depth(porter):
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("metered", durable=True)
    publish_confirmed(channel, "", "metered", [b"a", b"b"])
    key = ("porter_queue_messages_ready", (("queue", "metered"), ("vhost", "/")))
    assert wait_for(lambda: metric_samples(porter).get(key) == 2, "ready == 2")
    samples = metric_samples(porter)
    assert samples[("porter_connections", (("protocol", "amqp"),))] >= 1
    assert samples[("porter_request_duration_seconds_count",
                    (("operation", "queue.declare"), ("protocol", "amqp")))] == 1
    assert samples[("porter_connections_max", (("protocol", "kafka"),))] > 0
    assert samples[("porter_resource_alarm", (("resource", "disk"),))] == 0
    assert samples[("porter_queues", ())] >= 1
    assert samples[("porter_metrics_series_omitted", ())] == 0
    connection.close()


def test_message_rates_and_counters_follow_the_traffic(porter):
    """Rates are per-second differences of counts read every 5 s (as RabbitMQ's
    collect_statistics_interval): traffic across three readings shows on the queue, the
    overview, the topic and in /metrics' counters."""
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("rated", durable=True)
    create_topic(porter.bootstrap, "rated-topic", 1)
    # A Kafka consumer reads the topic as it grows: its fetches are the topic's read rate.
    consumer = make_consumer(porter.bootstrap)
    consumer.assign([TopicPartition("rated-topic", 0, 0)])
    published = got = 0
    deadline = time.monotonic() + 11.0
    while time.monotonic() < deadline:
        publish_confirmed(channel, "", "rated", [b"m"] * 10)
        published += 10
        for _ in range(5):
            method, _, _ = channel.basic_get("rated", auto_ack=False)
            channel.basic_ack(method.delivery_tag)
            got += 1
        api(porter, "POST", "/api/topics/rated-topic/messages",
            json={"records": [{"value": "r"}] * 5}).raise_for_status()
        consumer.poll(0.2)

    stats = api(porter, "GET", "/api/queues/%2F/rated").json()["message_stats"]
    assert (stats["publish"], stats["deliver_get"], stats["ack"]) == (published, got, got)
    assert stats["publish_details"]["rate"] > 0 and stats["ack_details"]["rate"] > 0
    assert stats["deliver_get_details"]["rate"] > 0 and stats["redeliver"] == 0
    overview = api(porter, "GET", "/api/overview").json()["message_stats"]
    assert overview["publish_details"]["rate"] >= stats["publish_details"]["rate"]
    assert overview["topic_append_details"]["rate"] > 0
    assert overview["topic_read_bytes_details"]["rate"] > 0
    topic = api(porter, "GET", "/api/topics/rated-topic").json()
    assert topic["messages_in_rate"] > 0 and topic["bytes_out_rate"] > 0
    consumer.close()
    connection.close()

    samples = metric_samples(porter)
    labels = (("queue", "rated"), ("vhost", "/"))
    assert samples[("porter_queue_messages_published_total", labels)] == published
    assert samples[("porter_queue_messages_acked_total", labels)] == got
    assert samples[("porter_connection_received_bytes_total", (("protocol", "amqp"),))] > 0
    closed = sum(v for (name, labels), v in samples.items()
                 if name == "porter_connections_closed_total" and ("protocol", "amqp") in labels)
    assert closed >= 1, "pika's closed connection is counted"
    assert samples[("porter_delayed_messages", ())] == 0
    # Half of what was published is still there: its oldest message's age is exported.
    age = samples[("porter_queue_oldest_message_age_seconds", labels)]
    assert 0 <= age < 60
    assert samples[("porter_messages_received_total", (("kind", "queue"),))] >= published
    assert samples[("porter_messages_received_total", (("kind", "topic"),))] >= 5
    assert samples[("porter_messages_delivered_total", (("kind", "queue"),))] >= got
    read = (("partition", "0"), ("topic", "rated-topic"))
    assert samples[("porter_partition_read_bytes_total", read)] > 0


def test_openapi_document_is_valid_and_every_operation_in_it_is_routed(porter):
    from openapi_spec_validator import validate
    document = api(porter, "GET", "/api/openapi.json").json()
    validate(document)
    assert document["info"]["title"] == "Porter management API"
    operations = [(path, method, op) for path, item in document["paths"].items()
                  for method, op in item.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)), "operation ids are unique"
    assert {"/api/queues/{vhost}/{name}", "/api/topics/{name}/messages", "/api/channels",
            "/api/groups/{id}/reset-offsets", "/api/definitions"} <= set(document["paths"])
    assert len(operations) >= 45
    for path, method, op in operations:
        assert op.get("summary") and op.get("tags"), f"{method} {path} is described"
        concrete = path.replace("{vhost}", "%2F")
        for name in ("name", "id", "source", "destination", "props"):
            concrete = concrete.replace("{" + name + "}", "openapi-probe")
        concrete = concrete.replace("{kind}", "q")
        body = {} if method in ("post", "put", "patch") else None
        answer = api(porter, method.upper(), concrete, json=body)
        # The router knows it: anything but 405, and a 404 is the handler's JSON "not found".
        assert answer.status_code != 405, f"{method} {path}"
        if answer.status_code == 404:
            assert answer.json()["error"] == "Object Not Found", f"{method} {path}: {answer.text}"
    assert api(porter, "GET", "/api/openapi.json", auth=None).status_code == 401


def test_readyz_and_the_overview_name_every_listener(porter):
    ready = requests.get(porter.http_url + "/readyz", timeout=REQUEST_S)
    assert ready.status_code == 200 and ready.text == "ready\n"
    overview = api(porter, "GET", "/api/overview").json()
    ports = {(l["protocol"], l["port"]) for l in overview["listeners"]}
    assert ("amqp", porter.amqp_port) in ports and ("http", porter.http_port) in ports
    assert ("kafka", porter.port) in ports
    assert api(porter, "GET", "/api/vhosts").json()[0]["name"] == "/"


def test_every_metric_the_grafana_dashboard_queries_exists(porter):
    """deploy/grafana/porter.json may only query metrics /metrics has (with a queue, a topic and
    a group present, so the per-item families have samples too)."""
    import re

    api(porter, "PUT", "/api/queues/%2F/dashboard", json={})
    create_topic(porter.bootstrap, "dashboard", 1)
    consumer = make_consumer(porter.bootstrap, **{"group.id": "dashboard", "enable.auto.commit": False})
    consumer.assign([TopicPartition("dashboard", 0, 0)])
    consumer.commit(offsets=[TopicPartition("dashboard", 0, 0)], asynchronous=False)
    consumer.close()

    dashboard = json.loads((REPO_ROOT / "deploy" / "grafana" / "porter.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    queried = {name for e in exprs for name in re.findall(r"\bporter_[a-z_]+", e)}
    assert len(queried) >= 10, queried
    present = {name for name, _ in metric_samples(porter)}
    assert queried - present == set(), f"queried but not exported: {queried - present}"


def test_connections_of_every_protocol_are_listed_and_one_can_be_closed(porter, rabbitmqadmin):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    amqp = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listed-device")
    device.connect("127.0.0.1", porter.mqtt_port)
    device.loop_start()

    def listed():
        connections = api(porter, "GET", "/api/connections").json()
        protocols = {c["protocol"] for c in connections}
        return connections if {"AMQP 0-9-1", "MQTT"} <= protocols else None

    connections = wait_for(listed, "an AMQP and an MQTT connection")
    mine = next(c for c in connections if c["protocol"] == "AMQP 0-9-1")
    assert mine["user"] == "guest" and mine["port"] == porter.amqp_port
    assert mine["name"] == f"{mine['peer_host']}:{mine['peer_port']} -> 127.0.0.1:{porter.amqp_port}"
    assert api(porter, "GET", "/api/overview").json()["object_totals"]["connections"] >= 2

    # RabbitMQ's CLI closes it; the client is told 320 CONNECTION_FORCED, as RabbitMQ tells it.
    assert "connection closed" in admin(rabbitmqadmin, porter, "close", "connection",
                                        f"name={mine['name']}")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        amqp.channel().queue_declare("after-close")
        amqp.process_data_events(time_limit=5)
    assert closed.value.reply_code == 320
    assert api(porter, "DELETE", "/api/connections/nobody%20-%3E%20nowhere").status_code == 404
    device.loop_stop()
    device.disconnect()


def test_rabbitmqadmin_publishes_and_gets_as_with_rabbitmq(porter, rabbitmqadmin):
    admin(rabbitmqadmin, porter, "declare", "queue", "name=inbox", "durable=true")
    out = admin(rabbitmqadmin, porter, "publish", "exchange=amq.default", "routing_key=inbox",
                "payload=hello", 'properties={"content_type": "text/plain", "delivery_mode": 2, '
                '"headers": {"trace": "t-1"}}')
    assert "Message published" in out
    assert "NOT routed" in admin(rabbitmqadmin, porter, "publish", "exchange=amq.default",
                                 "routing_key=nowhere", "payload=lost")

    # The default ackmode looks without consuming: the message stays, marked redelivered.
    looked = json.loads(admin(rabbitmqadmin, porter, "-f", "raw_json", "get", "queue=inbox"))
    assert looked[0]["payload"] == "hello" and looked[0]["message_count"] == 0
    assert looked[0]["properties"]["headers"] == {"trace": "t-1"}
    assert queue_depth(porter, "inbox") == 1

    # A pika consumer gets what the API published, properties included.
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    method, properties, body = next(channel.consume("inbox", inactivity_timeout=WAIT_S))
    assert body == b"hello" and method.redelivered
    assert properties.content_type == "text/plain" and properties.headers == {"trace": "t-1"}
    channel.basic_nack(method.delivery_tag, requeue=True)
    channel.cancel()
    connection.close()

    taken = api(porter, "POST", "/api/queues/%2F/inbox/get",
                json={"count": 5, "ackmode": "ack_requeue_false", "encoding": "base64"}).json()
    assert [m["payload"] for m in taken] == ["aGVsbG8="] and taken[0]["payload_encoding"] == "base64"
    assert queue_depth(porter, "inbox") == 0
    assert api(porter, "POST", "/api/queues/%2F/inbox/get", json={"count": 1}).json() == []
    assert api(porter, "POST", "/api/queues/%2F/inbox/get",
               json={"count": 1, "ackmode": "sideways"}).status_code == 400
    assert api(porter, "POST", "/api/exchanges/%2F/amq.default/publish",
               json={"routing_key": "inbox", "payload": "%%", "payload_encoding": "base64"}
               ).status_code == 400
    assert api(porter, "POST", "/api/exchanges/%2F/missing/publish",
               json={"routing_key": "x", "payload": "y"}).status_code == 404


def test_definitions_export_and_import_into_a_fresh_broker(porter, rabbitmqadmin, tmp_path_factory):
    """rabbitmqadmin exports one broker's definitions and imports them into another; the second
    then routes as the first did, and its topic exists with the same partitions and config."""
    admin(rabbitmqadmin, porter, "declare", "exchange", "name=billing", "type=direct")
    admin(rabbitmqadmin, porter, "declare", "queue", "name=invoices", 'arguments={"x-max-length": 50}')
    admin(rabbitmqadmin, porter, "declare", "binding", "source=billing", "destination=invoices",
          "routing_key=invoice")
    created = api(porter, "PUT", "/api/topics/ledger", json={"partitions": 3,
                                                             "config": {"retention.ms": 3600000}})
    assert created.status_code == 201, created.text
    assert api(porter, "PUT", "/api/topics/ledger", json={}).status_code == 409
    assert api(porter, "PUT", "/api/topics/bad%20name", json={}).status_code == 400
    assert api(porter, "PUT", "/api/topics/t", json={"config": {"no.such": "1"}}).status_code == 400
    exported = tmp_path_factory.mktemp("defs") / "definitions.json"
    admin(rabbitmqadmin, porter, "export", str(exported))
    definitions = json.loads(exported.read_text())
    assert {"name": "invoices", "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-max-length": 50}} in definitions["queues"]
    assert {t["name"]: t["partitions"] for t in definitions["topics"]}.get("ledger") == 3
    assert all(not e["name"].startswith("amq.") for e in definitions["exchanges"])

    from conftest import run_porter
    second_gen = run_porter(tmp_path_factory.mktemp("second"))
    second = next(second_gen)
    try:
        admin(rabbitmqadmin, second, "import", str(exported))
        admin(rabbitmqadmin, second, "import", str(exported))  # idempotent
        assert queue_depth(second, "invoices") == 0
        connection = pika.BlockingConnection(connection_parameters(second.amqp_url))
        channel = connection.channel()
        channel.confirm_delivery()
        publish_confirmed(channel, "billing", "invoice", [b"inv-1"])
        connection.close()
        assert queue_depth(second, "invoices") == 1
        ledger = api(second, "GET", "/api/topics/ledger").json()
        assert ledger["partitions"] == 3 and ledger["config"]["retention.ms"] == "3600000"
        with_policies = dict(definitions, policies=[{"name": "ha"}])
        answer = api(second, "POST", "/api/definitions", json=with_policies).json()
        assert answer["skipped"] and "policies" in answer["skipped"][0]
    finally:
        next(second_gen, None)

    assert api(porter, "DELETE", "/api/topics/ledger").status_code == 204
    assert api(porter, "GET", "/api/topics/ledger").status_code == 404


def test_flower_reads_celery_queue_lengths_from_the_api(porter):
    """Celery sends tasks to Porter over AMQP; Flower's RabbitMQ broker module (what its
    dashboard and /api/queues/length use) reads the queue's length from Porter's API."""
    import asyncio

    from celery import Celery
    from flower.utils.broker import RabbitMQ

    app = Celery("porter-check", broker=porter.amqp_url)
    app.conf.broker_connection_retry_on_startup = False
    for i in range(3):
        app.send_task("tasks.add", args=(i, i))
    app.close()

    broker = RabbitMQ(porter.amqp_url.replace("%2F", ""),
                      f"http://guest:guest@127.0.0.1:{porter.http_port}/api/")

    async def lengths():
        return {q["name"]: q["messages"] for q in await broker.queues(["celery"])}

    def celery_length():
        # A loop of its own, not asyncio.run: that leaves the main thread "without a current
        # event loop", and rocketmq-python-client, in later tests, asks for it and fails.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(lengths()).get("celery")
        finally:
            loop.close()

    assert wait_for(lambda: celery_length() == 3, "celery's queue length 3")


def test_a_group_with_members_is_not_reset_or_deleted(porter):
    create_topic(porter.bootstrap, "busy", 1)
    consumer = make_consumer(porter.bootstrap, **{"group.id": "busy-readers", "session.timeout.ms": 10000})
    consumer.subscribe(["busy"])
    wait_for(lambda: consumer.poll(0.2) is None and consumer.assignment(), "the consumer's assignment", 30)
    refused = api(porter, "POST", "/api/groups/busy-readers/reset-offsets",
                  json={"topic": "busy", "to": "earliest"})
    assert refused.status_code == 409 and "active members" in refused.json()["reason"]
    assert api(porter, "DELETE", "/api/groups/busy-readers").status_code == 409
    assert api(porter, "POST", "/api/groups/busy-readers/reset-offsets",
               json={"topic": "missing", "to": "earliest"}).status_code == 404
    assert api(porter, "POST", "/api/groups/busy-readers/reset-offsets",
               json={"topic": "busy", "to": "offset"}).status_code == 400
    consumer.close()
