"""The `porter` CLI's management commands against a live broker, as an operator uses them:
tables by default, `--output json` for scripts, exit statuses that say what went wrong, and the
same numbers other tools see (pika publishes, confluent-kafka commits a group's offsets)."""

from __future__ import annotations

import json
import os
import subprocess

import pika
from confluent_kafka import TopicPartition

from amqp_helpers import connection_parameters, publish_confirmed
from conftest import PORTER_BIN
from kafka_helpers import fill_and_commit

CLI_S = 30.0


def cli(server, *args: str, password: str = "guest") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTER_")}
    env.update(PORTER_URL=server.http_url, PORTER_PASSWORD=password)
    return subprocess.run([str(PORTER_BIN), *args], capture_output=True, text=True, timeout=CLI_S,
                          env=env)


def ok(server, *args: str) -> str:
    result = cli(server, *args)
    assert result.returncode == 0, f"porter {' '.join(args)}: {result.stderr}"
    return result.stdout


def rows(table: str) -> list[list[str]]:
    """A table's rows (heading first), split on runs of two or more spaces."""
    import re
    return [re.split(r"\s{2,}", line.strip()) for line in table.strip().splitlines()]


def test_queues_from_declare_to_delete(porter):
    assert ok(porter, "queues", "declare", "orders", "--arg", "x-max-length=1000").strip() == \
        "queue orders declared"
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    publish_confirmed(channel, "", "orders", [b"o1", b"o2"])
    connection.close()

    table = rows(ok(porter, "queues", "list"))
    assert table[0][:3] == ["NAME", "MESSAGES", "READY"]
    assert ["orders", "2", "2"] == next(r for r in table if r[0] == "orders")[:3]
    listed = json.loads(ok(porter, "queues", "list", "--output", "json"))
    assert next(q for q in listed if q["name"] == "orders")["arguments"] == {"x-max-length": 1000}

    peeked = rows(ok(porter, "queues", "get", "orders", "--count", "5"))
    assert [r[-1] for r in peeked[1:]] == ["o1", "o2"]
    assert ok(porter, "queues", "publish", "orders", "o3").strip() == "published"
    assert ok(porter, "queues", "purge", "orders").strip() == "queue orders purged"
    assert json.loads(ok(porter, "queues", "list", "--output", "json"))[0]["messages"] == 0
    assert ok(porter, "queues", "delete", "orders", "--if-empty").strip() == "queue orders deleted"


def test_exchanges_and_bindings_route_what_is_published(porter):
    ok(porter, "queues", "declare", "audit")
    ok(porter, "exchanges", "declare", "shop", "--type", "topic")
    ok(porter, "bindings", "declare", "shop", "audit", "--routing-key", "order.*")
    assert ["shop", "audit", "queue", "order.*"] in rows(ok(porter, "bindings", "list"))
    ok(porter, "exchanges", "publish", "shop", "order.paid", "paid")
    unrouted = cli(porter, "exchanges", "publish", "shop", "invoice.sent", "lost")
    assert unrouted.returncode == 4 and "no queue is bound" in unrouted.stderr
    ok(porter, "bindings", "delete", "shop", "audit", "--routing-key", "order.*")
    assert ["shop", "audit", "queue", "order.*"] not in rows(ok(porter, "bindings", "list"))
    assert json.loads(ok(porter, "queues", "list", "--output", "json"))[0]["messages"] == 1


def test_group_lag_reads_like_kafka_consumer_groups(porter):
    fill_and_commit(porter.bootstrap, "clicks", 8, 1, "reports", [3])

    described = rows(ok(porter, "groups", "describe", "reports").split("\n\n", 1)[1])
    assert described[0] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    assert described[1] == ["reports", "clicks", "0", "3", "8", "5"]
    assert ["clicks", "1", "8"] == next(r for r in rows(ok(porter, "topics", "list")) if r[0] == "clicks")[:3]
    partitions = rows(ok(porter, "topics", "describe", "clicks").split("\n\n")[1])
    assert partitions[1][:3] == ["0", "0", "8"]
    assert "reports" in ok(porter, "groups", "list")


def test_status_names_the_listeners(porter):
    status = ok(porter, "status")
    assert status.startswith("Porter ")
    assert f"amqp      127.0.0.1  {porter.amqp_port}" in status or \
        any(r[:3] == ["amqp", "127.0.0.1", str(porter.amqp_port)] for r in rows(status.split("\n\n")[-1]))
    overview = json.loads(ok(porter, "status", "--output", "json"))
    assert overview["product_name"] == "Porter"


