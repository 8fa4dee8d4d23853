"""`porter produce` / `porter consume` and the topic commands that change data (alter,
delete-records, reset offsets to a time), against a live broker, checked with other people's
clients: what the CLI writes, confluent-kafka and kafka-python read (keys partitioned as
kafka-python's murmur2 partitioner places them); what they write, the CLI prints; what pika
publishes, `consume --queue` takes."""

from __future__ import annotations

import json
import time

import pika
import requests
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource
from kafka import KafkaProducer

from amqp_helpers import connection_parameters, publish_confirmed
from kafka_helpers import (DeliveryTracker, admin_client, all_topics, consume_exactly, create_topic,
                           fill_and_commit, flush_all, make_consumer, make_producer, produce,
                           watermarks)
from test_cli_management import cli, ok

AUTH = ("guest", "guest")


def test_produce_lands_where_kafka_clients_put_keys_and_reads_back_with_kafka_clients(porter):
    create_topic(porter.bootstrap, "clicks", 4)
    assert ok(porter, "produce", "clicks", "--key", "user-7", "-H", "source=cli", "v1", "v2").strip() \
        == "produced 2 to topic clicks"
    lines = "user-1:a\nuser-2:b\nuser-3:c\n"
    import subprocess
    from conftest import PORTER_BIN
    piped = subprocess.run([str(PORTER_BIN), "produce", "clicks", "-K", ":", "--output", "json"],
                           input=lines, capture_output=True, text=True, timeout=30,
                           env={"PORTER_URL": porter.http_url})
    assert piped.returncode == 0, piped.stderr
    placed = json.loads(piped.stdout)
    assert placed["produced"] == 3

    # kafka-python's default partitioner is Java's (murmur2): a key sent by it and by the CLI
    # goes to the same partition.
    producer = KafkaProducer(bootstrap_servers=porter.bootstrap)
    for key in ["user-1", "user-2", "user-3", "user-7"]:
        sent = producer.send("clicks", key=key.encode(), value=b"from kafka-python").get(timeout=30)
        cli_partition = [p["partition"] for p, k in zip(placed["offsets"], ["user-1", "user-2", "user-3"])
                         if k == key]
        if cli_partition:
            assert sent.partition == cli_partition[0], key
    producer.close()

    # confluent-kafka reads the CLI's records with their keys and headers.
    counts = {p: watermarks(porter.bootstrap, "clicks", p)[1] for p in range(4)}
    received = consume_exactly(porter.bootstrap, "clicks", counts)
    from_cli = [r for records in received.values() for r in records if r.key == b"user-7"
                and r.value in (b"v1", b"v2")]
    assert [r.value for r in from_cli] == [b"v1", b"v2"]
    assert from_cli[0].headers == [("source", b"cli")]


def test_consume_prints_kafka_records_from_any_position_in_kcat_formats(porter):
    create_topic(porter.bootstrap, "orders", 2)
    producer, tracker = make_producer(porter.bootstrap), DeliveryTracker()
    deadline = time.monotonic() + 30
    # Producer timestamps a second apart, in the past, so "newest" and "after" are unambiguous.
    base = int(time.time() * 1000) - 60_000
    for i in range(10):
        produce(producer, tracker, deadline, topic="orders", partition=i % 2, key=b"k%d" % (i % 3),
                value=b"order %d" % i, headers=[("n", b"%d" % i)], timestamp=base + i * 1000)
    flush_all(producer, tracker, 10)
    between = int(time.time() * 1000)
    time.sleep(0.05)
    produce(producer, tracker, deadline, topic="orders", partition=0, value=b"late")
    flush_all(producer, tracker, 11)

    everything = ok(porter, "consume", "orders", "-f", "%p/%o %k=%s [%h]\\n").splitlines()
    assert len(everything) == 11
    assert "0/0 k0=order 0 [n=0]" in everything
    assert "1/4 k0=order 9 [n=9]" in everything

    assert ok(porter, "consume", "orders", "-p", "1", "-o", "-2").splitlines() == ["order 7", "order 9"]
    assert ok(porter, "consume", "orders", "-p", "0", "-o", "2", "-c", "2").splitlines() == \
        ["order 4", "order 6"]
    assert ok(porter, "consume", "orders", "--from-time", str(between)).splitlines() == ["late"]
    assert ok(porter, "consume", "orders", "-o", f"s@{between}").splitlines() == ["late"]
    assert ok(porter, "consume", "orders", "-o", "end").strip() == ""
    newest_k1 = ok(porter, "consume", "orders", "--key", "k1", "-c", "2").splitlines()
    assert newest_k1 == ["order 4", "order 7"]

    as_json = [json.loads(line) for line in
               ok(porter, "consume", "orders", "-p", "0", "-c", "1", "--output", "json").splitlines()]
    assert as_json == [{"partition": 0, "offset": 0, "timestamp": as_json[0]["timestamp"],
                        "key": "k0", "key_encoding": "string", "value": "order 0",
                        "value_encoding": "string", "headers": {"n": "0"}}]

    # A browse moves no group: a consumer group starting afterwards still reads from the start.
    assert "orders" not in json.dumps(requests.get(f"{porter.http_url}/api/groups", auth=AUTH).json())


def test_follow_waits_for_new_records(porter):
    import subprocess
    from conftest import PORTER_BIN
    create_topic(porter.bootstrap, "live", 1)
    follower = subprocess.Popen([str(PORTER_BIN), "consume", "live", "-o", "end", "--follow",
                                 "-c", "2"], stdout=subprocess.PIPE, text=True,
                                env={"PORTER_URL": porter.http_url})
    try:
        time.sleep(1.0)
        ok(porter, "produce", "live", "first", "second")
        out, _ = follower.communicate(timeout=30)
        assert out.splitlines() == ["first", "second"]
        assert follower.returncode == 0
    finally:
        follower.kill()


