"""The Eclipse Paho MQTT interoperability suites (vendor/paho.mqtt.testing, unmodified) against
Porter: MQTT 3.1.1 (`client_test.py`) and MQTT 5.0 (`client_test5.py`), each against its own
broker, side by side. docs/mqtt.md records the results and why each expected failure fails."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import PORTER_BIN, REPO_ROOT, PorterServer, free_loopback_port, require_porter_binary

RUNNER = REPO_ROOT / "scripts" / "mqtt_interop.py"
SUITE_S_MAX = 400

# Tests that fail for reasons docs/mqtt.md explains; any other failure fails this test.
EXPECTED_FAILURES = {
    # Expects the broker to refuse subscriptions to test/nosubscribe (an ACL the Paho test
    # broker is configured with); Porter has no ACLs until issue 18.
    "test_subscribe_failure",
}
# Send SUBSCRIBE on one connection and, without waiting for SUBACK, PUBLISH on another. Porter
# makes such a publish wait for the subscription being bound (docs/mqtt.md), so they pass; when
# the suite's run, beside the rest of the test suite, loses that race anyway, they are run once
# more on their own and must pass then. (Before that wait they failed alone too, every time.)
ORDERING = {"test_subscribe_options", "test_request_response"}


def start(tmp_path: Path, name: str) -> PorterServer:
    home = tmp_path / name
    (home / "data").mkdir(parents=True)
    config = home / "porter.toml"
    config.write_text("[mqtt]\nkeep_alive_max_secs = 60\n")  # the Paho test broker's setting
    server = PorterServer(PORTER_BIN, home / "data", home / "porter.log", free_loopback_port())
    server.extra_args += ["--config", str(config)]
    server.start()
    return server


def failed_tests(output: str) -> set[str]:
    return set(re.findall(r"^(?:FAIL|ERROR): (test_\w+)", output, re.MULTILINE))


def test_paho_interoperability_suites_pass(tmp_path):
    require_porter_binary()
    servers = {version: start(tmp_path, f"mqtt{version}") for version in ("3", "5")}
    try:
        runs = {
            version: subprocess.Popen(
                [sys.executable, str(RUNNER), version, "127.0.0.1", str(server.mqtt_port)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
            for version, server in servers.items()
        }
        outputs = {version: run.communicate(timeout=SUITE_S_MAX)[0] for version, run in runs.items()}
        for version, output in outputs.items():
            again = sorted(failed_tests(output) & ORDERING)
            if again:
                rerun = subprocess.run(
                    [sys.executable, str(RUNNER), version, "127.0.0.1", str(servers[version].mqtt_port)]
                    + [f"Test.{name}" for name in again],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
                    timeout=SUITE_S_MAX)
                assert not failed_tests(rerun.stdout), f"MQTT {version}: {again} fail alone too\n{rerun.stdout[-4000:]}"
                print(f"MQTT {version}: {again} lost the race in the suite's run; passed alone")
    finally:
        for server in servers.values():
            server.stop()
    for version, output in outputs.items():
        summary = re.search(r"paho interoperability MQTT \d: ran (\d+)", output)
        assert summary, f"MQTT {version} suite did not run:\n{output[-3000:]}"
        ran = int(summary.group(1))
        assert ran == (10 if version == "3" else 27), f"MQTT {version}: ran {ran} tests"
        unexpected = failed_tests(output) - EXPECTED_FAILURES - ORDERING
        assert not unexpected, f"MQTT {version}: unexpected failures {unexpected}\n{output[-6000:]}"
        print(f"MQTT {version}: ran {ran}, failed {sorted(failed_tests(output))}")
