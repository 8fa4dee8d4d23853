#!/usr/bin/env bash
# The one test command: ./scripts/test.sh (also what .ci/run calls).
#
# Runs on a fresh clone on a fresh Debian machine (root, network only to the package registries)
# and again on a warm one: every install step checks first, so a rerun installs nothing.
# Steps, each behind a banner; the first failure stops the run with a non-zero exit:
#   1. deps    kcat, python3-venv and mosquitto from apt (only if missing); .venv from
#              tests/python/requirements.txt (only when that file or the Python changed);
#              `npm ci` in tests/node only when package-lock.json (or the node version) changed
#              (the e2e step runs the docs' JavaScript snippets with those modules);
#              librdkafka's test-runner (scripts/librdkafka-suite.sh --build-only: sources from npm,
#              built once and cached in target/librdkafka-suite) for test_librdkafka_suite.py
#   2. fmt     cargo fmt --all -- --check
#   3. clippy  cargo clippy --workspace --all-targets -- -D warnings
#   4. build   cargo build --workspace --bins --tests (with the tests' features, so step 5 reuses every
#              artefact instead of building the dependency tree a second time)
#   5. test    cargo nextest run --workspace (cargo test --workspace if nextest is missing)
#   6. doc     cargo test --workspace --doc (nextest does not run doctests)
#   7. e2e     pytest tests/python against target/debug/porter (the Paho MQTT interoperability
#              suites, mostly waiting, in a second pytest beside it: target/test-logs/interop.log)
#   8. node    kafkajs and amqplib tests in tests/node (node --test: every *.test.js, so amqp*.test.js
#              too) against target/debug/porter
# Knobs: PORTER_CRASH_CYCLES (passed through to the crash test), PYTEST_ARGS (extra pytest args,
# e.g. "-k kcat -x"), PORTER_SKIP_E2E=1 (skip steps 7 and 8; it then says so in the summary).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV_DIR="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/python/requirements.txt"
VENV_STAMP="$VENV_DIR/.porter-requirements.sha256"
NODE_DIR="$ROOT/tests/node"
NODE_STAMP="$NODE_DIR/node_modules/.porter-package-lock.sha256"
LOG_DIR="$ROOT/target/test-logs"
PORTER_BIN="${PORTER_BIN:-$ROOT/target/debug/porter}"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A CI run starts from a fresh clone and builds once: incremental state only costs disk there.
if [[ -n "${CI:-}" ]]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
export PORTER_BIN
if [[ -n "${PORTER_CRASH_CYCLES:-}" ]]; then
    export PORTER_CRASH_CYCLES
fi

RUN_STARTED_S=$SECONDS
STEPS_DONE=()
CURRENT_STEP=""

banner() {
    printf '\n==> [%s] %s\n' "$1" "$2"
}

on_exit() {
    local rc=$?
    if [[ $rc -ne 0 && -n "$CURRENT_STEP" ]]; then
        printf '\n==> FAILED at step "%s" (exit %d) after %ds; steps passed: %s\n' \
            "$CURRENT_STEP" "$rc" "$((SECONDS - RUN_STARTED_S))" "${STEPS_DONE[*]:-none}" >&2
        [[ -d "$LOG_DIR" ]] && printf '==> step logs: %s\n' "$LOG_DIR" >&2
    fi
}
trap on_exit EXIT

