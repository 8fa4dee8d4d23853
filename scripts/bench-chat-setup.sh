#!/usr/bin/env bash
# The chat scenario's set-up (issue 14: "2,000 clients connect, declare and bind in ≤ 5 s"), on
# Porter and RabbitMQ with the same porter-bench client, brokers alternating, RUNS times each:
#
#   scripts/bench-chat-setup.sh                 # 2,000 clients, 50 rooms, 3 runs per broker
#   CONNECTIONS=500 RUNS=1 PEER=none scripts/bench-chat-setup.sh
#
# For each run it prints the set-up wall time (porter-bench's "... connected and bound in Xs"
# line) and the CPU seconds the broker and the client (porter-bench, lapin's threads included)
# spent from the start of the run to that line, read from /proc/PID/stat when the line appears:
# so this works with any porter-bench build, including one that does not report its own CPU.
# Each Porter run gets a fresh broker and data directory; RabbitMQ is started fresh once.
# Knobs: RUNS (3), CONNECTIONS (2000), ROOMS (50), PEER (rabbitmq|none), PORTER_BIN, BENCH_BIN,
# AMQP_PORT (5682), OUT (a temporary directory; Porter's data goes in it, so OUT on /dev/shm
# shows the broker without its file system), BENCH_ARGS (more porter-bench flags, e.g.
# "--joining-at-once 128").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-3}"
CONNECTIONS="${CONNECTIONS:-2000}"
ROOMS="${ROOMS:-50}"
PEER="${PEER:-rabbitmq}"
PORTER_BIN="${PORTER_BIN:-$ROOT/target/release/porter}"
BENCH_BIN="${BENCH_BIN:-$ROOT/target/release/porter-bench}"
AMQP_PORT="${AMQP_PORT:-5682}"
BENCH_ARGS="${BENCH_ARGS:-}"
OUT="${OUT:-$(mktemp -d /tmp/porter-chat-setup.XXXXXX)}"
mkdir -p "$OUT"

PORTER_PID=""
RABBIT_STARTED=0
cleanup() {
    if [[ -n $PORTER_PID ]]; then kill "$PORTER_PID" 2>/dev/null || true; wait "$PORTER_PID" 2>/dev/null || true; fi
    if [[ $RABBIT_STARTED == 1 ]]; then "$ROOT/scripts/peers/rabbitmq.sh" stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# utime + stime of PID in seconds (fields 14 and 15, counted after the command name).
cpu_seconds() {
    local stat
    stat="$(cat "/proc/$1/stat")"
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    echo "scale=2; (${12} + ${13}) / $(getconf CLK_TCK)" | bc
}

start_porter() {
    rm -rf "$OUT/data"
    "$PORTER_BIN" serve --data-dir "$OUT/data" --kafka-listen off \
        --amqp-listen "127.0.0.1:$AMQP_PORT" >"$OUT/porter.log" 2>&1 &
    PORTER_PID=$!
    for _ in $(seq 100); do
        if (echo >"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "porter did not start; see $OUT/porter.log" >&2
    exit 1
}

stop_porter() {
    kill "$PORTER_PID" 2>/dev/null || true
    wait "$PORTER_PID" 2>/dev/null || true
    PORTER_PID=""
}

# One run against URL with broker PID; prints "broker wall_s broker_cpu_s client_cpu_s".
run() {
    local broker=$1 url=$2 pid=$3 n=$4
    local broker_cpu0 bench_pid line wall="" broker_cpu="" client_cpu=""
    local log="$OUT/$broker-$n.log"
    broker_cpu0="$(cpu_seconds "$pid")"
    # shellcheck disable=SC2086 # BENCH_ARGS is split into flags on purpose
    "$BENCH_BIN" amqp --scenario chat --url "$url" --connections "$CONNECTIONS" \
        --rooms "$ROOMS" --rate 100 --records 100 --broker-pid "$pid" $BENCH_ARGS \
        --json "$OUT/$broker-$n.json" >"$log" 2>&1 &
    bench_pid=$!
    # Polled every 20 ms: the CPU read then is at most that late.
    while kill -0 "$bench_pid" 2>/dev/null; do
        line="$(grep -m1 "connected and bound in" "$log" 2>/dev/null || true)"
        if [[ -n $line ]]; then
            broker_cpu="$(echo "$(cpu_seconds "$pid") - $broker_cpu0" | bc)"
            client_cpu="$(cpu_seconds "$bench_pid")"
            wall="${line##* in }"
            break
        fi
        sleep 0.02
    done
    wait "$bench_pid" || echo "porter-bench failed; see $log" >&2
    echo "$broker ${wall%s} $broker_cpu $client_cpu"
}

if [[ $PEER == rabbitmq ]]; then
    "$ROOT/scripts/peers/rabbitmq.sh" start >&2
    RABBIT_STARTED=1
    RABBIT_URL="$("$ROOT/scripts/peers/rabbitmq.sh" url)"
    RABBIT_PID="$(tr -dc '0-9' <"${RABBITMQ_PEER_DIR:-/tmp/porter-rabbitmq-peer-${RABBITMQ_PORT:-5673}}/pid")"
fi

echo "# $(date -u +%FT%TZ) $CONNECTIONS clients, $ROOMS rooms; $(uptime)"
echo "# broker set-up_wall_s broker_cpu_s client_cpu_s"
for n in $(seq "$RUNS"); do
    start_porter
    run porter "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F" "$PORTER_PID" "$n"
    stop_porter
    if [[ $PEER == rabbitmq ]]; then
        run rabbitmq "$RABBIT_URL" "$RABBIT_PID" "$n"
    fi
done
echo "# $(uptime)"
echo "# logs in $OUT"
