"""Runs librdkafka's regression tests against Porter; started by scripts/librdkafka-suite.sh.

Standard library only (it runs on the system python3). What it does:

- Reads the test table (`struct test tests[]`) of the unpacked librdkafka's tests/test.c: each
  entry's name (0045_subscribe_update), number (0045), flags (TEST_F_LOCAL, TEST_F_MANUAL, ...) and
  scenario ("default", "noautocreate").
- Reads tests/librdkafka/not-applicable.txt and checks it against that table: every name must be an
  entry, every TEST_F_LOCAL entry should be listed (it never talks to a broker), and an entry can be
  skipped only with every other entry of its number (test-runner selects by number).
- Starts Porter: `porter serve` on a fresh data directory, Kafka on a free loopback port, AMQP off,
  topics auto-created with 4 partitions (librdkafka's "default" scenario); and, only when a test
  needs it, a second one with auto-creation off for the "noautocreate" scenario.
- Runs each test number in its own test-runner process (TESTS=<number>, -L so local entries are
  left out; -Q only with --runner-quick), with a time bound, so a hang or a crash costs one test,
  not the run. After each test Porter must still be running (else the crash is reported and
  Porter is restarted) and any panic it logged meanwhile is reported against that test.
- Reads each run's JSON report (TEST_REPORT) for the entries' states, and the log for the first
  failure line (`### Test "..." failed at file:line`) or the reason a test skipped itself.
- Prints a table and `librdkafka suite: N passed, M failed, K not applicable`; writes
  results.tsv beside the logs. Exit status 1 if an applicable test failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
KAFKA_SHIM = HERE / "kafka"
# The broker version the tests assume (TEST_KAFKA_VERSION): Porter's ApiVersions are Kafka 3.x's.
# It gates tests by minimum version (e.g. share consumers need 4.2) and picks the Admin API, not
# kafka-topics.sh, for creating topics (>= 0.10.2).
KAFKA_VERSION = "3.7.0"
DEFAULT_PARTITIONS = 4  # librdkafka's tests/scenarios/default.json: num_partitions 4
PORTER_READY_S = 15.0
PORTER_STOP_S = 30.0
RUNS_KEPT = 10
RUN_PRUNE_AGE_S = 24 * 3600
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\(B")
FAIL_RE = re.compile(r'### Test "(?P<name>[^" (]+)(?: \((?P<subtest>[^"]*)\))?" failed at '
                     r"(?P<where>\S+?):(?P<line>\d+):(?P<func>[^ ]*)\(\) at [^#]*: ###\s*\n(?P<msg>[^\n]*)")
SKIP_RE = re.compile(r"\[(?P<name>\S+)\s*/\s*[\d.]+s\] WARN: SKIPPING TEST: (?P<reason>[^\n]*)")
PANIC_RE = re.compile(r"panicked at|thread '.*' panicked", re.I)


@dataclass
class Entry:
    name: str
    number: str
    flags: set[str]
    scenarios: list[str]

    @property
    def local(self) -> bool:
        return "TEST_F_LOCAL" in self.flags

    @property
    def manual(self) -> bool:
        return "TEST_F_MANUAL" in self.flags

    @property
    def scenario(self) -> str | None:
        """The scenario this entry is run in: default if it runs there, else noautocreate."""
        for wanted in ("default", "noautocreate"):
            if any(wanted in s for s in self.scenarios):
                return wanted
        return None


@dataclass
class Result:
    entry: str
    number: str
    scenario: str
    state: str  # PASSED, FAILED, SKIPPED, TIMEOUT, CRASHED, NOT_RUN
    duration_s: float = 0.0
    message: str = ""
    notes: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[librdkafka-suite] {message}", file=sys.stderr, flush=True)


# --- librdkafka's test table and the not-applicable list ---------------------------------------


def read_test_table(test_c: Path) -> dict[str, Entry]:
    source = test_c.read_text()
    start = source.index("struct test tests[] = {")
    table = source[start:source.index("{NULL}};", start)]
    table = re.sub(r"/\*.*?\*/", "", table, flags=re.S)
    entries: dict[str, Entry] = {}
    # _TEST(NAME, FLAGS, ...): the remaining arguments may hold .scenario = "a,b".
    for match in re.finditer(r"_TEST\(\s*(\w+)\s*,\s*([^,)]+)(.*?)\)\s*,\s*(?=_TEST\(|#|$)", table, re.S):
        name, flags, rest = match.group(1), match.group(2), match.group(3)
        scenario = re.search(r'\.scenario\s*=\s*"([^"]*)"', rest)
        entries[name] = Entry(
            name=name,
            number=name.split("_", 1)[0],
            flags={f.strip() for f in flags.split("|") if f.strip() not in ("", "0")},
            scenarios=scenario.group(1).split(",") if scenario else ["default"],
        )
    if len(entries) < 100:
        raise SystemExit(f"read only {len(entries)} tests from {test_c}: has its format changed?")
    return entries


def read_not_applicable(path: Path, entries: dict[str, Entry]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(entry -> reason, entry -> {sub-test function -> reason}). A line `ENTRY/FUNCTION reason`
    leaves out one sub-test: the entry then runs once per other sub-test (see subtest_functions)."""
    reasons: dict[str, str] = {}
    sub_reasons: dict[str, dict[str, str]] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if "/" in name:
            name, function = name.split("/", 1)
            if name not in entries:
                raise SystemExit(f"{path}:{lineno}: {name} is not a test of this librdkafka (tests/test.c)")
            if not reason.strip():
                raise SystemExit(f"{path}:{lineno}: {name}/{function} has no reason")
            sub_reasons.setdefault(name, {})[function] = reason.strip()
            continue
        if name not in entries:
            raise SystemExit(f"{path}:{lineno}: {name} is not a test of this librdkafka (tests/test.c)")
        if not reason.strip():
            raise SystemExit(f"{path}:{lineno}: {name} has no reason")
        reasons[name] = reason.strip()
    for entry in entries.values():
        if entry.local and entry.name not in reasons:
            log(f"warning: {entry.name} is TEST_F_LOCAL but not in {path.name}; not run (no broker)")
            reasons[entry.name] = "client-only test (TEST_F_LOCAL; not yet in not-applicable.txt)"
    by_number: dict[str, list[Entry]] = {}
    for entry in entries.values():
        by_number.setdefault(entry.number, []).append(entry)
    for number, group in by_number.items():
        listed = [e.name for e in group if e.name in reasons and not e.local]
        runnable = [e.name for e in group if e.name not in reasons and not e.local]
        if listed and runnable:
            raise SystemExit(f"{path}: {', '.join(listed)} can't be skipped alone: test-runner selects "
                             f"by number and would run {', '.join(runnable)} with it")
    for name in sub_reasons:
        if len(by_number[entries[name].number]) != 1:
            raise SystemExit(f"{path}: {name}: sub-tests can be left out only of a test number with one entry")
    return reasons, sub_reasons


