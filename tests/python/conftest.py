"""Fixtures for Porter's end-to-end tests: a real `porter serve` on a free loopback port.

`porter` starts the binary (PORTER_BIN, default target/debug/porter) with a fresh data directory,
waits until its Kafka port accepts connections, and yields a `PorterServer`:

    def test_x(porter):
        bootstrap, data_dir, restart, kill9_restart = porter   # or porter.bootstrap, ...

`restart()` stops it with SIGTERM (which must exit 0) and starts it again on the same data
directory and port; `kill9_restart()` does the same after SIGKILL. The server is always stopped at
teardown, and its log (stderr and stdout, all starts appended) is printed there, so a failing test
shows it. A missing binary fails the test with instructions; nothing is skipped.

Every server also gets a free loopback AMQP 0-9-1 port (`server.amqp_port`, `server.amqp_url`,
passed as `--amqp-listen`) and startup waits for it too, once the binary has that flag (older
binaries are started without it, so the Kafka tests never depend on the AMQP gateway).

AMQP tests use the `amqp_broker` fixture instead: a Porter server as above, or, when the environment
variable AMQP_TEST_URL is set (e.g. amqp://guest:guest@127.0.0.1:5673/%2F, see
scripts/peers/rabbitmq.sh), that external broker; its `external` is then True and `restart()` /
`kill9_restart()` skip the test, so one suite validates against a real RabbitMQ and runs on Porter.
`porter_amqp` is for tests that must control the process (restart, kill -9): it always starts Porter
and skips when AMQP_TEST_URL is set, unless AMQP_TEST_RESTART_CMD and AMQP_TEST_KILL9_CMD are set
too (shell commands that restart the external broker keeping its data, gracefully and with SIGKILL,
e.g. `scripts/peers/rabbitmq.sh restart` / `kill9-restart`): then those tests run against it.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

# Fixtures and helpers of the AMQP tests (the `amqp` fixture); harmless for the others.
pytest_plugins = ["amqp_helpers"]

REPO_ROOT = Path(__file__).resolve().parents[2]
PORTER_BIN = Path(os.environ.get("PORTER_BIN") or REPO_ROOT / "target" / "debug" / "porter")

# Startup is a process exec plus log recovery of a small data dir; 10 s is generous.
READY_S_MAX = 10.0
# Graceful shutdown drains connections and flushes logs; bounded by the server's own deadline.
SHUTDOWN_S_MAX = 30.0
LOG_TAIL_LINES = 80
# An external AMQP broker (e.g. RabbitMQ from scripts/peers/rabbitmq.sh) for the AMQP tests, and
# optionally the commands that restart it (see the module docstring).
AMQP_TEST_URL = os.environ.get("AMQP_TEST_URL") or None
AMQP_TEST_RESTART_CMD = os.environ.get("AMQP_TEST_RESTART_CMD") or None
AMQP_TEST_KILL9_CMD = os.environ.get("AMQP_TEST_KILL9_CMD") or None


def free_loopback_port(*taken: int) -> int:
    """A port free now and not among `taken`: two calls in a row may otherwise return the same
    port (the first socket is closed), which gave Kafka and AMQP one port and failed a start."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def binary_has_flag(binary: Path, flag: str) -> bool:
    """Whether `binary serve --help` lists `flag` (e.g. --amqp-listen)."""
    try:
        result = subprocess.run(
            [str(binary), "serve", "--help"], capture_output=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag.encode() in result.stdout + result.stderr


class PorterServer:
    """One `porter serve` process; restartable on the same data directory and ports."""

    external = False

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        log_path: Path,
        port: int,
        advertised: str | None = None,
        amqp_port: int | None = None,
    ):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        # AMQP 0-9-1 gateway, when the binary has it (see the module docstring).
        self.amqp_enabled = binary_has_flag(binary, "--amqp-listen")
        self.amqp_port = amqp_port if amqp_port is not None else free_loopback_port(port)
        self.amqp_host = "127.0.0.1"
        self.amqp_url = f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"
        # RocketMQ 5 gRPC gateway, likewise: `server.rocketmq_endpoint` is what clients name.
        self.rocketmq_enabled = binary_has_flag(binary, "--rocketmq-listen")
        self.rocketmq_port = free_loopback_port(port, self.amqp_port)
        self.rocketmq_endpoint = f"127.0.0.1:{self.rocketmq_port}"
        # MQTT gateway likewise: `server.mqtt_port` on 127.0.0.1.
        self.mqtt_enabled = binary_has_flag(binary, "--mqtt-listen")
        self.mqtt_port = free_loopback_port(port, self.amqp_port, self.rocketmq_port)
        # STOMP gateway, likewise: `server.stomp_port` on 127.0.0.1.
        self.stomp_enabled = binary_has_flag(binary, "--stomp-listen")
        self.stomp_port = free_loopback_port(port, self.amqp_port, self.rocketmq_port, self.mqtt_port)
        # HTTP listener (WebSocket endpoints /mqtt and /ws, the chat page), likewise.
        self.http_enabled = binary_has_flag(binary, "--http-listen")
        self.http_port = free_loopback_port(port, self.amqp_port, self.rocketmq_port, self.mqtt_port,
                                            self.stomp_port)
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        # What Metadata tells clients to connect to: the listener itself unless a test puts
        # something (a fault-injecting proxy) in between.
        self.advertised = advertised or self.bootstrap
        self.process: subprocess.Popen | None = None
        self.starts = 0
        # More `porter serve` flags (e.g. ["--config", path]) for tests that need settings.
        self.extra_args: list[str] = []

    def __iter__(self):
        """Unpacks as (bootstrap, data_dir, restart, kill9_restart)."""
        return iter((self.bootstrap, self.data_dir, self.restart, self.kill9_restart))

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        # The server reads PORTER_* variables as settings: pass none of the test runner's.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTER_")}
        env.setdefault("RUST_BACKTRACE", "1")
        command = [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--kafka-listen",
            self.bootstrap,
            "--kafka-advertised",
            self.advertised,
        ]
        if self.amqp_enabled:
            command += ["--amqp-listen", f"{self.amqp_host}:{self.amqp_port}"]
        if self.rocketmq_enabled:
            command += ["--rocketmq-listen", self.rocketmq_endpoint]
        if self.mqtt_enabled:
            command += ["--mqtt-listen", f"127.0.0.1:{self.mqtt_port}"]
        if self.stomp_enabled and "--stomp-listen" not in self.extra_args:
            command += ["--stomp-listen", f"127.0.0.1:{self.stomp_port}"]
        if self.http_enabled:
            command += ["--http-listen", f"127.0.0.1:{self.http_port}"]
        command += self.extra_args
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts}: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + READY_S_MAX
        while time.monotonic() < deadline:
            exit_code = self.process.poll()
            if exit_code is not None:
                raise AssertionError(
                    f"porter exited with {exit_code} during startup {self.starts}\n{self.log_tail()}"
                )
            if (
                port_accepts(self.port)
                and (not self.amqp_enabled or port_accepts(self.amqp_port))
                and (not self.rocketmq_enabled or port_accepts(self.rocketmq_port))
                and (not self.mqtt_enabled or port_accepts(self.mqtt_port))
                and (
                    not self.stomp_enabled
                    or "--stomp-listen" in self.extra_args
                    or port_accepts(self.stomp_port)
                )
                and (not self.http_enabled or port_accepts(self.http_port))
            ):
                return
            time.sleep(0.05)
        self._kill()
        amqp = f" and AMQP {self.amqp_host}:{self.amqp_port}" if self.amqp_enabled else ""
        raise AssertionError(
            f"porter did not accept on {self.bootstrap}{amqp} within {READY_S_MAX} s\n{self.log_tail()}"
        )

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code. Kills and raises if it does not exit in time."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SHUTDOWN_S_MAX)
            except subprocess.TimeoutExpired:
                self._kill()
                raise AssertionError(
                    f"porter ignored SIGTERM for {SHUTDOWN_S_MAX} s; killed\n{self.log_tail()}"
                ) from None
        return self.process.returncode

    def restart(self) -> None:
        """Graceful restart: SIGTERM must exit 0, then start on the same data dir and port."""
        exit_code = self.stop()
        assert exit_code == 0, f"porter exited {exit_code} on SIGTERM\n{self.log_tail()}"
        self.start()

    def kill9_restart(self) -> None:
        """Crash restart: SIGKILL, then start on the same data dir and port."""
        self._kill()
        self.start()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=SHUTDOWN_S_MAX)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no server log)"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])


