"""Every snippet in README.md and docs/*.md is run by the suite, so a snippet that rots fails it.

The fenced code blocks of every Markdown file a reader meets (README.md, BENCHMARKS.md, docs/,
examples/, each crate's README; not vendor/ or generated trees) are extracted and run as a reader
would run them:

- ```sh / ```bash / ```shell: `bash -euo pipefail` from the repository root, against a Porter
  started by the `porter` fixture. The documented default addresses are rewritten to the
  fixture's (localhost:9092 to its Kafka bootstrap, localhost:5672 and
  amqp://guest:guest@localhost:5672 to its AMQP listener, localhost:8081 to its RocketMQ one,
  localhost:1883 (and `"localhost", 1883`, `-p 1883`) to its MQTT one, localhost:61613 and
  stomp.py's ("localhost", 61613) to its STOMP one, localhost:15672 to its HTTP one), and
  KAFKA_BOOTSTRAP / AMQP_URL / ROCKETMQ_ENDPOINT / HTTP_URL point there too (what examples/ read). The
  documented virtualenvs (`/tmp/porter-venv`, `.venv`, or one
  the block creates) become the suite's own Python (sys.executable): `python3 -m venv DIR` is
  dropped and `pip install PKG...` is a no-op when every PKG is pinned in
  tests/python/requirements.txt; installing anything else fails the test (pin it there).
- ```python / ```py: run by the suite's Python against the fixture's broker, same rewriting.
- ```toml: written to a file and served with `porter serve --config FILE`, with the data dir and
  every listener address overridden by flags (flags beat the file) to a temp dir and free
  loopback ports; it must start listening and exit 0 on SIGTERM. The server reads the file with
  serde's deny_unknown_fields, so this proves every documented key parses.
- ```js / ```javascript: saved as a CommonJS file (what `node file.js` and a pasted `.js` file
  are) and run by `node` with tests/node's modules (amqplib, kafkajs; pinned in its
  package-lock.json), same address rewriting. Top-level `await` fails here as it fails for a reader.
- ```rust: an excerpt of a compiled test. Its lines (trimmed, blank lines dropped) must appear in
  that order, contiguously, in a `.rs` file under crates/*/tests or crates/*/examples, which the
  suite builds and runs; `test_rust_snippet_is_compiled` names the file or fails.
- ```text and any other language: not run. They are diagrams or output.
- A fence without a language fails `test_every_fence_is_classified`: each fence must say what it is,
  so a shell command can't avoid being run by leaving its language out.

A block that can't run inside the suite (it starts its own broker, runs the suite itself, or runs
a benchmark) carries a marker on the line just before its fence:

    <!-- snippet: not run (starts the broker; the suite starts its own) -->

Only marked blocks are skipped, and the reason is shown. An unmarked block that can't run
fails with a message asking for the marker, so no unrunnable snippet is added without one.
Each test is named by (file, block index, first line), so a failure names the snippet.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (
    PORTER_BIN,
    READY_S_MAX,
    REPO_ROOT,
    PorterServer,
    free_loopback_port,
    port_accepts,
    require_porter_binary,
)

# Documents whose blocks are not user instructions (none today).
EXCLUDED_DOCS: set[str] = set()
# Trees whose Markdown is not ours or not a reader's: third-party code, build output, dependencies.
NOT_DOCUMENTATION_DIRS = {"vendor", "target", "node_modules", ".venv", ".git"}
NODE_DIR = REPO_ROOT / "tests" / "node"
REQUIREMENTS = REPO_ROOT / "tests" / "python" / "requirements.txt"

SHELL_LANGUAGES = {"sh", "bash", "shell"}
PYTHON_LANGUAGES = {"python", "py"}
CONFIG_LANGUAGES = {"toml"}
JS_LANGUAGES = {"js", "javascript"}
RUST_LANGUAGES = {"rust"}
RUN_LANGUAGES = SHELL_LANGUAGES | PYTHON_LANGUAGES | CONFIG_LANGUAGES | JS_LANGUAGES

# One snippet is a few client calls against a local broker: seconds. The bound turns a hang
# (e.g. a consumer loop waiting for records that never come) into a failure with its output.
SNIPPET_TIMEOUT_S = 60
# `porter serve --help` only prints.
HELP_S_MAX = 10.0
FIRST_LINE_IN_ID_CHARS_MAX = 50

MARKER_RE = re.compile(r"^\s*<!--\s*snippet:\s*not run\s*\((?P<reason>.+)\)\s*-->\s*$")
FENCE_OPEN_RE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")

# Commands a snippet may show but the suite can't run: (pattern, what it does).
UNRUNNABLE_COMMANDS = [
    (re.compile(r"(\bcargo\s+run\b.*|(^|[\s/])porter\s+(.*\s)?)\bserve\b(?!.*\s--help\b)", re.M),
     "starts a broker; the suite starts its own"),
    (re.compile(r"scripts/test\.sh\b"), "runs the test suite"),
    (re.compile(r"scripts/(bench-[\w-]+|flamegraph)\.sh\b|\bporter-bench\b"), "runs a benchmark"),
]


@dataclass(frozen=True)
class Snippet:
    path: str  # relative to the repository root
    index: int  # 1-based position among the file's fenced blocks
    line: int  # line number of the opening fence
    language: str  # first word of the info string, lower case ("" when none)
    code: str
    not_run_reason: str | None  # from the marker on the line before the fence

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    @property
    def id(self) -> str:
        first = self.first_line
        if len(first) > FIRST_LINE_IN_ID_CHARS_MAX:
            first = first[: FIRST_LINE_IN_ID_CHARS_MAX - 3] + "..."
        return f"{self.path}#{self.index}:{first}"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line} (block {self.index}, ```{self.language})"


def documented_files() -> list[Path]:
    files = sorted(
        path for path in REPO_ROOT.rglob("*.md")
        if not NOT_DOCUMENTATION_DIRS & set(path.relative_to(REPO_ROOT).parts[:-1])
    )
    return [f for f in files if f.relative_to(REPO_ROOT).as_posix() not in EXCLUDED_DOCS]


def fenced_blocks(path: Path) -> list[Snippet]:
    """The fenced code blocks of a CommonMark file (``` or ~~~, indented by up to 3 spaces)."""
    relative = path.relative_to(REPO_ROOT).as_posix()
    lines = path.read_text().splitlines()
    blocks: list[Snippet] = []
    i = 0
    while i < len(lines):
        opening = FENCE_OPEN_RE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            line = lines[end]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            end += 1
        marker = MARKER_RE.match(lines[i - 1]) if i > 0 else None
        words = opening["info"].split()
        blocks.append(Snippet(
            path=relative,
            index=len(blocks) + 1,
            line=i + 1,
            language=words[0].split(",")[0].lower() if words else "",
            code="\n".join(body) + "\n",
            not_run_reason=marker["reason"].strip() if marker else None,
        ))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in documented_files() for block in fenced_blocks(path)]


def params(languages: set[str]) -> list:
    return [
        pytest.param(block, id=block.id, marks=[pytest.mark.skip(reason=f"{block.where}: not run "
                                                                   f"({block.not_run_reason})")]
                     if block.not_run_reason else [])
        for block in ALL_BLOCKS
        if block.language in languages
    ]


# --- rewriting a snippet for the suite ---------------------------------------------------------


class CannotRun(Exception):
    """The snippet asks for something the suite can't do; it needs fixing or a marker."""


def normalized_package(name: str) -> str:
    """PEP 503 name of a requirement (`Foo_bar[x]>=1` -> `foo-bar`)."""
    bare = re.split(r"[\[<>=!~;@\s]", name.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def pinned_packages() -> set[str]:
    names = set()
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(normalized_package(line))
    return names


VENV_CREATE_RE = re.compile(r"^python3?\s+-m\s+venv\s+(?P<dir>[^\s#]+)\s*(#.*)?$")
PIP_INSTALL_RE = re.compile(r"^(?:\S*/)?(?:pip3?|python3?\s+-m\s+pip)\s+install\s+(?P<args>.*)$")
HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)(?P<word>\w+)\1")
DOCUMENTED_VENVS = ["/tmp/porter-venv", ".venv"]


def rewrite_setup_command(command: str, venvs: list[str]) -> str:
    """`python3 -m venv DIR` and `pip install` of pinned packages become no-ops."""
    stripped = command.strip()
    created = VENV_CREATE_RE.match(stripped)
    if created:
        venvs.append(created["dir"].rstrip("/"))
        return " true "
    install = PIP_INSTALL_RE.match(stripped)
    if install:
        packages = shlex.split(install["args"], comments=True)
        if any(word.startswith("-") for word in packages):
            raise CannotRun(f"`{stripped}`: pip options are not supported here; install by name")
        missing = sorted({p for p in packages if normalized_package(p) not in pinned_packages()})
        if missing:
            raise CannotRun(
                f"`{stripped}` installs {', '.join(missing)}, which {REQUIREMENTS.relative_to(REPO_ROOT)} "
                "does not pin: add it there (the suite's venv is built from it)"
            )
        return " true "
    return command


def rewrite_addresses(code: str, server: PorterServer) -> str:
    """The documented default addresses, pointed at the fixture's listeners."""
    amqp = f"{server.amqp_host}:{server.amqp_port}"
    code = re.sub(r"\b(?:localhost|127\.0\.0\.1):9092\b", server.bootstrap, code)
    code = re.sub(r"\b(?:localhost|127\.0\.0\.1):5672\b", amqp, code)
    code = re.sub(r"\b(?:localhost|127\.0\.0\.1):8081\b", server.rocketmq_endpoint, code)
    # MQTT: host:port, and a client's connect("localhost", 1883).
    code = re.sub(r"\b(?:localhost|127\.0\.0\.1):1883\b", f"127.0.0.1:{server.mqtt_port}", code)
    code = re.sub(r"([\"'])localhost\1,\s*1883\b", rf"\g<1>127.0.0.1\g<1>, {server.mqtt_port}", code)
    code = re.sub(r"(-p\s+)1883\b", rf"\g<1>{server.mqtt_port}", code)
    code = re.sub(r"\b(?:localhost|127\.0\.0\.1):61613\b", f"127.0.0.1:{server.stomp_port}", code)
    # stomp.py names its broker as a (host, port) pair.
    code = re.sub(r"\(\s*([\"'])(?:localhost|127\.0\.0\.1)\1\s*,\s*61613\s*\)", f'("127.0.0.1", {server.stomp_port})', code)
    code = re.sub(r"\b(?:localhost|127\.0\.0\.1):15672\b", f"127.0.0.1:{server.http_port}", code)
    # amqp://user:pass@localhost/... means port 5672 too.
    return re.sub(r"(amqp://(?:[^@/\s\"']*@)?)localhost(?![\w.:-])", rf"\g<1>{amqp}", code)


def rewrite_shell(code: str, server: PorterServer) -> str:
    """A shell snippet as the suite runs it: its broker, its Python (see the module docstring)."""
    for pattern, what in UNRUNNABLE_COMMANDS:
        if pattern.search(code):
            raise CannotRun(f"it {what}")
    venvs = list(DOCUMENTED_VENVS)
    lines = []
    heredoc_end: str | None = None
    for line in code.splitlines():
        if heredoc_end is not None:  # a here-document's body is data, not commands
            if line.strip() == heredoc_end:
                heredoc_end = None
            lines.append(line)
            continue
        line = "&&".join(rewrite_setup_command(part, venvs) for part in line.split("&&"))
        heredoc = HEREDOC_RE.search(line)
        if heredoc:
            heredoc_end = heredoc["word"]
        lines.append(line)
    code = "\n".join(lines) + "\n"
    python = shlex.quote(sys.executable)
    venv_dirs = "|".join(re.escape(v) for v in venvs)
    tools = re.compile(rf"(?<![\w./-])(?:{venv_dirs})/bin/(?P<tool>python3?|pip3?)(?![\w.-])")
    code = tools.sub(lambda m: python if m["tool"].startswith("python") else f"{python} -m pip", code)
    return rewrite_addresses(code, server)


# --- running --------------------------------------------------------------------------------------


def snippet_env(server: PorterServer) -> dict[str, str]:
    # PORTER_* variables configure a server; a snippet's `porter` commands must not see the runner's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTER_")}
    env["KAFKA_BOOTSTRAP"] = server.bootstrap
    env["AMQP_URL"] = server.amqp_url
    env["ROCKETMQ_ENDPOINT"] = server.rocketmq_endpoint
    env["HTTP_URL"] = server.http_url
    # A reader who built Porter has `porter` at hand.
    env["PATH"] = f"{PORTER_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_bounded(command: list[str], env: dict[str, str]) -> tuple[int | None, str]:
    """Runs in its own process group, so a timeout also ends what the snippet started (kcat, ...)."""
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=SNIPPET_TIMEOUT_S)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return None, output


def assert_ran(snippet: Snippet, script: str, exit_code: int | None, output: str) -> None:
    if exit_code == 0:
        return
    outcome = f"did not finish in {SNIPPET_TIMEOUT_S} s" if exit_code is None else f"exited {exit_code}"
    pytest.fail(f"snippet {snippet.where} {outcome}\n--- as run ---\n{script}--- output ---\n{output}",
                pytrace=False)


def node_command() -> list[str]:
    """`node` with tests/node's modules on its require path (installed by scripts/test.sh's deps step)."""
    if shutil.which("node") is None:
        raise CannotRun("node is not installed (Node.js 20+)")
    if not (NODE_DIR / "node_modules").is_dir():
        raise CannotRun(f"{NODE_DIR.relative_to(REPO_ROOT)}/node_modules is missing: run `npm ci` there")
    return ["node"]


def prepared(snippet: Snippet, server: PorterServer) -> tuple[str, list[str], str]:
    """(script as run, command to run it with, file suffix); CannotRun if it can't run here."""
    if snippet.language in SHELL_LANGUAGES:
        return rewrite_shell(snippet.code, server), ["bash", "-euo", "pipefail"], "sh"
    if snippet.language in JS_LANGUAGES:
        return rewrite_addresses(snippet.code, server), node_command(), "js"
    return rewrite_addresses(snippet.code, server), [sys.executable], "py"


@pytest.mark.parametrize("snippet", params(SHELL_LANGUAGES | PYTHON_LANGUAGES | JS_LANGUAGES))
def test_snippet_runs(porter, snippet: Snippet, tmp_path: Path):
    try:
        script, command, suffix = prepared(snippet, porter)
        cannot_run = None
    except CannotRun as why:
        cannot_run = str(why)
    if cannot_run is not None:
        pytest.fail(
            f"snippet {snippet.where} can't run in the suite: {cannot_run}. Fix it, or if it truly can't "
            "run here, put `<!-- snippet: not run (REASON) -->` on the line before its fence.",
            pytrace=False,
        )
    script_path = tmp_path / f"snippet.{suffix}"
    script_path.write_text(script)
    env = snippet_env(porter)
    if snippet.language in JS_LANGUAGES:
        env["NODE_PATH"] = str(NODE_DIR / "node_modules")
    exit_code, output = run_bounded([*command, str(script_path)], env)
    assert_ran(snippet, script, exit_code, output)


def significant_lines(code: str) -> list[str]:
    return [line.strip() for line in code.splitlines() if line.strip()]


def compiled_rust_files() -> list[Path]:
    """Test and example sources cargo builds and runs in the suite (`cargo nextest run --workspace`)."""
    crates = REPO_ROOT / "crates"
    return sorted(p for pattern in ("**/tests/**/*.rs", "**/examples/**/*.rs") for p in crates.glob(pattern))


def contains_excerpt(haystack: list[str], excerpt: list[str]) -> bool:
    return any(haystack[i:i + len(excerpt)] == excerpt for i in range(len(haystack) - len(excerpt) + 1))


@pytest.mark.parametrize("snippet", params(RUST_LANGUAGES))
def test_rust_snippet_is_compiled(snippet: Snippet):
    """A Rust snippet needs a surrounding program, so it is an excerpt of a test the suite runs."""
    excerpt = significant_lines(snippet.code)
    assert excerpt, f"{snippet.where} is empty"
    homes = [p for p in compiled_rust_files() if contains_excerpt(significant_lines(p.read_text()), excerpt)]
    assert homes, (
        f"snippet {snippet.where} is not an excerpt of any test or example under crates/: copy it, "
        "line for line, into a test that runs it (e.g. crates/server/tests/docs_snippets.rs), so it "
        "compiles and runs with the suite"
    )


def listen_flags() -> list[str]:
    """Every `--X-listen` flag of `porter serve` (a new protocol's listener is covered too)."""
    help_text = subprocess.run([str(PORTER_BIN), "serve", "--help"], capture_output=True, text=True,
                               timeout=HELP_S_MAX).stdout
    return sorted(set(re.findall(r"--[a-z0-9-]+-listen\b", help_text)))


def config_server(tmp_path: Path, config: Path) -> tuple[PorterServer, list[int]]:
    """A server for `config` whose data dir and every listener are overridden by flags."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = PorterServer(PORTER_BIN, data_dir, tmp_path / "porter.log", free_loopback_port())
    # PorterServer passes --data-dir and the --*-listen flags it knows; any other listener here.
    other_ports = []
    for flag in listen_flags():
        if flag not in ("--kafka-listen", "--amqp-listen", "--rocketmq-listen", "--mqtt-listen",
                        "--stomp-listen", "--http-listen"):
            port = free_loopback_port()
            other_ports.append(port)
            server.extra_args += [flag, f"127.0.0.1:{port}"]
    server.extra_args += ["--config", str(config)]
    return server, other_ports


@pytest.mark.parametrize("snippet", params(CONFIG_LANGUAGES))
def test_config_snippet_serves(snippet: Snippet, tmp_path: Path):
    require_porter_binary()
    config = tmp_path / "porter.toml"
    config.write_text(snippet.code)
    server, other_ports = config_server(tmp_path, config)
    failure = None
    try:
        server.start()  # fails unless the Kafka and AMQP listeners accept
        deadline = time.monotonic() + READY_S_MAX
        while not all(port_accepts(port) for port in other_ports):
            assert time.monotonic() < deadline, f"ports {other_ports} not accepting\n{server.log_tail()}"
            time.sleep(0.05)
    except AssertionError as why:
        failure = str(why)
    finally:
        exit_code = server.stop() if server.process is not None else None
    if failure is not None:
        pytest.fail(f"`porter serve --config` with {snippet.where} did not start:\n{failure}", pytrace=False)
    assert exit_code == 0, f"porter exited {exit_code} on SIGTERM\n{server.log_tail()}"
    assert "porter is listening" in server.log_path.read_text(errors="replace"), server.log_tail()


def test_config_file_is_read(tmp_path: Path):
    """The config test can fail: `--config` is read, and a file with an unknown key is refused."""
    require_porter_binary()
    config = tmp_path / "porter.toml"
    config.write_text("[kafka]\nno_such_key = 1\n")
    server, _ = config_server(tmp_path, config)
    try:
        with pytest.raises(AssertionError, match="exited"):
            server.start()
    finally:
        server._kill()  # only if it wrongly started
    assert "no_such_key" in server.log_path.read_text(errors="replace"), server.log_tail()


def test_every_fence_is_classified():
    """Each fence names its language, and markers sit right before blocks that would otherwise run."""
    problems = [f"{b.where}: no language; say what it is (```sh, ```text, ...)"
                for b in ALL_BLOCKS if b.language == ""]
    problems += [f"{b.where}: marked not run, but ```{b.language} blocks are never run; drop the marker"
                 for b in ALL_BLOCKS if b.not_run_reason and b.language not in RUN_LANGUAGES]
    marked_lines = {(b.path, b.line - 1) for b in ALL_BLOCKS if b.not_run_reason}
    for path in documented_files():
        relative = path.relative_to(REPO_ROOT).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if MARKER_RE.match(line) and (relative, number) not in marked_lines:
                problems.append(f"{relative}:{number}: a snippet marker not directly before a fence")
    assert not problems, "\n".join(problems)