SUBTEST_START_RE = re.compile(r"\bSUB_TEST(?:_QUICK)?\s*\(")
# A function definition starts at column 0: `static void name(...` or, with the type on the line
# before, `name(...`; a declaration ends in `;`.
FUNCTION_RE = re.compile(r"^(?:[A-Za-z_][\w \t*]*?[\s*])?(\w+)\s*\([^;]*$")


def subtest_functions(tests_dir: Path, number: str) -> list[str]:
    """The functions of a test's source that start a sub-test (SUB_TEST or SUB_TEST_QUICK), in
    source order. test-runner names a sub-test "FUNCTION:LINE: ...", so SUBTESTS="FUNCTION:"
    runs exactly that function's sub-tests and the test's other code, nothing else."""
    sources = sorted(tests_dir.glob(f"{number}-*.c")) + sorted(tests_dir.glob(f"{number}-*.cpp"))
    if len(sources) != 1:
        raise SystemExit(f"test {number}: expected one source file in {tests_dir}, found {len(sources)}")
    functions: list[str] = []
    current = None
    for line in sources[0].read_text(errors="replace").splitlines():
        match = FUNCTION_RE.match(line)
        if match and match.group(1) not in ("if", "while", "for", "switch", "return"):
            current = match.group(1)
        if SUBTEST_START_RE.search(line) and current and current not in functions:
            functions.append(current)
    return functions


