#!/usr/bin/env bash
# Porter vs RabbitMQ on the durable work queue (issue 5 §4), same client code (porter-bench amqp,
# lapin) and the same durability on both: durable queue, persistent messages, publisher confirms,
# manual acks. One command:
#
#   ./scripts/bench-amqp.sh
#
# Builds release porter and porter-bench, starts Porter (temp data dir, loopback ports) and a
# private RabbitMQ (scripts/peers/rabbitmq.sh), runs {100 B, 4 KiB} x {1p/1c, 4p/4c} closed loop,
# brokers alternating, RUNS times each, then one open-loop point per message size at RATE msgs/s
# (default: half of RabbitMQ's median 1p/1c throughput for that size) to compare latency at equal
# load. Prints a markdown table of medians with the Porter / RabbitMQ ratio; JSON per run in
# target/bench/amqp/. Stops both brokers on exit.
# Knobs: RUNS (3), RECORDS (200000 for 100 B; a quarter of it for 4 KiB), MAX_SECONDS (60), RATE,
# BENCH_ARGS (extra porter-bench amqp flags for every run, e.g. "--prefetch 1000 --ack-every 10"),
# RABBITMQ_PORT (5679: a node of its own, not the tests' default 5673), OUT (target/bench/amqp).
# If Porter dies during a run, the script stops there and prints the tail of its log (kept in
# $OUT/porter.log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
RECORDS="${RECORDS:-200000}"
MAX_SECONDS="${MAX_SECONDS:-60}"
OUT="${OUT:-$ROOT/target/bench/amqp}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5679}"
read -r -a EXTRA_ARGS <<<"${BENCH_ARGS:-}"
export RUST_BACKTRACE=0
export RABBITMQ_PORT
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/porter.log

cargo build --release -p porter -p porter-bench >&2
BENCH="$ROOT/target/release/porter-bench"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DATA="$(mktemp -d /tmp/porter-bench-amqp.XXXXXX)"
KAFKA_PORT="$(free_port)"
AMQP_PORT="$(free_port)"
"$ROOT/target/release/porter" serve --data-dir "$DATA/data" \
    --kafka-listen "127.0.0.1:$KAFKA_PORT" --amqp-listen "127.0.0.1:$AMQP_PORT" \
    --log warn >"$OUT/porter.log" 2>&1 &
PORTER_PID=$!
RABBIT_STARTED=0
cleanup() {
    kill "$PORTER_PID" 2>/dev/null || true
    wait "$PORTER_PID" 2>/dev/null || true
    # Only a node this script started: never one somebody else runs on that port.
    if [[ $RABBIT_STARTED == 1 ]]; then
        "$ROOT/scripts/peers/rabbitmq.sh" stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null && break
    sleep 0.1
done
if "$ROOT/scripts/peers/rabbitmq.sh" status >/dev/null 2>&1; then
    echo "a RabbitMQ node already runs on port $RABBITMQ_PORT (not ours): set RABBITMQ_PORT" >&2
    exit 1
fi
RABBIT_STARTED=1
"$ROOT/scripts/peers/rabbitmq.sh" start >&2
RABBIT_URL="$("$ROOT/scripts/peers/rabbitmq.sh" url)"
RABBIT_PID="$(tr -dc '0-9' <"${RABBITMQ_PEER_DIR:-/tmp/porter-rabbitmq-peer-$RABBITMQ_PORT}/pid")"
PORTER_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F"
RABBIT_VERSION="$("$ROOT/scripts/peers/rabbitmq.sh" ctl version 2>/dev/null | tail -1 || true) (Debian $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?'), Erlang $(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo '?'))"
LAPIN_VERSION="$(grep -A1 '^name = "lapin"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
echo "porter $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo '+dirty'), RabbitMQ $RABBIT_VERSION, lapin $LAPIN_VERSION" | tee "$OUT/versions.txt" >&2

run() { # broker size producers consumers run [rate]
    local broker=$1 size=$2 p=$3 c=$4 n=$5 rate=${6:-}
    local url=$PORTER_URL pid=$PORTER_PID records=$RECORDS
    if [[ $broker == rabbitmq ]]; then url=$RABBIT_URL; pid=$RABBIT_PID; fi
    if [[ $size -gt 1000 ]]; then records=$((RECORDS / 4)); fi
    local name="$broker-${size}B-${p}p${c}c${rate:+-rate$rate}-$n"
    local extra=()
    if [[ -n $rate ]]; then extra=(--rate "$rate" --records $((rate * 10))); else extra=(--records "$records"); fi
    "$BENCH" amqp --url "$url" --record-bytes "$size" --producers "$p" --consumers "$c" \
        "${extra[@]}" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} --max-seconds "$MAX_SECONDS" \
        --broker-pid "$pid" --label "$broker" \
        --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || echo "run $name failed: $(tail -n 3 "$OUT/$name.txt")" >&2
    grep -E '^(==|consumed|end-to-end|errors)' "$OUT/$name.txt" >&2 || true
    if ! kill -0 "$PORTER_PID" 2>/dev/null; then
        echo "porter (pid $PORTER_PID) died during $name; last lines of its log:" >&2
        tail -n 40 "$OUT/porter.log" >&2
        exit 1
    fi
}

