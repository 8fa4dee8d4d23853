"""The first hour with the `porter` binary, as a newcomer meets it: its help, its start-up lines and
log, its errors for a bad data directory or a bad setting, and the README's listener table and
install story. Everything runs the real binary (PORTER_BIN); the listener tests bootstrap real
clients (confluent-kafka, pika) to the ports the OS chose.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pika
import pytest
from confluent_kafka import Consumer, Producer

from conftest import PORTER_BIN, READY_S_MAX, REPO_ROOT, SHUTDOWN_S_MAX, require_porter_binary

README = REPO_ROOT / "README.md"
SYSTEMD_UNIT = REPO_ROOT / "docs" / "systemd" / "porter.service"
# A command that only prints or refuses to start answers at once; bounded so a hang fails.
COMMAND_S_MAX = 10.0
# Client operations against a local broker take milliseconds; the bound turns a broker that
# advertised an unreachable address into a failure instead of a hang.
CLIENT_S_MAX = 15.0
LISTENING_RE = re.compile(r"porter is listening .*")
LISTENING_FIELD_RE = re.compile(r"\b(?P<name>[a-z_]+)=(?P<value>\S+)")
ANSI_ESCAPE = b"\x1b["
# Every protocol Porter speaks today, as `porter --help` must name them.
PROTOCOLS = ["Kafka", "AMQP 0-9-1", "RocketMQ 5", "MQTT 3.1.1/5.0", "STOMP 1.2"]


def clean_env(**extra: str) -> dict[str, str]:
    """The runner's environment without any PORTER_* setting (the server reads them) or NO_COLOR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTER_") and k != "NO_COLOR"}
    env.update(extra)
    return env


def porter(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs a porter command that must finish by itself (help, or a refused start)."""
    require_porter_binary()
    return subprocess.run(
        [str(PORTER_BIN), *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_S_MAX,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else clean_env(),
        cwd=cwd,
    )


class Started:
    """A `porter serve` whose stderr goes to a file, as under a service manager."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None):
        require_porter_binary()
        self.log_path = tmp_path / f"porter-{uuid.uuid4().hex[:8]}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(PORTER_BIN), "serve", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env if env is not None else clean_env(),
            )
        # Without colour codes, so this reads the fields whatever the colour test finds.
        line = re.sub(r"\x1b\[[0-9;]*m", "", self.wait_for_listening().group(0))
        # The start-up line's fields: kafka, kafka_advertised, amqp, data_dir, ...
        self.listening = {m["name"]: m["value"] for m in LISTENING_FIELD_RE.finditer(line)}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_listening(self) -> re.Match:
        deadline = time.monotonic() + READY_S_MAX
        while time.monotonic() < deadline:
            match = LISTENING_RE.search(re.sub(r"\x1b\[[0-9;]*m", "", self.log()))
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"no 'porter is listening ...' line:\n{self.log()}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=SHUTDOWN_S_MAX) == 0, self.log()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=SHUTDOWN_S_MAX)