def test_queues_produce_and_consume_with_pika_on_the_other_side(porter):
    ok(porter, "queues", "declare", "jobs")
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    publish_confirmed(channel, "", "jobs", [b"from pika 1", b"from pika 2"])
    taken = ok(porter, "consume", "jobs", "--queue", "-f", "%k: %s\\n").splitlines()
    assert taken == ["jobs: from pika 1", "jobs: from pika 2"]
    assert channel.queue_declare("jobs", passive=True).method.message_count == 0

    ok(porter, "produce", "jobs", "--queue", "-H", "trace=abc", "from the cli")
    method, properties, body = channel.basic_get("jobs", auto_ack=True)
    assert body == b"from the cli"
    assert properties.headers == {"trace": "abc"}
    assert properties.delivery_mode == 2

    ok(porter, "exchanges", "declare", "shop", "--type", "topic")
    ok(porter, "bindings", "declare", "shop", "jobs", "--routing-key", "order.*")
    ok(porter, "produce", "shop", "--exchange", "--key", "order.created", "routed")
    assert channel.basic_get("jobs", auto_ack=True)[2] == b"routed"
    unrouted = cli(porter, "produce", "shop", "--exchange", "--key", "nothing.bound", "x")
    assert unrouted.returncode == 4 and "no queue is bound" in unrouted.stderr
    connection.close()


def test_topics_alter_and_delete_records_as_kafka_admin_sees_them(porter):
    create_topic(porter.bootstrap, "metrics", 2)
    ok(porter, "topics", "alter", "metrics", "--config", "retention.ms=3600000",
       "--config", "cleanup.policy=compact", "--partitions", "5")
    admin = admin_client(porter.bootstrap)
    assert len(all_topics(porter.bootstrap)["metrics"].partitions) == 5
    resource = ConfigResource(ConfigResource.Type.TOPIC, "metrics")
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["retention.ms"].value == "3600000"
    assert configs["cleanup.policy"].value == "compact"

    # Removing one override leaves the other; shrinking is refused.
    ok(porter, "topics", "alter", "metrics", "--delete-config", "cleanup.policy")
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "delete"
    assert configs["retention.ms"].value == "3600000"
    shrink = cli(porter, "topics", "alter", "metrics", "--partitions", "3")
    assert shrink.returncode == 3 and "grow, not shrink" in shrink.stderr
    bad = cli(porter, "topics", "alter", "metrics", "--config", "retention.ms=soon")
    assert bad.returncode == 3

    ok(porter, "produce", "metrics", "-p", "1", *[f"m{i}" for i in range(6)])
    ok(porter, "topics", "delete-records", "metrics", "--partition", "1", "--before", "4")
    assert watermarks(porter.bootstrap, "metrics", 1) == (4, 6)
    assert ok(porter, "consume", "metrics", "-p", "1").splitlines() == ["m4", "m5"]
    ok(porter, "topics", "delete-records", "metrics", "--partition", "1", "--before", "-1")
    assert watermarks(porter.bootstrap, "metrics", 1) == (6, 6)


def test_reset_a_group_to_a_time(porter):
    fill_and_commit(porter.bootstrap, "events", 4, 1, "replay", [4])
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    ok(porter, "produce", "events", "-p", "0", "after-1", "after-2")
    moved = json.loads(ok(porter, "groups", "reset-offsets", "replay", "--topic", "events",
                          "--to-datetime", str(cut), "--output", "json"))
    assert moved == [{"topic": "events", "partition": 0, "offset": 4}]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0))
    ok(porter, "groups", "reset-offsets", "replay", "--topic", "events", "--to-datetime", iso)
    consumer = make_consumer(porter.bootstrap, **{"group.id": "replay"})
    committed = consumer.committed([TopicPartition("events", 0)], timeout=30)
    consumer.close()
    assert committed[0].offset == 0
    wrong = cli(porter, "groups", "reset-offsets", "replay", "--topic", "events",
                "--to-datetime", "last tuesday")
    assert wrong.returncode == 3


def test_browse_and_produce_refuse_bad_input(porter):
    create_topic(porter.bootstrap, "t", 1)
    base = f"{porter.http_url}/api/topics"
    for query in ["limit=0", "limit=501", "from=soon", "partition=7", "encoding=hex",
                  "key=a&from=first"]:
        answer = requests.get(f"{base}/t/messages?{query}", auth=AUTH)
        assert answer.status_code == 400, query
        assert answer.json()["error"] == "bad_request"
    assert requests.get(f"{base}/nope/messages", auth=AUTH).status_code == 404
    for body in [{}, {"records": []}, {"records": [{"value": "!", "value_encoding": "base64"}]},
                 {"records": [{"value": "x", "partition": 9}]}]:
        answer = requests.post(f"{base}/t/messages", json=body, auth=AUTH)
        assert answer.status_code in (400, 404), body
    too_many = {"records": [{"value": "x"}] * 1001}
    assert requests.post(f"{base}/t/messages", json=too_many, auth=AUTH).status_code == 400
    # Binary values come back as base64, and a byte budget bounds a page.
    requests.post(f"{base}/t/messages", auth=AUTH, json={"records": [
        {"value": "/wA=", "value_encoding": "base64"}, {"value": "x" * 1000}, {"value": "y"}]}
    ).raise_for_status()
    page = requests.get(f"{base}/t/messages?max_bytes=10", auth=AUTH).json()
    assert [m["value"] for m in page["messages"]] == ["/wA="]
    assert page["messages"][0]["value_encoding"] == "base64"
    assert page["more"] is True and page["next_offsets"] == {"0": 1}