# --- the Kafka API table of docs/kafka.md is what the broker advertises ------------------------------

KAFKA_API_KEYS = {
    "Produce": 0, "Fetch": 1, "ListOffsets": 2, "Metadata": 3, "OffsetCommit": 8, "OffsetFetch": 9,
    "FindCoordinator": 10, "JoinGroup": 11, "Heartbeat": 12, "LeaveGroup": 13, "SyncGroup": 14,
    "DescribeGroups": 15, "ListGroups": 16, "ApiVersions": 18, "CreateTopics": 19, "DeleteTopics": 20,
    "DeleteRecords": 21, "InitProducerId": 22, "DescribeConfigs": 32, "AlterConfigs": 33,
    "DescribeLogDirs": 35, "CreatePartitions": 37, "DeleteGroups": 42, "IncrementalAlterConfigs": 44,
    "OffsetDelete": 47, "DescribeCluster": 60, "DescribeProducers": 61, "DescribeTopicPartitions": 75,
    "SaslHandshake": 17, "SaslAuthenticate": 36, "DescribeAcls": 29, "CreateAcls": 30, "DeleteAcls": 31,
    "DescribeUserScramCredentials": 50, "AlterUserScramCredentials": 51,
    "DescribeClientQuotas": 48, "AlterClientQuotas": 49,
}
API_ROW_RE = re.compile(r"\|\s*(?P<name>[A-Za-z]+)\s*\|\s*(?P<low>\d+)(?:–(?P<high>\d+))?\s*(?=\|)")


