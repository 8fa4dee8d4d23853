"""The chat page's history, read from the log: messages published with Eclipse Paho on
`chat/rooms/<room>` are bridged into the Kafka topic `porter.chat` (keyed by routing key), so
`GET /chat/history/<room>` on the HTTP listener returns a room's last messages, a Kafka consumer
(confluent-kafka) reads the same records, and both survive kill -9."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from conftest import run_porter
from kafka_helpers import consume_exactly, make_consumer
from mqtt_helpers import V5, Client

HISTORY_S_MAX = 15


def get(porter, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{porter.http_url}{path}", timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body.startswith(b"{") else {}


def history(porter, room: str, count: int, limit: int | None = None) -> list[dict]:
    """The room's history once it holds `count` messages (the bridge appends asynchronously)."""
    query = f"?limit={limit}" if limit else ""
    deadline = time.monotonic() + HISTORY_S_MAX
    while True:
        status, body = get(porter, f"/chat/history/{room}{query}")
        if status == 200 and len(body["messages"]) >= count:
            return [json.loads(m["payload"]) for m in body["messages"]]
        assert time.monotonic() < deadline, f"history of {room}: {status} {body}"
        time.sleep(0.1)


def say(client: Client, room: str, text: str, n: int) -> None:
    body = {"id": f"{room}-{n}", "from": "ada", "text": text, "ts": 1_700_000_000_000 + n}
    client.publish(f"chat/rooms/{room}", json.dumps(body).encode(), qos=1)


def test_a_rooms_last_messages_come_from_the_log_and_survive_kill_9(porter):
    ada = Client(porter.mqtt_port, "ada", V5)
    for n, text in enumerate(["hello", "anyone here?", "hi ada"]):
        say(ada, "lobby", text, n)
    say(ada, "kitchen", "coffee is ready", 9)
    say(ada, "team.rust", "a room with a dot", 7)
    ada.close()

    lobby = history(porter, "lobby", 3)
    assert [m["text"] for m in lobby] == ["hello", "anyone here?", "hi ada"], "oldest first, one room only"
    assert [m["text"] for m in history(porter, "lobby", 2, limit=2)] == ["anyone here?", "hi ada"]
    assert [m["text"] for m in history(porter, "team.rust", 1)] == ["a room with a dot"]

    # The same messages are a Kafka topic's records, keyed by routing key.
    records = consume_exactly(porter.bootstrap, "porter.chat", {0: 5})[0]
    lobby_records = [r for r in records if r.key == b"chat.rooms.lobby"]
    assert [json.loads(r.value)["text"] for r in lobby_records] == ["hello", "anyone here?", "hi ada"]

    porter.kill9_restart()
    assert [m["text"] for m in history(porter, "lobby", 3)] == ["hello", "anyone here?", "hi ada"]
    assert [m["text"] for m in history(porter, "kitchen", 1)] == ["coffee is ready"]


def test_bad_rooms_and_limits_get_400_with_a_reason(porter):
    for path in ["/chat/history/a+b", "/chat/history/" + "r" * 65, "/chat/history/lobby?limit=0",
                 "/chat/history/lobby?limit=201", "/chat/history/lobby?limit=ten"]:
        status, body = get(porter, path)
        assert status == 400, path
        assert body["error"], path
    status, body = get(porter, "/chat/history/empty-room")
    assert (status, body["messages"], body["truncated"]) == (200, [], False)


def test_history_off_means_no_route_and_no_topic(tmp_path):
    config = tmp_path / "porter.toml"
    config.write_text('[http]\nchat_history_topic = "off"\n')
    for porter in run_porter(tmp_path, ["--config", str(config)]):
        status, _ = get(porter, "/chat/history/lobby")
        assert status == 404
        consumer = make_consumer(porter.bootstrap)
        try:
            topics = consumer.list_topics(timeout=10).topics
        finally:
            consumer.close()
        assert "porter.chat" not in topics
