"""porter-bench against a real broker, briefly: every driver and scenario runs to completion with
consistent counts and JSON that parses, so the benchmark tool cannot rot between benchmark runs.

Small record counts, no timing assertions: this checks the tool, not the broker's speed.
target/debug/porter-bench comes from `cargo build --workspace` (scripts/test.sh's build step);
if it is missing the tests skip. The AMQP tests use `amqp_broker`, so with AMQP_TEST_URL they
run against that broker (e.g. RabbitMQ) instead of Porter.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

BENCH_BIN = Path(os.environ.get("PORTER_BENCH_BIN") or REPO_ROOT / "target" / "debug" / "porter-bench")
RECORDS = 3000
# porter-bench's own bound on a run, and the test's bound on the process (setup and teardown).
RUN_S_MAX = 20
PROCESS_S_MAX = 90


@pytest.fixture
def bench():
    if not (BENCH_BIN.is_file() and os.access(BENCH_BIN, os.X_OK)):
        pytest.skip(f"porter-bench not built at {BENCH_BIN} (cargo build -p porter-bench)")
    return BENCH_BIN


def run_bench(bench: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(bench), *args],
        capture_output=True,
        text=True,
        timeout=PROCESS_S_MAX,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"porter-bench {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result


def amqp_args(broker, out: Path, *args: str) -> list[str]:
    pid = [] if broker.external else ["--broker-pid", str(broker.process.pid)]
    return ["amqp", "--url", broker.amqp_url, "--max-seconds", str(RUN_S_MAX), "--json", str(out), *pid, *args]


def test_kafka_closed_loop(porter, bench, tmp_path):
    out = tmp_path / "kafka.json"
    run_bench(
        bench, "kafka", "--brokers", porter.bootstrap, "--partitions", "3", "--records", str(RECORDS),
        "--max-seconds", str(RUN_S_MAX), "--broker-pid", str(porter.process.pid), "--label", "porter",
        "--json", str(out), "--quiet",
    )
    r = json.loads(out.read_text())
    assert (r["produced"], r["consumed"], r["errors"]) == (RECORDS, RECORDS, 0), r
    assert r["label"] == "porter" and r["rate"] is None
    assert r["broker"]["cpu_seconds"] >= 0


def test_rocketmq_closed_and_open_loop(porter, bench, tmp_path):
    common = ["rocketmq", "--endpoint", porter.rocketmq_endpoint, "--max-seconds", str(RUN_S_MAX),
              "--broker-pid", str(porter.process.pid), "--quiet", "--in-flight", "16", "--receivers", "2"]
    out = tmp_path / "rocketmq.json"
    run_bench(bench, *common, "--records", "600", "--send-batch", "4", "--json", str(out))
    r = json.loads(out.read_text())
    assert (r["produced"], r["consumed"], r["errors"]) == (600, 600, 0), r
    assert r["produce_broker_cpu_seconds_per_million"] >= 0 and r["driver_cpu_seconds"] > 0
    out = tmp_path / "rocketmq-open.json"
    run_bench(bench, *common, "--records", "300", "--rate", "200", "--json", str(out))
    r = json.loads(out.read_text())
    assert (r["produced"], r["consumed"], r["errors"], r["rate"]) == (300, 300, 0, 200), r
    assert r["end_to_end"]["count"] == 300


def test_amqp_work_queue(amqp_broker, bench, tmp_path):
    out = tmp_path / "wq.json"
    run_bench(bench, *amqp_args(amqp_broker, out, "--records", str(RECORDS), "--producers", "2", "--consumers", "2",
                                "--quiet"))
    r = json.loads(out.read_text())
    assert (r["produced"], r["consumed"], r["errors"]) == (RECORDS, RECORDS, 0), r
    assert r["end_to_end"]["count"] == RECORDS
    assert r["scenario"] == "amqp-work-queue 2p/2c"


def test_amqp_fanout(amqp_broker, bench, tmp_path):
    out = tmp_path / "fanout.json"
    records, subscribers = 500, 3
    run_bench(bench, *amqp_args(amqp_broker, out, "--scenario", "fanout", "--subscribers", str(subscribers),
                                "--records", str(records), "--quiet"))
    r = json.loads(out.read_text())
    assert r["subscribers"] == subscribers
    assert (r["produced"], r["consumed"], r["errors"]) == (records, records * subscribers, 0), r


def test_amqp_peak_shaving(amqp_broker, bench, tmp_path):
    """A 2000-message burst into a 500-message reject-publish queue drained at 200 msgs/s: some
    publishes are refused, every accepted one is consumed. Without --quiet: the run lasts
    seconds (the drain alone is 500 / 200), so the progress line shows."""
    out = tmp_path / "peak.json"
    max_length, consume_rate = 500, 200
    result = run_bench(bench, *amqp_args(amqp_broker, out, "--scenario", "peak", "--max-length", str(max_length),
                                         "--consume-rate", str(consume_rate), "--burst-seconds", "1"))
    r = json.loads(out.read_text())
    p = r["peak"]
    assert p["burst_rate"] == 10 * consume_rate and p["published"] == 10 * consume_rate
    assert p["confirmed"] + p["nacked"] + p["unconfirmed"] == p["published"], p
    assert p["unconfirmed"] == 0
    assert p["nacked"] > 0, "the burst is four times what the queue holds: some must be refused"
    assert p["confirmed"] >= max_length
    assert r["produced"] == p["confirmed"] and r["consumed"] == p["confirmed"] and r["errors"] == 0, r
    assert 0 < p["max_queue_depth"] <= max_length
    assert p["drain_seconds"] is not None
    assert p["depth_timeline"], "queue depth polled"
    if not amqp_broker.external:
        assert p["rss_timeline"] and p["broker_rss_peak_kib"] > 0
    assert "produced" in result.stderr and "depth" in result.stderr, result.stderr


def test_amqp_rate_sweep_and_charts(amqp_broker, bench, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    run_bench(bench, *amqp_args(amqp_broker, results / "sweep.json", "--rates", "500,1000", "--duration", "1",
                                "--label", "porter", "--quiet"))
    for rate in (500, 1000):
        r = json.loads((results / f"sweep-rate{rate}.json").read_text())
        assert r["rate"] == rate and r["scenario"].endswith(f" @{rate}/s")
        # --duration 1: a second's worth of messages at each rate.
        assert (r["produced"], r["consumed"], r["errors"]) == (rate, rate, 0), r
    charts = tmp_path / "charts"
    listed = run_bench(bench, "chart", str(results), "--out", str(charts)).stdout.split()
    svgs = sorted(p.name for p in charts.glob("*.svg"))
    assert svgs == ["latency-amqp-work-queue-1p-1c-100-b.svg"], listed
    assert (charts / svgs[0]).read_text().startswith("<svg")


# The MQTT driver, against Porter's MQTT gateway and against a private Mosquitto
# (scripts/peers/mosquitto.sh; scripts/test.sh installs the package) on a free port.
MOSQUITTO_SCRIPT = REPO_ROOT / "scripts" / "peers" / "mosquitto.sh"


@pytest.fixture
def mosquitto(tmp_path):
    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed (scripts/peers/mosquitto.sh install; scripts/test.sh does)")
    from conftest import free_loopback_port

    port = free_loopback_port()
    env = {**os.environ, "MOSQUITTO_PORT": str(port), "MOSQUITTO_PEER_DIR": str(tmp_path / "mosquitto")}
    start = subprocess.run([str(MOSQUITTO_SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=60)
    assert start.returncode == 0, start.stderr
    try:
        pid = int((tmp_path / "mosquitto" / "pid").read_text().strip())
        yield port, pid
    finally:
        subprocess.run([str(MOSQUITTO_SCRIPT), "stop"], env=env, capture_output=True, timeout=60)


def test_mqtt_fanout(mosquitto, bench, tmp_path):
    port, pid = mosquitto
    out = tmp_path / "mqtt-fanout.json"
    records, subscribers = 500, 3
    run_bench(bench, "mqtt", "--port", str(port), "--scenario", "fanout", "--subscribers", str(subscribers),
              "--records", str(records), "--max-seconds", str(RUN_S_MAX), "--broker-pid", str(pid),
              "--label", "mosquitto", "--json", str(out), "--quiet")
    r = json.loads(out.read_text())
    assert (r["produced"], r["consumed"], r["errors"], r["lost"]) == (records, records * subscribers, 0, 0), r
    assert r["subscribers"] == subscribers and r["qos"] == 1
    assert r["end_to_end"]["count"] == records * subscribers


def test_mqtt_fanout_against_porter(porter, bench, tmp_path):
    out = tmp_path / "porter-mqtt-fanout.json"
    records, subscribers = 500, 3
    run_bench(bench, "mqtt", "--port", str(porter.mqtt_port), "--scenario", "fanout", "--subscribers",
              str(subscribers), "--records", str(records), "--max-seconds", str(RUN_S_MAX), "--broker-pid",
              str(porter.process.pid), "--label", "porter", "--json", str(out), "--quiet")
    r = json.loads(out.read_text())
    assert (r["produced"], r["consumed"], r["errors"], r["lost"]) == (records, records * subscribers, 0, 0), r


def test_mqtt_chat(mosquitto, bench, tmp_path):
    port, pid = mosquitto
    out = tmp_path / "mqtt-chat.json"
    run_bench(bench, "mqtt", "--port", str(port), "--scenario", "chat", "--connections", "60", "--rooms", "6",
              "--rate", "200", "--records", "400", "--max-seconds", str(RUN_S_MAX), "--broker-pid", str(pid),
              "--label", "mosquitto", "--json", str(out), "--quiet")
    r = json.loads(out.read_text())
    assert r["connections"] == 60 and r["produced"] == 400, r
    assert r["errors"] == 0 and r["lost"] == 0, r
    # Every publish reaches one inbox or a room of 10: the deliveries owed all arrived.
    assert r["consumed"] == r["expected_deliveries"] >= r["produced"], r


def test_amqp_chat(amqp_broker, bench, tmp_path):
    out = tmp_path / "amqp-chat.json"
    run_bench(bench, *amqp_args(amqp_broker, out, "--scenario", "chat", "--connections", "40", "--rooms", "4",
                                "--rate", "200", "--records", "300", "--quiet"))
    r = json.loads(out.read_text())
    assert r["connections"] == 40 and r["produced"] == 300, r
    assert r["errors"] == 0 and r["lost"] == 0, r
    # A room line reaches its 10 members, a direct one its addressee: every owed delivery arrived.
    assert r["consumed"] == r["expected_deliveries"] >= r["produced"], r


@pytest.mark.parametrize("protocol", ["amqp", "kafka", "mqtt"])
def test_idle_connections(porter, bench, tmp_path, protocol):
    """porter-bench idle: every client completes its handshake and the broker's RSS per idle
    connection is reported (its bound is asserted by crates/server/tests/idle_memory.rs)."""
    out = tmp_path / f"idle-{protocol}.json"
    addr = {"amqp": f"127.0.0.1:{porter.amqp_port}", "kafka": porter.bootstrap,
            "mqtt": f"127.0.0.1:{porter.mqtt_port}"}[protocol]
    connections = 50
    run_bench(bench, "idle", "--protocol", protocol, "--addr", addr, "--connections", str(connections),
              "--hold-seconds", "1", "--after-close-seconds", "1", "--broker-pid", str(porter.process.pid),
              "--label", "porter", "--json", str(out))
    r = json.loads(out.read_text())
    assert (r["protocol"], r["connections"], r["opened"], r["errors"]) == (protocol, connections, connections, 0), r
    assert r["rss_before_kib"] > 0 and r["rss_open_kib"] > 0 and r["rss_after_close_kib"] > 0, r
    assert r["rss_bytes_per_connection"] is not None, r
