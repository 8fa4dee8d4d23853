#!/usr/bin/env bash
# Where Porter's time goes: a CPU flamegraph of the broker under one porter-bench scenario.
#
#   ./scripts/flamegraph.sh amqp            # the durable work queue (100 B, 1p/1c, closed loop)
#   ./scripts/flamegraph.sh kafka           # log ingestion (100 B, 4 producers, 6 partitions)
#   ./scripts/flamegraph.sh amqp --record-bytes 4096 --records 50000   # extra porter-bench flags
#
# Builds release porter and porter-bench (release keeps debug = 1, so frames have names), starts
# Porter on free loopback ports with a temporary data directory, samples it with
# `perf record -e cpu-clock -g --call-graph dwarf` (software clock: works on VMs without hardware
# counters) while porter-bench runs, then folds the stacks with inferno into
# $OUT/flamegraph-<scenario>.svg (default target/bench/flamegraph/). Installs linux-perf (apt) and
# inferno (cargo install) if missing. Stops Porter on exit.
# Knobs: OUT, PERF_FREQ (sampling Hz, default 499), PERF_DWARF_BYTES (stack bytes copied per
# sample, default 16384).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCENARIO="${1:-amqp}"
shift || true
OUT="${OUT:-$ROOT/target/bench/flamegraph}"
PERF_FREQ="${PERF_FREQ:-499}"
PERF_DWARF_BYTES="${PERF_DWARF_BYTES:-16384}"
mkdir -p "$OUT"

if ! command -v perf >/dev/null; then
    apt-get install -y -q linux-perf >&2
fi
if ! command -v inferno-flamegraph >/dev/null; then
    cargo install inferno --locked >&2
fi
cargo build --release -p porter -p porter-bench >&2
BENCH="$ROOT/target/release/porter-bench"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA="$(mktemp -d /tmp/porter-flamegraph.XXXXXX)"
KAFKA_PORT="$(free_port)"
AMQP_PORT="$(free_port)"
"$ROOT/target/release/porter" serve --data-dir "$DATA/data" \
    --kafka-listen "127.0.0.1:$KAFKA_PORT" --amqp-listen "127.0.0.1:$AMQP_PORT" \
    --log warn >"$OUT/porter.log" 2>&1 &
PORTER_PID=$!
PERF_PID=""
cleanup() {
    [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null || true
    kill "$PORTER_PID" 2>/dev/null || true
    wait "$PORTER_PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null && break
    sleep 0.1
done

case "$SCENARIO" in
amqp)
    command=("$BENCH" amqp --url "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F" --record-bytes 100
        --records 200000 --producers 1 --consumers 1) ;;
kafka)
    command=("$BENCH" kafka --brokers "127.0.0.1:$KAFKA_PORT" --record-bytes 100 --records 3000000
        --producers 4 --consumers 2 --partitions 6) ;;
*)
    echo "unknown scenario $SCENARIO (amqp or kafka)" >&2
    exit 2 ;;
esac

perf record -e cpu-clock -F "$PERF_FREQ" -g --call-graph "dwarf,$PERF_DWARF_BYTES" \
    -p "$PORTER_PID" -o "$OUT/perf-$SCENARIO.data" 2>"$OUT/perf-record.log" &
PERF_PID=$!
sleep 0.5
"${command[@]}" --broker-pid "$PORTER_PID" --label porter "$@" | tee "$OUT/bench-$SCENARIO.txt" >&2
kill -INT "$PERF_PID"
wait "$PERF_PID" || true
PERF_PID=""
perf script -i "$OUT/perf-$SCENARIO.data" 2>/dev/null | inferno-collapse-perf >"$OUT/stacks-$SCENARIO.folded"
inferno-flamegraph --minwidth 0.5 --title "porter under porter-bench $SCENARIO $*" \
    <"$OUT/stacks-$SCENARIO.folded" >"$OUT/flamegraph-$SCENARIO.svg"
# The top frames by self time, as text for BENCHMARKS.md.
awk '{n=$NF; $NF=""; k=split($0, f, ";"); self[f[k]]+=n; total+=n}
     END {for (s in self) printf "%6.2f%%  %s\n", 100*self[s]/total, s}' \
    "$OUT/stacks-$SCENARIO.folded" | sort -rn | head -25 | tee "$OUT/top-$SCENARIO.txt"
echo "flamegraph: $OUT/flamegraph-$SCENARIO.svg" >&2