def documented_kafka_versions() -> dict[int, tuple[int, int]]:
    text = (REPO_ROOT / "docs" / "kafka.md").read_text()
    table = text[text.index("| API | versions |"):].split("\n\n", 1)[0]
    versions = {}
    for row in table.splitlines()[2:]:
        for m in API_ROW_RE.finditer(row):
            assert m["name"] in KAFKA_API_KEYS, f"docs/kafka.md names an API this test doesn't know: {m['name']}"
            versions[KAFKA_API_KEYS[m["name"]]] = (int(m["low"]), int(m["high"] or m["low"]))
    return versions


def advertised_kafka_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    """ApiVersions v0, by hand: correlation id, error code, then [api_key, min, max] entries."""
    import socket
    import struct

    host, port = bootstrap.rsplit(":", 1)
    client_id = b"docs-test"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        reply = b""
        while len(reply) < 4 or len(reply) < 4 + struct.unpack(">i", reply[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the ApiVersions reply"
            reply += chunk
    correlation_id, error_code, count = struct.unpack(">ihi", reply[4:14])
    assert (correlation_id, error_code) == (7, 0)
    entries = [struct.unpack(">hhh", reply[14 + 6 * i:20 + 6 * i]) for i in range(count)]
    return {key: (low, high) for key, low, high in entries}


def test_topic_config_table_is_what_the_broker_describes(porter):
    """docs/configuration.md's per-topic table names every key DescribeConfigs reports for a topic,
    with the same default."""
    from kafka_helpers import admin_client, create_topic
    from confluent_kafka.admin import ConfigResource, ResourceType

    text = (REPO_ROOT / "docs" / "configuration.md").read_text()
    table = text[text.index("| key | values (default) | what Porter does |"):].split("\n\n", 1)[0]
    documented = {}
    for row in table.splitlines()[2:]:
        key, values = [c.strip() for c in row.strip("|").split("|")[:2]]
        default = re.search(r"\(([^()]*)\)\s*$", values)
        documented[key.strip("`")] = default[1].strip("`") if default else None
    create_topic(porter.bootstrap, "docs-config-table", 1)
    resource = ConfigResource(ResourceType.TOPIC, "docs-config-table")
    admin = admin_client(porter.bootstrap)  # kept referenced until the future completes
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    assert sorted(documented) == sorted(described), "docs/configuration.md's topic config table is out of date"
    powers = {"2^63-1": str(2**63 - 1), "2^31-1": str(2**31 - 1)}
    for key, default in documented.items():
        if default is not None:
            default = {"empty": ""}.get(default, powers.get(default, default))
            assert described[key].value == default, f"{key}: documented default {default!r}, broker says {described[key].value!r}"


def test_kafka_api_table_is_what_the_broker_advertises(porter):
    assert documented_kafka_versions() == advertised_kafka_versions(porter.bootstrap), (
        "docs/kafka.md's API table and the broker's ApiVersions disagree: update the table"
    )