@pytest.fixture
def started(tmp_path):
    servers: list[Started] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Started:
        server = Started(tmp_path, *args, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


# --- item 4: every protocol and every listener is in the help and the README ---------------------


def test_help_names_every_protocol():
    for args in (["--help"], ["-h"]):
        result = porter(*args)
        assert result.returncode == 0, result.stderr
        # Help text wraps to the terminal: compare with line breaks as spaces.
        text = " ".join(result.stdout.split())
        for protocol in PROTOCOLS:
            assert protocol in text, f"`porter {args[0]}` does not name {protocol}:\n{result.stdout}"


def listener_flags() -> dict[str, str]:
    """Each `--<protocol>-listen` flag of `porter serve --help` with its help text."""
    result = porter("serve", "--help")
    assert result.returncode == 0, result.stderr
    flags: dict[str, str] = {}
    current = None
    for line in result.stdout.splitlines():
        flag = re.match(r"\s+(--[a-z0-9-]+)", line)
        if flag:
            current = flag.group(1) if flag.group(1).endswith("-listen") else None
            if current:
                flags[current] = ""
        if current:
            flags[current] += " " + line.strip()
    assert {"--kafka-listen", "--amqp-listen"} <= flags.keys(), result.stdout
    return flags


def test_every_listener_flag_gives_its_default_and_off():
    for flag, text in listener_flags().items():
        text = " ".join(text.split())
        assert re.search(r"\[default: [0-9.]+:\d+\]", text), f"{flag} does not say its default: {text}"
        assert "`off`" in text, f"{flag} does not say it takes `off`: {text}"
        env = "PORTER_" + flag[2:].replace("-", "_").upper()
        assert env in text, f"{flag} does not name {env}: {text}"


def test_readme_lists_every_listener_with_its_port_and_off():
    readme = README.read_text()
    for flag, text in listener_flags().items():
        port = re.search(r"\[default: [0-9.]+:(\d+)\]", " ".join(text.split())).group(1)
        rows = [line for line in readme.splitlines() if line.startswith(f"| `{flag} ")]
        assert rows, f"README's table has no row for {flag}"
        assert port in rows[0] and "`off`" in rows[0], f"README's {flag} row lacks port {port} or `off`: {rows[0]}"
    # Starting beside a running RabbitMQ or Kafka: the README says how.
    assert "RabbitMQ" in readme and "--amqp-listen off" in readme and "--kafka-listen off" in readme


# --- item 5: port 0 --------------------------------------------------------------------------------


def test_port_zero_is_advertised_as_the_bound_port_and_clients_work(started, tmp_path):
    server = started("--data-dir", str(tmp_path / "data"), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "127.0.0.1:0")
    kafka, amqp = server.listening["kafka"], server.listening["amqp"]
    assert not kafka.endswith(":0") and not amqp.endswith(":0"), server.listening

    topic = "port-zero"
    producer = Producer({"bootstrap.servers": kafka, "message.timeout.ms": int(CLIENT_S_MAX * 1000)})
    for i in range(3):
        producer.produce(topic, key=f"k{i}", value=f"v{i}")
    assert producer.flush(CLIENT_S_MAX) == 0, f"records not delivered through {kafka}:\n{server.log()}"
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "port-zero", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + CLIENT_S_MAX
    while len(values) < 3 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
    consumer.close()
    assert values == [b"v0", b"v1", b"v2"]

    host, port = amqp.rsplit(":", 1)
    connection = pika.BlockingConnection(pika.ConnectionParameters(host, int(port), blocked_connection_timeout=CLIENT_S_MAX))
    channel = connection.channel()
    channel.queue_declare("port-zero")
    channel.basic_publish("", "port-zero", b"hello")
    method, _, body = channel.basic_get("port-zero", auto_ack=True)
    assert body == b"hello"
    connection.close()
    # The start-up line says what clients were told.
    assert server.listening.get("kafka_advertised") == kafka, server.listening
    server.stop()


# --- item 6: start-up wording, colour, data-directory errors ---------------------------------------


def test_a_new_data_directory_is_called_new_and_only_a_crash_recovers(started, tmp_path):
    args = ("--data-dir", str(tmp_path / "data"), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off")
    first = started(*args)
    assert "new data directory" in first.log()
    assert "recovering" not in first.log(), first.log()
    first.stop()
    second = started(*args)
    assert "new data directory" not in second.log() and "recovering" not in second.log(), second.log()
    second.kill()
    third = started(*args)
    assert "no clean-shutdown marker: recovering log tails" in third.log(), third.log()
    third.stop()


def test_a_redirected_log_has_no_colour_codes(started, tmp_path):
    server = started("--data-dir", str(tmp_path / "data"), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off")
    server.stop()
    raw = server.log_path.read_bytes()
    assert b"porter is listening" in raw
    assert ANSI_ESCAPE not in raw, raw[:400]


def test_a_closed_log_pipe_does_not_stop_the_broker(started, tmp_path):
    """`porter serve 2>&1 | less`, then `q`: the log's reader is gone. The broker keeps serving
    and, on SIGTERM, shuts down cleanly (the next start has nothing to recover). Before, the next
    log line panicked (tracing reported the failed write with eprintln!, which panicked too)."""
    require_porter_binary()
    data = tmp_path / "data"
    args = ["serve", "--data-dir", str(data), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off"]
    reader, writer = os.pipe()
    process = subprocess.Popen([str(PORTER_BIN), *args], stdin=subprocess.DEVNULL, stdout=writer,
                               stderr=writer, env=clean_env())
    os.close(writer)
    try:
        seen = b""
        deadline = time.monotonic() + READY_S_MAX
        while b"porter is listening" not in seen and time.monotonic() < deadline:
            chunk = os.read(reader, 4096)
            if not chunk:
                break
            seen += chunk
        assert b"porter is listening" in seen, seen
        port = int(re.search(rb"kafka=127\.0\.0\.1:(\d+)", seen).group(1))
    finally:
        os.close(reader)  # the pager quits
    # A client connects and leaves (the broker logs about it), then the service is stopped.
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}"})
    producer.produce("after-the-pipe-closed", b"still serving")
    assert producer.flush(CLIENT_S_MAX) == 0, "the broker stopped serving once its log pipe closed"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=SHUTDOWN_S_MAX) == 0, "porter did not exit 0 after its log pipe closed"
    again = started(*args[1:])
    assert "recovering" not in again.log(), again.log()
    again.stop()


def log_on_a_terminal(tmp_path: Path, env: dict[str, str]) -> bytes:
    """What `porter serve` writes when its stderr is a terminal (a pseudo-terminal here)."""
    require_porter_binary()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(PORTER_BIN), "serve", "--data-dir", str(tmp_path / f"data-{uuid.uuid4().hex[:8]}"),
         "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off"],
        stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env,
    )
    os.close(terminal)
    output = b""
    try:
        deadline = time.monotonic() + READY_S_MAX
        while b"porter is listening" not in output and time.monotonic() < deadline:
            try:
                output += os.read(controller, 4096)
            except OSError:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=SHUTDOWN_S_MAX)
        os.close(controller)
    assert b"porter is listening" in output, output
    return output