for size in 100 4096; do
    for pc in "1 1" "4 4"; do
        for n in $(seq "$RUNS"); do
            run porter "$size" $pc "$n"
            run rabbitmq "$size" $pc "$n"
        done
    done
done

# Open loop at equal load: half of RabbitMQ's median closed-loop 1p/1c rate unless RATE is set.
for size in 100 4096; do
    rate="${RATE:-$(python3 - "$OUT" "$size" <<'EOF'
import json, glob, statistics, sys
out, size = sys.argv[1], sys.argv[2]
runs = [json.load(open(f)) for f in glob.glob(f"{out}/rabbitmq-{size}B-1p1c-[0-9]*.json")]
rates = [r["consume_records_per_sec"] for r in runs if r["consumed"]]
print(max(100, int(statistics.median(rates) / 2)) if rates else 1000)
EOF
)}"
    for n in $(seq "$RUNS"); do
        run porter "$size" 1 1 "$n" "$rate"
        run rabbitmq "$size" 1 1 "$n" "$rate"
    done
done

python3 - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
groups = {}
for f in glob.glob(f"{out}/*.json"):
    name = os.path.basename(f)[:-5]
    broker, key = name.split("-", 1)
    key = re.sub(r"-\d+$", "", key)
    groups.setdefault((key, broker), []).append(json.load(open(f)))
def med(runs, field):
    return statistics.median(r[field] for r in runs) if runs else float("nan")
def lat(runs, q):
    return statistics.median(r["end_to_end"][q] for r in runs) / 1000 if runs else float("nan")
print(open(f"{out}/versions.txt").read().strip() + f"; medians of {len(next(iter(groups.values())))} runs\n")
print("| scenario | Porter msg/s | RabbitMQ msg/s | ratio | Porter p50 / p99 ms | RabbitMQ p50 / p99 ms | Porter CPU s/M | RabbitMQ CPU s/M | errors P / R |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted({k for k, _ in groups}, key=lambda k: ("rate" in k, k)):
    p, r = groups.get((key, "porter"), []), groups.get((key, "rabbitmq"), [])
    pt, rt = med(p, "consume_records_per_sec"), med(r, "consume_records_per_sec")
    cpu = lambda runs: statistics.median(x["broker_cpu_seconds_per_million"] or 0 for x in runs) if runs else float("nan")
    print(f"| {key} | {pt:,.0f} | {rt:,.0f} | {pt / rt:.1f}x | {lat(p, 'p50_us'):.1f} / {lat(p, 'p99_us'):.1f} "
          f"| {lat(r, 'p50_us'):.1f} / {lat(r, 'p99_us'):.1f} | {cpu(p):.1f} | {cpu(r):.1f} "
          f"| {sum(x['errors'] for x in p)} / {sum(x['errors'] for x in r)} |")
EOF
