"""Fixtures for Porter's end-to-end tests: a real `porter serve` on a free loopback port.

`porter` starts the binary (PORTER_BIN, default target/debug/porter) with a fresh data directory,
waits until its Kafka port accepts connections, and yields a `PorterServer`:

    def test_x(porter):
        bootstrap, data_dir, restart, kill9_restart = porter   # or porter.bootstrap, ...

`restart()` stops it with SIGTERM (which must exit 0) and starts it again on the same data
directory and port; `kill9_restart()` does the same after SIGKILL. The server is always stopped at
teardown, and its log (stderr and stdout, all starts appended) is printed there, so a failing test
shows it. A missing binary fails the test with instructions; nothing is skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PORTER_BIN = Path(os.environ.get("PORTER_BIN") or REPO_ROOT / "target" / "debug" / "porter")

# Startup is a process exec plus log recovery of a small data dir; 10 s is generous.
READY_S_MAX = 10.0
# Graceful shutdown drains connections and flushes logs; bounded by the server's own deadline.
SHUTDOWN_S_MAX = 30.0
LOG_TAIL_LINES = 80


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PorterServer:
    """One `porter serve` process; restartable on the same data directory and port."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, port: int, advertised: str | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        # What Metadata tells clients to connect to: the listener itself unless a test puts
        # something (a fault-injecting proxy) in between.
        self.advertised = advertised or self.bootstrap
        self.process: subprocess.Popen | None = None
        self.starts = 0

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
            if port_accepts(self.port):
                return
            time.sleep(0.05)
        self._kill()
        raise AssertionError(
            f"porter did not accept on {self.bootstrap} within {READY_S_MAX} s\n{self.log_tail()}"
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


@pytest.fixture
def porter(tmp_path: Path):
    if not (PORTER_BIN.is_file() and os.access(PORTER_BIN, os.X_OK)):
        pytest.fail(
            f"porter binary not found at {PORTER_BIN}: build it with `cargo build -p porter` "
            "(./scripts/test.sh does) or point PORTER_BIN at it",
            pytrace=False,
        )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = PorterServer(PORTER_BIN, data_dir, tmp_path / "porter.log", free_loopback_port())
    server.start()
    try:
        yield server
    finally:
        running = server.process is not None and server.process.poll() is None
        exit_code = server.stop() if running else None
        print(server.log_tail())
        if running and exit_code != 0:
            raise AssertionError(f"porter exited {exit_code} on SIGTERM at teardown")
