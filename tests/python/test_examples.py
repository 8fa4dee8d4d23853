"""The runnable examples in examples/ (one per everyday scenario), run as a user runs them: as a
script against a live broker, pointed at it by KAFKA_BOOTSTRAP / AMQP_URL. Each example checks its
own outcome (nothing lost, order kept, bound held) and exits non-zero otherwise. The AMQP ones run
against AMQP_TEST_URL when it is set, so they are validated against RabbitMQ too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TIMEOUT_S = 120


def run_example(script: str, env_overrides: dict[str, str]) -> str:
    env = {**os.environ, **env_overrides}
    result = subprocess.run([sys.executable, str(EXAMPLES / script)], env=env, capture_output=True,
                            text=True, timeout=EXAMPLE_TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} exited {result.returncode}:\n{output}"
    assert "ok:" in result.stdout, output
    return output


def test_log_ingestion(porter):
    output = run_example("log_ingestion.py", {"KAFKA_BOOTSTRAP": porter.bootstrap,
                                              "LINES_PER_SERVICE": "2000"})
    assert "shipped 8000 log lines" in output


@pytest.mark.parametrize("script", ["work_queue.py", "fanout.py", "peak_shaving.py", "chat.py"])
def test_amqp_example(amqp_broker, script):
    run_example(script, {"AMQP_URL": amqp_broker.amqp_url})
