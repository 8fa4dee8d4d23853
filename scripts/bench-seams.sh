#!/usr/bin/env bash
# Before/after for a change to the broker's middle (issue 11: commit seam, publish pipeline,
# gateway kit): two porter binaries driven by the same porter-bench, alternating, medians of RUNS.
#
#   BEFORE_BIN=/path/to/old/porter ./scripts/bench-seams.sh
#
# BEFORE_BIN is a release `porter` built from the commit to compare against (for example
# `git worktree add /tmp/base <rev> && cargo build --release -p porter` there). The "after" binary
# is this tree's release build. Scenarios, each run RUNS times per binary, binaries alternating:
#   1. Kafka log ingestion: 100 B records, PRODUCERS producers, 6 partitions, acks=all, 2
#      consumers reading after (produce throughput; broker CPU per million records produced and read);
#   2. AMQP durable work queue, 100 B, 1 publisher / 1 consumer, confirms, closed loop
#      (broker CPU per million messages beside throughput);
#   3. AMQP fan-out, 100 B, N = 10 and 100 durable queues (deliveries/s, CPU per million).
# Prints a markdown table (medians; after/before ratio) and writes it to $OUT/summary.md.
# Knobs: RUNS (3), KAFKA_RECORDS (2000000), PRODUCERS (4), AMQP_RECORDS (200000),
# FANOUT_DELIVERIES (200000), OUT (target/bench/seams).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${BEFORE_BIN:?set BEFORE_BIN to the release porter binary to compare against}"
RUNS="${RUNS:-3}"
KAFKA_RECORDS="${KAFKA_RECORDS:-2000000}"
PRODUCERS="${PRODUCERS:-4}"
AMQP_RECORDS="${AMQP_RECORDS:-200000}"
FANOUT_DELIVERIES="${FANOUT_DELIVERIES:-200000}"
OUT="${OUT:-$ROOT/target/bench/seams}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/*.log

cargo build --release -p porter -p porter-bench >&2
AFTER_BIN="$ROOT/target/release/porter"
BENCH="$ROOT/target/release/porter-bench"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PID=""
DATA=""
stop_broker() {
    if [[ -n $PID ]]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    [[ -n $DATA ]] && rm -rf "$DATA"
    PID=""
    DATA=""
}
trap stop_broker EXIT

# start_broker LABEL: a fresh data directory and loopback ports for each run.
start_broker() {
    local label=$1 bin=$AFTER_BIN
    [[ $label == before ]] && bin=$BEFORE_BIN
    DATA="$(mktemp -d /tmp/porter-bench-seams.XXXXXX)"
    KAFKA_PORT="$(free_port)"
    AMQP_PORT="$(free_port)"
    "$bin" serve --data-dir "$DATA/data" --kafka-listen "127.0.0.1:$KAFKA_PORT" \
        --amqp-listen "127.0.0.1:$AMQP_PORT" --log warn >>"$OUT/$label.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        (echo >"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "porter ($label) did not start; its log:" >&2
    tail -n 20 "$OUT/$label.log" >&2
    exit 1
}

# run LABEL NAME DRIVER ARGS...: one porter-bench command against a fresh broker.
run() {
    local label=$1 name=$2 driver=$3
    shift 3
    start_broker "$label"
    local target=(--url "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F")
    [[ $driver == kafka ]] && target=(--brokers "127.0.0.1:$KAFKA_PORT")
    "$BENCH" "$driver" "${target[@]}" "$@" --broker-pid "$PID" --label "$label" --quiet \
        --max-seconds 120 --json "$OUT/$label-$name.json" >"$OUT/$label-$name.txt" 2>&1 ||
        echo "run $label-$name failed: $(tail -n 3 "$OUT/$label-$name.txt")" >&2
    grep -E '^(==|produced|consumed|errors)' "$OUT/$label-$name.txt" >&2 || true
    stop_broker
}

echo "before: $BEFORE_BIN; after: porter $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo '+dirty')" |
    tee "$OUT/versions.txt" >&2
for n in $(seq "$RUNS"); do
    for label in before after; do
        run "$label" "kafka-100B-${PRODUCERS}p-$n" kafka --partitions 6 --acks all --linger-ms 5 \
            --record-bytes 100 --records "$KAFKA_RECORDS" --producers "$PRODUCERS" --consumers 2
        run "$label" "amqp-100B-1p1c-$n" amqp --record-bytes 100 --producers 1 --consumers 1 \
            --records "$AMQP_RECORDS"
        for subscribers in 10 100; do
            run "$label" "amqp-100B-fanout$subscribers-$n" amqp --scenario fanout \
                --subscribers "$subscribers" --records $((FANOUT_DELIVERIES / subscribers))
        done
    done
done

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
groups = {}
for f in glob.glob(f"{out}/*.json"):
    label, key = os.path.basename(f)[:-5].split("-", 1)
    key = re.sub(r"-\d+$", "", key)
    groups.setdefault(key, {}).setdefault(label, []).append(json.load(open(f)))
def med(runs, field):
    values = [r[field] for r in runs if r.get(field)]
    return statistics.median(values) if values else float("nan")
print(open(f"{out}/versions.txt").read().strip() + "\n")
print("| scenario | rate before | rate after | after/before | CPU s/M before | CPU s/M after | CPU after/before | peak RSS MiB before / after |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted(groups):
    b, a = groups[key].get("before", []), groups[key].get("after", [])
    field = "produce_records_per_sec" if key.startswith("kafka") else "consume_records_per_sec"
    rb, ra = med(b, field), med(a, field)
    cb, ca = med(b, "broker_cpu_seconds_per_million"), med(a, "broker_cpu_seconds_per_million")
    rss = lambda runs: statistics.median(r["broker"]["rss_peak_kib"] for r in runs if r.get("broker")) / 1024 if runs else float("nan")
    mb, ma = rss(b), rss(a)
    print(f"| {key} | {rb:,.0f} | {ra:,.0f} | {ra / rb:.2f}x | {cb:.1f} | {ca:.1f} | {ca / cb:.2f}x | {mb:.0f} / {ma:.0f} |")
PY
