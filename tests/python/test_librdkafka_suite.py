"""A quick subset of librdkafka's own regression suite (its C tests, unmodified) against Porter.

`scripts/librdkafka-suite.sh --quick` builds librdkafka 2.15.1 and its tests/test-runner (cached in
target/librdkafka-suite; ./scripts/test.sh builds it in its deps step, so here it is warm), starts
its own Porter from PORTER_BIN and runs a handful of fast broker-facing tests (the list is
QUICK_TESTS in the script). The whole suite is `scripts/librdkafka-suite.sh` (docs/kafka.md).
The kafka-topics.sh stand-in the tests may call runs on this suite's Python (confluent-kafka).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import PORTER_BIN, REPO_ROOT, require_porter_binary

SCRIPT = REPO_ROOT / "scripts" / "librdkafka-suite.sh"
# Warm: about a minute of tests. Cold (a fresh clone run outside scripts/test.sh): npm download and
# build first, a few minutes on two cores.
SUITE_S_MAX = 900
STOP_S_MAX = 60
SUMMARY_RE = re.compile(r"^librdkafka suite: (\d+) passed, (\d+) failed, (\d+) not applicable", re.M)


@pytest.mark.timeout(SUITE_S_MAX + STOP_S_MAX + 30)
def test_librdkafka_quick_subset_passes():
    require_porter_binary()
    env = {**os.environ, "PORTER_BIN": str(PORTER_BIN), "LIBRDKAFKA_SUITE_PYTHON": sys.executable}
    process = subprocess.Popen(
        [str(SCRIPT), "--quick"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=SUITE_S_MAX)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the runner then stops its Porter and the running test-runner.
        process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=STOP_S_MAX)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"{SCRIPT.name} --quick still running after {SUITE_S_MAX}s\n"
                    f"stdout:\n{stdout[-6000:]}\nstderr:\n{stderr[-4000:]}")
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    output = f"stdout:\n{result.stdout[-8000:]}\nstderr:\n{result.stderr[-4000:]}"
    summary = SUMMARY_RE.search(result.stdout)
    assert summary, f"no summary line from {SCRIPT.name} (exit {result.returncode})\n{output}"
    passed, failed = int(summary.group(1)), int(summary.group(2))
    assert result.returncode == 0 and failed == 0 and passed > 0, (
        f"{SCRIPT.name} --quick: {summary.group(0)} (exit {result.returncode}); each test's log is "
        f"under target/librdkafka-suite/runs/latest/logs\n{output}"
    )