def require_porter_binary() -> None:
    if not (PORTER_BIN.is_file() and os.access(PORTER_BIN, os.X_OK)):
        pytest.fail(
            f"porter binary not found at {PORTER_BIN}: build it with `cargo build -p porter` "
            "(./scripts/test.sh does) or point PORTER_BIN at it",
            pytrace=False,
        )


@pytest.fixture
def porter(tmp_path: Path):
    yield from run_porter(tmp_path)


def run_porter(tmp_path: Path, extra_args: list[str] | None = None):
    """The `porter` fixture's body: start a server in tmp_path (with `extra_args` for `porter
    serve`), yield it, stop it and show its log."""
    require_porter_binary()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = PorterServer(PORTER_BIN, data_dir, tmp_path / "porter.log", free_loopback_port())
    server.extra_args = list(extra_args or [])
    server.start()
    try:
        yield server
    finally:
        running = server.process is not None and server.process.poll() is None
        exit_code = server.stop() if running else None
        print(server.log_tail())
        if running and exit_code != 0:
            raise AssertionError(f"porter exited {exit_code} on SIGTERM at teardown")


class ExternalAmqpBroker:
    """An AMQP broker this test run does not own (AMQP_TEST_URL): restart() and kill9_restart() run
    AMQP_TEST_RESTART_CMD / AMQP_TEST_KILL9_CMD, and skip the test when those are not set."""

    external = True

    def __init__(self, url: str):
        parsed = urllib.parse.urlsplit(url)
        self.amqp_url = url
        self.amqp_host = parsed.hostname or "127.0.0.1"
        self.amqp_port = parsed.port or 5672

    def restart(self) -> None:
        self._run(AMQP_TEST_RESTART_CMD, "AMQP_TEST_RESTART_CMD")

    def kill9_restart(self) -> None:
        self._run(AMQP_TEST_KILL9_CMD, "AMQP_TEST_KILL9_CMD")

    @staticmethod
    def _run(command: str | None, variable: str) -> None:
        if not command:
            pytest.skip(f"needs to restart the broker; not possible with AMQP_TEST_URL unless {variable} is set")
        result = subprocess.run(command, shell=True, cwd=REPO_ROOT, capture_output=True, timeout=180)
        assert result.returncode == 0, (
            f"{variable} ({command}) exited {result.returncode}\n{result.stdout.decode()}{result.stderr.decode()}"
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return f"(external broker at {self.amqp_host}:{self.amqp_port}; no log)"


def _porter_with_amqp(tmp_path: Path):
    require_porter_binary()
    if not binary_has_flag(PORTER_BIN, "--amqp-listen"):
        pytest.fail(
            f"{PORTER_BIN} has no --amqp-listen (the AMQP gateway is not built in yet); rebuild it, "
            "or run the AMQP tests against another broker with AMQP_TEST_URL=amqp://...",
            pytrace=False,
        )
    return run_porter(tmp_path)


@pytest.fixture
def amqp_broker(tmp_path: Path):
    """An AMQP 0-9-1 broker: AMQP_TEST_URL if set, else a fresh Porter (with .amqp_url)."""
    if AMQP_TEST_URL:
        yield ExternalAmqpBroker(AMQP_TEST_URL)
        return
    yield from _porter_with_amqp(tmp_path)


@pytest.fixture
def porter_amqp(tmp_path: Path):
    """A Porter server with AMQP for tests that restart or kill it; skipped with AMQP_TEST_URL."""
    if AMQP_TEST_URL:
        if not (AMQP_TEST_RESTART_CMD and AMQP_TEST_KILL9_CMD):
            pytest.skip("restarts or kills the broker: Porter only, unless AMQP_TEST_RESTART_CMD and "
                        "AMQP_TEST_KILL9_CMD are set with AMQP_TEST_URL")
        yield ExternalAmqpBroker(AMQP_TEST_URL)
        return
    yield from _porter_with_amqp(tmp_path)