def test_colour_on_a_terminal_unless_no_color(tmp_path):
    assert ANSI_ESCAPE in log_on_a_terminal(tmp_path, clean_env())
    assert ANSI_ESCAPE not in log_on_a_terminal(tmp_path, clean_env(NO_COLOR="1"))


def assert_one_sentence(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode != 0, "porter started with an unusable data directory"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [expected], result.stderr
    assert "os error" not in result.stderr


def test_a_data_directory_under_a_file_is_one_sentence_with_the_absolute_path(tmp_path):
    plain = tmp_path / "plain-file"
    plain.write_text("not a directory")
    # Absolute, as given.
    assert_one_sentence(
        porter("serve", "--data-dir", str(plain / "data"), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off"),
        f"porter: cannot use data directory {plain / 'data'}: {plain} is a file, not a directory",
    )
    # Relative: said as the absolute path it resolves to.
    assert_one_sentence(
        porter("serve", "--data-dir", "plain-file/data", "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off", cwd=tmp_path),
        f"porter: cannot use data directory {plain / 'data'}: {plain} is a file, not a directory",
    )
    # The data directory itself is a file.
    assert_one_sentence(
        porter("serve", "--data-dir", "plain-file", "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off", cwd=tmp_path),
        f"porter: cannot use data directory {plain}: it is a file, not a directory",
    )


def test_a_data_directory_without_permission_is_one_sentence(tmp_path):
    # The suite runs as root, for whom permissions are no obstacle: run porter as nobody.
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run porter as another user")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    result = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", str(PORTER_BIN.resolve()), "serve",
         "--data-dir", str(locked / "data"), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off"],
        capture_output=True, text=True, timeout=COMMAND_S_MAX, stdin=subprocess.DEVNULL, env=clean_env(), cwd="/",
    )
    assert_one_sentence(result, f"porter: cannot use data directory {locked / 'data'}: permission denied")


def test_a_data_directory_the_os_refuses_is_one_sentence():
    # The suite runs as root, for whom permissions are no obstacle; sysfs refuses even root a
    # new directory (EPERM), the same path through the code as a permission error.
    target = Path("/sys/porter-test-data-dir")
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here to refuse a directory")
    assert_one_sentence(
        porter("serve", "--data-dir", str(target), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off"),
        f"porter: cannot use data directory {target}: operation not permitted",
    )


# --- item 8: a bad or unknown setting names where it came from --------------------------------------


def test_a_bad_value_from_the_environment_names_the_variable():
    result = porter("serve", env=clean_env(PORTER_DEFAULT_PARTITIONS="abc"))
    assert result.returncode == 2
    assert "PORTER_DEFAULT_PARTITIONS" in result.stderr and "'abc'" in result.stderr, result.stderr
    # From the flag, the flag is named (and the variable is not).
    result = porter("serve", "--default-partitions", "abc")
    assert result.returncode == 2
    assert "--default-partitions" in result.stderr and "PORTER_DEFAULT_PARTITIONS" not in result.stderr


def test_a_bad_value_names_its_file_and_key_variable_or_flag(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[storage]\nflush = "bogus"\n')
    problem = 'must be group, interval or never, not "bogus"'
    cases = [
        (["--config", str(config)], {}, f"porter: {config}: [storage] flush: {problem}"),
        ([], {"PORTER_FLUSH": "bogus"}, f"porter: PORTER_FLUSH: {problem}"),
        (["--flush", "bogus"], {}, f"porter: --flush: {problem}"),
    ]
    for args, env, expected in cases:
        result = porter("serve", *args, env=clean_env(**env))
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == expected


def test_an_unknown_porter_variable_is_warned_about_by_name(started, tmp_path):
    env = clean_env(PORTER_DEFAULT_PARTITION="3", PORTER_BIN=str(PORTER_BIN), PORTER_CRASH_CYCLES="1")
    server = started("--data-dir", str(tmp_path / "data"), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off", env=env)
    server.stop()
    # The other listeners bind 0.0.0.0 by default, so the guest-only warning and the one about
    # RocketMQ's listener not authenticating are there too.
    public = ("the only user is 'guest'", "the RocketMQ listener on 0.0.0.0:8081 does not authenticate")
    warnings = [line for line in server.log().splitlines()
                if "WARN" in line and not any(p in line for p in public)]
    assert len(warnings) == 1, server.log()
    assert all(p in server.log() for p in public)
    assert "PORTER_DEFAULT_PARTITION " in warnings[0] and "did you mean PORTER_DEFAULT_PARTITIONS?" in warnings[0]


# --- item 10: the install story ------------------------------------------------------------------


def test_readme_tells_how_to_install():
    readme = README.read_text()
    workspace = (REPO_ROOT / "Cargo.toml").read_text()
    rust_version = re.search(r'^rust-version = "([0-9.]+)"', workspace, re.M).group(1)
    assert f"Rust {rust_version}" in readme, f"README does not give the Rust version {rust_version}"
    for needle in ["target/release/porter", "cargo install --path crates/server", "docs/systemd/porter.service"]:
        assert needle in readme, f"README does not mention {needle}"
    assert "see `issues`" not in readme, "README points at an issue tracker that is not in the repository"


def test_the_systemd_unit_verifies():
    text = SYSTEMD_UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(\S+) serve\b", text, re.M)
    assert exec_start, "the unit does not run `porter serve`"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    require_porter_binary()
    # The unit names the installed path; verify it against the binary under test.
    unit = Path(f"/tmp/porter-test-{uuid.uuid4().hex[:8]}.service")
    unit.write_text(text.replace(exec_start.group(1), str(PORTER_BIN.resolve())))
    try:
        result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    finally:
        unit.unlink()
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


# --- beyond the list: a port already taken (a RabbitMQ or Kafka already running) --------------------


def test_a_port_in_use_names_the_flag_that_moves_the_listener(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = porter("serve", "--data-dir", str(tmp_path / "data"), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", address)
    assert result.returncode != 0
    # After the log lines of opening the broker, the last line says why it stopped.
    assert result.stderr.strip().splitlines()[-1] == (
        f"porter: cannot listen for AMQP 0-9-1 clients on {address}: the address is in use "
        "(another AMQP 0-9-1 broker?); give --amqp-listen another address, or --amqp-listen off"
    )


def test_a_data_directory_in_use_and_a_missing_config_are_one_sentence(started, tmp_path):
    data = tmp_path / "data"
    args = ("--data-dir", str(data), "--kafka-listen", "127.0.0.1:0", "--amqp-listen", "off")
    first = started(*args)
    assert_one_sentence(
        porter("serve", *args),
        f"porter: cannot use data directory {data}: it is in use by another porter process",
    )
    first.stop()
    result = porter("serve", "--config", "missing.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"porter: cannot read config file {tmp_path / 'missing.toml'}: no such file or directory"