def test_exit_statuses_say_what_went_wrong(porter, tmp_path):
    missing = cli(porter, "queues", "delete", "nope")
    assert missing.returncode == 4 and "404" in missing.stderr
    refused = cli(porter, "status", password="wrong")
    assert refused.returncode == 5 and "401" in refused.stderr
    ok(porter, "queues", "declare", "durable-one")
    invalid = cli(porter, "queues", "declare", "durable-one", "--transient")
    assert invalid.returncode == 3 and "inequivalent" in invalid.stderr
    usage = cli(porter, "queues", "frobnicate")
    assert usage.returncode == 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTER_")}
    down = subprocess.run([str(PORTER_BIN), "status", "--url", "http://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=CLI_S, env=env)
    assert down.returncode == 6 and "cannot reach" in down.stderr
    completion = subprocess.run([str(PORTER_BIN), "completions", "bash"], capture_output=True,
                                text=True, timeout=CLI_S, env=env)
    assert completion.returncode == 0 and "_porter()" in completion.stdout
    help_text = subprocess.run([str(PORTER_BIN), "queues", "--help"], capture_output=True,
                               text=True, timeout=CLI_S, env=env | {"PORTER_PASSWORD": "s3cret"})
    assert "Examples:" in help_text.stdout and "s3cret" not in help_text.stdout


def test_topics_and_definitions_round_trip(porter, tmp_path):
    assert ok(porter, "topics", "create", "events", "--partitions", "4", "--config",
              "retention.ms=60000").strip() == "topic events created"
    exists = cli(porter, "topics", "create", "events")
    assert exists.returncode == 3 and "409" in exists.stderr
    ok(porter, "queues", "declare", "jobs")
    backup = tmp_path / "backup.json"
    ok(porter, "definitions", "export", str(backup))
    definitions = json.loads(backup.read_text())
    assert [q["name"] for q in definitions["queues"]] == ["jobs"]
    assert next(t for t in definitions["topics"] if t["name"] == "events")["config"] == {"retention.ms": "60000"}
    ok(porter, "queues", "delete", "jobs")
    ok(porter, "topics", "delete", "events")
    assert "imported" in ok(porter, "definitions", "import", str(backup))
    queues = [q["name"] for q in json.loads(ok(porter, "queues", "list", "--output", "json"))]
    assert "jobs" in queues
    topics = {t["name"]: t for t in json.loads(ok(porter, "topics", "list", "--output", "json"))}
    assert topics["events"]["partitions"] == 4


def test_group_offsets_reset_and_group_deleted_like_kafka_consumer_groups(porter):
    consumer = fill_and_commit(porter.bootstrap, "replay", 6, 2, "replayers", [3, 3], keep_open=True)

    moved = rows(ok(porter, "groups", "reset-offsets", "replayers", "--topic", "replay", "--to-earliest"))
    assert moved[1:] == [["replay", "0", "0"], ["replay", "1", "0"]]
    committed = consumer.committed([TopicPartition("replay", 0), TopicPartition("replay", 1)], timeout=10)
    assert [tp.offset for tp in committed] == [0, 0], "confluent-kafka does not see the reset"
    ok(porter, "groups", "reset-offsets", "replayers", "--topic", "replay", "--to-offset", "99")
    lag = json.loads(ok(porter, "groups", "describe", "replayers", "--output", "json"))["lag"]
    assert lag == 0, "an offset past the end is clamped to the high watermark"
    no_target = cli(porter, "groups", "reset-offsets", "replayers", "--topic", "replay")
    assert no_target.returncode == 3
    consumer.close()

    assert ok(porter, "groups", "delete", "replayers").strip() == "group replayers deleted"
    assert cli(porter, "groups", "describe", "replayers").returncode == 4
    assert cli(porter, "groups", "delete", "replayers").returncode == 4


def test_channels_and_consumers_of_a_pika_worker(porter):
    connection = pika.BlockingConnection(connection_parameters(porter.amqp_url))
    channel = connection.channel()
    channel.queue_declare("emails", durable=True)
    channel.basic_qos(prefetch_count=10)
    channel.basic_consume("emails", lambda *a: None, consumer_tag="mailer")
    channels = rows(ok(porter, "connections", "channels"))
    assert channels[0] == ["CHANNEL", "USER", "CONSUMERS", "UNACKED", "PREFETCH", "CONFIRM"]
    assert channels[1][1:] == ["guest", "1", "0", "10", "false"]
    consumers = rows(ok(porter, "connections", "consumers"))
    assert consumers[1][:2] == ["mailer", "emails"] and consumers[1][3:] == ["true", "10"]
    connection.close()