# --- Porter --------------------------------------------------------------------------------------


class Porter:
    """One `porter serve`; restartable on the same port after a crash."""

    def __init__(self, binary: Path, run_dir: Path, scenario: str):
        self.binary = binary
        self.scenario = scenario
        self.data_dir = run_dir / f"porter-data-{scenario}"
        self.log_path = run_dir / f"porter-{scenario}.log"
        self.listen = "127.0.0.1:0"
        self.process: subprocess.Popen | None = None
        self.bootstrap = ""
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTER_")}
        env.setdefault("RUST_BACKTRACE", "1")
        command = [
            str(self.binary), "serve",
            "--data-dir", str(self.data_dir),
            "--kafka-listen", self.listen,
            "--amqp-listen", "off",
            "--default-partitions", str(DEFAULT_PARTITIONS),
            "--auto-create-topics", "true" if self.scenario == "default" else "false",
        ]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as out:
            out.write(f"=== start {self.starts}: {' '.join(command)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + PORTER_READY_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"porter exited ({self.process.returncode}) at start; log: {self.log_path}")
            with open(self.log_path, "rb") as inp:
                inp.seek(offset)
                text = ANSI_RE.sub("", inp.read().decode(errors="replace"))
            found = re.search(r"porter is listening kafka=(\S+)", text)
            if found:
                self.bootstrap = found.group(1)
                self.listen = self.bootstrap  # a restart keeps the port
                log(f"porter ({self.scenario} scenario) listening on {self.bootstrap}, "
                    f"pid {self.process.pid}, log {self.log_path}")
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"porter did not report listening within {PORTER_READY_S}s; log: {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=PORTER_STOP_S)
            except subprocess.TimeoutExpired:
                log(f"porter ({self.scenario}) still running {PORTER_STOP_S}s after SIGTERM: SIGKILL")
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as inp:
            inp.seek(offset)
            return inp.read().decode(errors="replace")


# --- one test number -----------------------------------------------------------------------------


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL test-runner and what it started (the kafka-topics.sh stand-in): its own session."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_number(args, number: str, scenario: str, subtest: str, entries: list[Entry], porter: Porter,
               run_dir: Path) -> list[Result]:
    """Runs one test number in one scenario; with `subtest`, only that function's sub-tests."""
    suffix = ("" if scenario == "default" else f"-{scenario}") + (f"-{subtest}" if subtest else "")
    log_path = run_dir / "logs" / f"{number}{suffix}.log"
    report_path = run_dir / "reports" / f"{number}{suffix}.json"
    work_dir = run_dir / "work" / "tests"
    conf_path = run_dir / f"test-{scenario}.conf"
    conf_path.write_text(f"bootstrap.servers={porter.bootstrap}\n")
    src = args.librdkafka
    env = dict(os.environ)
    env.update({
        "TESTS": number,
        "SUBTESTS": f"{subtest}:" if subtest else "",
        "TEST_KAFKA_VERSION": KAFKA_VERSION,
        "TEST_SCENARIO": scenario,
        "TEST_REPORT": str(report_path),
        "RDKAFKA_TEST_CONF": str(conf_path),
        "RDKAFKA_GITVER": f"v{args.librdkafka_version}",
        "BROKERS": porter.bootstrap,
        "KAFKA_PATH": str(KAFKA_SHIM),
        "LIBRDKAFKA_SUITE_PYTHON": args.shim_python,
        "LD_LIBRARY_PATH": os.pathsep.join(
            p for p in (str(src / "src"), str(src / "src-cpp"), os.environ.get("LD_LIBRARY_PATH")) if p),
    })
    command = [str(src / "tests" / "test-runner"), "-L"] + (["-Q"] if args.runner_quick else [])
    porter_log_offset = porter.log_size()
    started = time.monotonic()
    timed_out = False
    with open(log_path, "wb") as out:
        out.write(f"=== TESTS={number} TEST_SCENARIO={scenario} {' '.join(command)} (bootstrap "
                  f"{porter.bootstrap})\n".encode())
        out.flush()
        process = subprocess.Popen(command, cwd=work_dir, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(process)
            rc = process.wait()
        except BaseException:
            kill_group(process)
            process.wait()
            raise
    elapsed = time.monotonic() - started
    text = ANSI_RE.sub("", log_path.read_text(errors="replace"))

    states: dict[str, tuple[str, float]] = {}
    if report_path.exists():
        try:
            report = json.loads(report_path.read_text(errors="replace"))
            states = {name: (t["state"], float(t.get("duration", 0))) for name, t in report["tests"].items()}
        except (ValueError, KeyError) as err:
            log(f"{number}: unreadable report {report_path}: {err}")
    failures: dict[str, str] = {}
    for match in FAIL_RE.finditer(text):
        where = f"[{match['subtest']}] " if match["subtest"] else ""
        failures.setdefault(match["name"], f"{where}{match['where']}:{match['line']}: {match['msg'].strip()}")
    # A failed kafka-topics.sh stand-in says only "exit status 1" in the failure line; its own
    # error (e.g. the config Porter refused) is in the log.
    tool_error = re.search(r"Error while executing topic command : ([^\n]*)|kafka-acls\.sh: ([^\n]*)", text)
    if tool_error:
        for name, message in failures.items():
            if re.search(r"kafka-(topics|acls)\.sh.*failed with exit status", message):
                tool_message = (tool_error.group(1) or tool_error.group(2)).strip()
                failures[name] = f"{message} ({tool_message})"
    skips: dict[str, str] = {}
    for match in SKIP_RE.finditer(text):
        skips.setdefault(match["name"], match["reason"].strip())

    notes: list[str] = []
    porter_text = porter.log_since(porter_log_offset)
    panics = [line for line in porter_text.splitlines() if PANIC_RE.search(line)]
    if panics:
        notes.append(f"porter logged {len(panics)} panic line(s), first: {panics[0].strip()[:200]}")
    if not porter.alive():
        notes.append(f"PORTER EXITED ({porter.process.returncode}) during this test; restarted")
        log(f"{number}: porter ({scenario}) exited with {porter.process.returncode}; restarting it")
        porter.start()
    if timed_out:
        notes.append(f"test-runner killed after {args.timeout}s (LIBRDKAFKA_SUITE_TEST_TIMEOUT_S)")

    results = []
    for entry in entries:
        state, duration = states.get(entry.name, ("", 0.0))
        message = ""
        if state == "FAILED":
            message = failures.get(entry.name, "failed (no failure line in the log)")
        elif state == "SKIPPED":
            message = skips.get(entry.name, "skipped")
        elif state in ("", "RUNNING", "DNS"):
            state = "TIMEOUT" if timed_out else "CRASHED"
            duration = elapsed
            message = failures.get(entry.name) or (
                f"no result: test-runner killed after {args.timeout}s" if timed_out
                else f"no result: test-runner exited {rc}")
        name = f"{entry.name}[{subtest}]" if subtest else entry.name
        result = Result(name, number, scenario, state, duration, message, list(notes))
        if state == "PASSED" and rc not in (0, None) and not timed_out:
            result.notes.append(f"test-runner exited {rc} after the test passed")
        results.append(result)
    return results


# --- the run ---------------------------------------------------------------------------------------


def prune_runs(runs_dir: Path) -> None:
    """Removes runs beyond the newest RUNS_KEPT, unless still running or touched within a day
    (several runs may share the directory: one person's full run while another checks a test)."""
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink())
    for old in runs[:-RUNS_KEPT]:
        if time.time() - old.stat().st_mtime < RUN_PRUNE_AGE_S or run_is_live(old):
            continue
        shutil.rmtree(old, ignore_errors=True)


