#!/usr/bin/env bash
# RocketMQ 5 over gRPC (issue 15) with the official Rust client (crate rocketmq 5.0.0): 100 B sends
# with many in flight, then SimpleConsumer receives (batches of 32) and acks; broker CPU per
# million messages and RSS from /proc. One command:
#
#   ./scripts/bench-rocketmq.sh
#
# Builds release porter and porter-bench, starts Porter on free loopback ports with a temp data
# dir, and runs, each on a fresh topic: send-only at IN_FLIGHT (sends in flight:producer connections,
# 64:1,128:1,256:4), one message per SendMessage; send + receive + ack at 128 in flight; and send-only with SEND_BATCH (32)
# messages per SendMessage (the client's batch_send), which shows what one gRPC call costs.
# JSON and text per run in $OUT (target/bench/rocketmq/). Knobs: RECORDS (300000), IN_FLIGHT,
# SEND_BATCH, RECEIVERS (4).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RECORDS="${RECORDS:-300000}"
IN_FLIGHT="${IN_FLIGHT:-64:1,128:1,256:4}"
SEND_BATCH="${SEND_BATCH:-32}"
RECEIVERS="${RECEIVERS:-4}"
OUT="${OUT:-$ROOT/target/bench/rocketmq}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt

cargo build --release -p porter -p porter-bench >&2
BENCH="$ROOT/target/release/porter-bench"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA="$(mktemp -d /tmp/porter-bench-rocketmq.XXXXXX)"
RMQ_PORT="$(free_port)"
"$ROOT/target/release/porter" serve --data-dir "$DATA/data" --kafka-listen "127.0.0.1:$(free_port)" \
    --amqp-listen off --rocketmq-listen "127.0.0.1:$RMQ_PORT" --log warn >"$OUT/porter.log" 2>&1 &
PORTER_PID=$!
cleanup() {
    kill "$PORTER_PID" 2>/dev/null || true
    wait "$PORTER_PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$RMQ_PORT") 2>/dev/null && break
    sleep 0.1
done
echo "porter $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo '+dirty'); $(uptime)" | tee "$OUT/versions.txt" >&2

common=(--endpoint "127.0.0.1:$RMQ_PORT" --broker-pid "$PORTER_PID" --label porter --quiet
    --max-seconds 120 --records "$RECORDS")
run() {
    local name=$1
    shift
    "$BENCH" rocketmq "${common[@]}" "$@" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 ||
        echo "run $name failed: $(tail -n 3 "$OUT/$name.txt")" >&2
    echo "== $name ($(cut -d, -f3- <<<"$(uptime)"))"
    grep -E '^(produced|consumed|broker|driver|machine|errors)' "$OUT/$name.txt"
}
for point in ${IN_FLIGHT//,/ }; do
    n=${point%%:*} producers=${point##*:}
    run "send-${n}-in-flight-${producers}p" --in-flight "$n" --producers "$producers" --no-receive
done
run "send-receive-128-in-flight" --in-flight 128 --receivers "$RECEIVERS"
run "send-batch-${SEND_BATCH}" --in-flight 64 --send-batch "$SEND_BATCH" --no-receive
echo "broker VmHWM: $(grep VmHWM /proc/$PORTER_PID/status)"