# run_step NAME DESCRIPTION COMMAND...: banner, run with output teed to target/test-logs/NAME.log.
run_step() {
    local name=$1 description=$2
    shift 2
    CURRENT_STEP=$name
    banner "$name" "$description"
    local step_started_s=$SECONDS
    mkdir -p "$LOG_DIR"
    "$@" 2>&1 | tee "$LOG_DIR/$name.log"
    printf -- '--> [%s] ok in %ds\n' "$name" "$((SECONDS - step_started_s))"
    STEPS_DONE+=("$name")
    CURRENT_STEP=""
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

install_deps() {
    local apt_packages=()
    command -v kcat >/dev/null 2>&1 || apt_packages+=(kcat)
    # Headless Chromium for the chat page test (tests/node/chat.test.js, puppeteer-core).
    command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
    command -v python3 >/dev/null 2>&1 || apt_packages+=(python3)
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_packages+=(python3-venv)
    fi
    if [[ ${#apt_packages[@]} -gt 0 ]]; then
        echo "apt: installing ${apt_packages[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
    else
        echo "apt: kcat and python3-venv already present"
    fi
    command -v kcat >/dev/null
    kcat -V 2>&1 | head -n 1
    # Mosquitto for porter-bench's MQTT smoke test (it drives a peer too); installed without
    # starting the system service, and only if missing.
    "$ROOT/scripts/peers/mosquitto.sh" install
    # rabbitmqadmin, RabbitMQ's management CLI, for test_management.py (the script only).
    "$ROOT/scripts/rabbitmqadmin.sh"

    # The stamp covers the requirements and the interpreter: a new Python means a new venv.
    local wanted
    wanted="$( (sha256sum "$REQUIREMENTS" | cut -d' ' -f1; python3 -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
    if [[ -x "$VENV_DIR/bin/python" && -f "$VENV_STAMP" && "$(cat "$VENV_STAMP")" == "$wanted" ]]; then
        echo "venv: $VENV_DIR up to date"
    else
        echo "venv: (re)building $VENV_DIR from ${REQUIREMENTS#"$ROOT"/}"
        rm -rf "$VENV_DIR"
        python3 -m venv "$VENV_DIR"
        "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
        echo "$wanted" >"$VENV_STAMP"
    fi
    "$VENV_DIR/bin/python" -c 'import confluent_kafka, pytest; print("confluent-kafka", confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0], "pytest", pytest.__version__)'

    install_node_modules

    # librdkafka 2.15.1 and its tests/test-runner, for the e2e step's test_librdkafka_suite.py;
    # a warm run only checks the cached build.
    "$ROOT/scripts/librdkafka-suite.sh" --build-only

    cargo --version
    cargo fmt --version >/dev/null || { echo "rustfmt missing: rustup component add rustfmt" >&2; return 1; }
    cargo clippy --version >/dev/null || { echo "clippy missing: rustup component add clippy" >&2; return 1; }
}

unit_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast
    else
        echo "cargo-nextest not found; using cargo test"
        cargo test --workspace --no-fail-fast
    fi
}

e2e_tests() {
    if [[ ! -x "$PORTER_BIN" ]]; then
        echo "porter binary not found at $PORTER_BIN (the build step should have built it)" >&2
        return 1
    fi
    local pytest_args=()
    if [[ -n "${PYTEST_ARGS:-}" ]]; then
        read -r -a pytest_args <<<"$PYTEST_ARGS"
    fi
    # The Paho MQTT interoperability suites mostly sleep (their own waits): they run beside the
    # rest, in their own pytest, logged to interop.log.
    local interop=tests/python/test_mqtt_interop.py interop_pid=""
    if [[ -z "${PYTEST_ARGS:-}" ]]; then
        "$VENV_DIR/bin/python" -m pytest -q "$interop" >"$LOG_DIR/interop.log" 2>&1 &
        interop_pid=$!
        pytest_args+=(--ignore="$interop")
    fi
    local rc=0
    "$VENV_DIR/bin/python" -m pytest -q tests/python "${pytest_args[@]}" || rc=$?
    if [[ -n $interop_pid ]]; then
        local interop_rc=0
        wait "$interop_pid" || interop_rc=$?
        # (Not its pytest summary line: the e2e count reads the last one of this log.)
        echo "--- $interop, run alongside: exit $interop_rc; output in ${LOG_DIR#"$ROOT"/}/interop.log"
        [[ $interop_rc -eq 0 ]] || { tail -n 40 "$LOG_DIR/interop.log"; rc=$interop_rc; }
    fi
    return "$rc"
}

# node_modules for the node step and for the docs' JavaScript snippets (run by the e2e step).
install_node_modules() {
    command -v node >/dev/null 2>&1 || { echo "node not found: install Node.js 20+ (with npm)" >&2; return 1; }
    command -v npm >/dev/null 2>&1 || { echo "npm not found: install npm" >&2; return 1; }
    echo "node $(node --version), npm $(npm --version 2>/dev/null)"
    # The stamp covers the lockfile and the node version; npm ci wipes node_modules, stamp included.
    local wanted
    wanted="$( (sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1; node --version) | sha256sum | cut -d' ' -f1)"
    if [[ -f "$NODE_STAMP" && "$(cat "$NODE_STAMP")" == "$wanted" ]]; then
        echo "npm: ${NODE_DIR#"$ROOT"/}/node_modules up to date"
    else
        echo "npm: npm ci in ${NODE_DIR#"$ROOT"/}"
        (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
        echo "$wanted" >"$NODE_STAMP"
    fi
}

node_tests() {
    if [[ ! -x "$PORTER_BIN" ]]; then
        echo "porter binary not found at $PORTER_BIN (the build step should have built it)" >&2
        return 1
    fi
    (cd "$NODE_DIR" && npm test --silent)
}

# count_results: "passed failed" totals over the cargo, nextest, pytest and node logs of this run.
count_results() {
    local passed=0 failed=0 p f line
    if [[ -f "$LOG_DIR/test.log" ]]; then
        # cargo test: "test result: ok. 21 passed; 0 failed; ..."
        while read -r p f; do
            passed=$((passed + p)); failed=$((failed + f))
        done < <(sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$LOG_DIR/test.log")
        # nextest: "     Summary [ 1.2s] 30 tests run: 30 passed, 0 skipped" / "... 29 passed, 1 failed, ..."
        line=$(grep -E '^ *Summary \[' "$LOG_DIR/test.log" | tail -n 1 || true)
        if [[ -n "$line" ]]; then
            p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
            passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
        fi
    fi
    if [[ -f "$LOG_DIR/doc.log" ]]; then
        while read -r p f; do
            passed=$((passed + p)); failed=$((failed + f))
        done < <(sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$LOG_DIR/doc.log")
    fi
    if [[ -f "$LOG_DIR/e2e.log" ]]; then
        # pytest -q: "12 passed, 1 failed in 80.1s" (either part may be absent)
        line=$(grep -E '^[0-9]+ (passed|failed)|(passed|failed).* in [0-9.]+s' "$LOG_DIR/e2e.log" | tail -n 1 || true)
        p=$(sed -nE 's/.*\b([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.*\b([0-9]+) failed.*/\1/p' <<<"$line")
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    fi
    if [[ -f "$LOG_DIR/interop.log" ]]; then
        line=$(grep -E '^[0-9]+ (passed|failed)|(passed|failed).* in [0-9.]+s' "$LOG_DIR/interop.log" | tail -n 1 || true)
        p=$(sed -nE 's/.*\b([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.*\b([0-9]+) failed.*/\1/p' <<<"$line")
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    fi
    if [[ -f "$LOG_DIR/node.log" ]]; then
        # node --test: "# pass 5" / "# fail 0" (TAP, not a tty) or "ℹ pass 5" (spec reporter)
        p=$(sed -nE 's/^(#|ℹ) pass ([0-9]+)$/\2/p' "$LOG_DIR/node.log" | tail -n 1)
        f=$(sed -nE 's/^(#|ℹ) fail ([0-9]+)$/\2/p' "$LOG_DIR/node.log" | tail -n 1)
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    fi
    echo "$passed $failed"
}

rm -rf "$LOG_DIR"
run_step deps "install kcat, python3-venv, mosquitto, .venv, tests/node/node_modules and librdkafka's test-runner if missing" install_deps
run_step fmt "cargo fmt --all -- --check" cargo fmt --all -- --check
run_step clippy "cargo clippy --workspace --all-targets -- -D warnings" \
    cargo clippy --workspace --all-targets -- -D warnings
run_step build "cargo build --workspace --bins --tests" cargo build --workspace --bins --tests
run_step test "unit and integration tests (nextest, else cargo test)" unit_tests
run_step doc "cargo test --workspace --doc" cargo test --workspace --doc
if [[ "${PORTER_SKIP_E2E:-0}" == "1" ]]; then
    banner e2e "SKIPPED (PORTER_SKIP_E2E=1)"
    banner node "SKIPPED (PORTER_SKIP_E2E=1)"
else
    run_step e2e "pytest tests/python (PORTER_BIN=${PORTER_BIN#"$ROOT"/})" e2e_tests
    run_step node "kafkajs and amqplib tests in tests/node (PORTER_BIN=${PORTER_BIN#"$ROOT"/})" node_tests
fi

read -r TOTAL_PASSED TOTAL_FAILED < <(count_results)
printf '\n==> all steps ok in %ds: %s\n' "$((SECONDS - RUN_STARTED_S))" "${STEPS_DONE[*]}"
printf 'summary: %d passed, %d failed\n' "$TOTAL_PASSED" "$TOTAL_FAILED"