def run_is_live(run_dir: Path) -> bool:
    try:
        os.kill(int((run_dir / "runner.pid").read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def print_table(results: list[Result], not_applicable: list[tuple[str, str]]) -> None:
    width = max([len(r.entry) for r in results] + [len(n) for n, _ in not_applicable] + [10])
    print()
    print(f"{'test':<{width}}  {'scenario':<12}  {'result':<14}  {'time':>7}  detail")
    for r in results:
        detail = r.message
        if r.notes:
            detail = (detail + " | " if detail else "") + "; ".join(r.notes)
        print(f"{r.entry:<{width}}  {r.scenario:<12}  {r.state:<14}  {r.duration_s:6.1f}s  {detail}")
    for name, reason in not_applicable:
        print(f"{name:<{width}}  {'-':<12}  {'NOT APPLICABLE':<14}  {'':>7}  {reason}")
    print()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--porter", type=Path, required=True)
    parser.add_argument("--librdkafka", type=Path, required=True, help="unpacked and built source tree")
    parser.add_argument("--librdkafka-version", default="?")
    parser.add_argument("--suite-dir", type=Path, required=True)
    parser.add_argument("--not-applicable", type=Path, required=True)
    parser.add_argument("--shim-python", required=True)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per test number")
    parser.add_argument("--tests", help="comma-separated test numbers (default: every applicable one)")
    parser.add_argument("--runner-quick", action="store_true",
                        help="test-runner -Q: librdkafka's quick mode (fewer messages, and only the "
                             "sub-tests marked quick: many tests then pass without testing much)")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)

    entries = read_test_table(args.librdkafka / "tests" / "test.c")
    reasons, sub_reasons = read_not_applicable(args.not_applicable, entries)
    numbers = sorted({e.number for e in entries.values()})

    if args.tests:
        wanted = [t.strip() for t in args.tests.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in numbers]
        if unknown:
            raise SystemExit(f"no such test number(s): {', '.join(unknown)} (tests are 4-digit numbers, "
                             f"e.g. 0030)")
        selected = sorted(set(wanted))
        explicit = True
    else:
        selected = numbers
        explicit = False

    # (number, scenario, sub-test function or "") -> entries run there; entries (and sub-tests)
    # skipped as not applicable.
    plan: dict[tuple[str, str, str], list[Entry]] = {}
    skipped: list[tuple[str, str]] = []
    for entry in entries.values():
        if entry.number not in selected:
            continue
        if entry.local:
            skipped.append((entry.name, reasons.get(entry.name, "client-only (TEST_F_LOCAL)")))
            continue
        if entry.name in reasons and not explicit:
            skipped.append((entry.name, reasons[entry.name]))
            continue
        scenario = entry.scenario
        if scenario is None:
            skipped.append((entry.name, f"only in scenario {','.join(entry.scenarios)}, which this "
                                        f"script does not set up"))
            continue
        if entry.name in sub_reasons:
            left_out = sub_reasons[entry.name]
            functions = subtest_functions(args.librdkafka / "tests", entry.number)
            unknown = sorted(set(left_out) - set(functions))
            if unknown:
                raise SystemExit(f"{args.not_applicable}: {entry.name} has no sub-test function "
                                 f"{', '.join(unknown)}")
            for function in functions:
                if function in left_out:
                    skipped.append((f"{entry.name}[{function}]", left_out[function]))
                else:
                    plan.setdefault((entry.number, scenario, function), []).append(entry)
            continue
        plan.setdefault((entry.number, scenario, ""), []).append(entry)

    if args.list:
        for (number, scenario, subtest), group in sorted(plan.items()):
            note = f"  (sub-test {subtest})" if subtest else ""
            if any(e.name in reasons for e in group):
                note = "  (listed not applicable; run because named)"
            print(f"run  {number}  {scenario:<12}  {' '.join(e.name for e in group)}{note}")
        for name, reason in sorted(skipped):
            print(f"skip {name}: {reason}")
        print(f"{len({key[0] for key in plan})} test numbers to run, {len(skipped)} entries not applicable")
        return 0

    runs_dir = args.suite_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / stamp
    for n in range(2, 1000):
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            run_dir = runs_dir / f"{stamp}-{n}"
    for sub in ("logs", "reports", "work"):
        (run_dir / sub).mkdir()
    # test-runner's working directory, laid out like librdkafka's tree (work/tests beside work/src)
    # for the paths tests take relative to tests/ (0053 reads ../src/statistics_schema.json), while
    # the files tests write there (stats_*.json, ...) stay out of the shared build.
    (run_dir / "work" / "tests").mkdir()
    for name in ("src", "src-cpp"):
        (run_dir / "work" / name).symlink_to(args.librdkafka / name)
    (run_dir / "work" / "tests" / "fixtures").symlink_to(args.librdkafka / "tests" / "fixtures")
    (run_dir / "runner.pid").write_text(f"{os.getpid()}\n")
    # runs/latest: replaced atomically (another run may be starting too).
    staging_link = runs_dir / f".latest.{os.getpid()}"
    staging_link.unlink(missing_ok=True)
    staging_link.symlink_to(run_dir.name)
    os.replace(staging_link, runs_dir / "latest")
    prune_runs(runs_dir)

    started = time.monotonic()
    porters: dict[str, Porter] = {}
    results: list[Result] = []
    interrupted = False

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    log(f"{len({key[0] for key in plan})} test numbers to run (librdkafka {args.librdkafka_version}, "
        f"{'quick (-Q)' if args.runner_quick else 'full'} mode, TEST_KAFKA_VERSION={KAFKA_VERSION}); "
        f"logs in {run_dir}")
    try:
        for (number, scenario, subtest), group in sorted(plan.items()):
            porter = porters.get(scenario)
            if porter is None:
                porter = porters[scenario] = Porter(args.porter, run_dir, scenario)
                porter.start()
            test_started = time.monotonic()
            batch = run_number(args, number, scenario, subtest, group, porter, run_dir)
            for result in batch:
                if result.entry in reasons:
                    result.notes.append(f"listed not applicable ({reasons[result.entry]}); run because named")
            results.extend(batch)
            states = ", ".join(f"{r.entry} {r.state}" for r in batch)
            where = f"{scenario}, {subtest}" if subtest else scenario
            log(f"{number} ({where}) {time.monotonic() - test_started:.0f}s: {states}")
    except KeyboardInterrupt as err:
        interrupted = True
        log(f"interrupted ({err}); reporting what ran")
    finally:
        for porter in porters.values():
            rc = porter.stop()
            if rc not in (0, None):
                log(f"porter ({porter.scenario}) exited {rc} at shutdown; log: {porter.log_path}")
            shutil.rmtree(porter.data_dir, ignore_errors=True)
        shutil.rmtree(run_dir / "work", ignore_errors=True)
        (run_dir / "runner.pid").unlink(missing_ok=True)

    elapsed = time.monotonic() - started
    skipped.sort()
    print_table(results, skipped)
    with open(run_dir / "results.tsv", "w") as out:
        out.write("test\tnumber\tscenario\tresult\tseconds\tdetail\n")
        for r in results:
            detail = " | ".join([r.message] + r.notes).replace("\t", " ")
            out.write(f"{r.entry}\t{r.number}\t{r.scenario}\t{r.state}\t{r.duration_s:.1f}\t{detail}\n")
        for name, reason in skipped:
            out.write(f"{name}\t{name.split('_', 1)[0]}\t-\tNOT_APPLICABLE\t0\t{reason}\n")
    passed = sum(r.state == "PASSED" for r in results)
    failed = sum(r.state in ("FAILED", "TIMEOUT", "CRASHED") for r in results)
    self_skipped = sum(r.state == "SKIPPED" for r in results)
    crashes = sum(any("PORTER EXITED" in n for n in r.notes) for r in results)
    summary = (f"librdkafka suite: {passed} passed, {failed} failed, {len(skipped)} not applicable, "
               f"{self_skipped} skipped by the test itself, in {elapsed:.0f}s")
    if crashes:
        summary += f"; PORTER EXITED during {crashes} test(s)"
    if interrupted:
        summary += " (INTERRUPTED: not every test ran)"
    (run_dir / "summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"logs: {run_dir} (results.tsv, logs/<test>.log, porter-*.log)")
    return 1 if failed or interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
