#!/usr/bin/env bash
# Log ingestion over the Kafka protocol (issue 6, scenario 1): many producers, 100 B and 1 KiB
# records, batched (linger 5 ms), 6 partitions, acks=all (Porter's default `flush = "group"`: a
# produce is acknowledged after the fdatasync covering it); then consumers read everything back.
# Plus an open-loop sweep (produce and consume concurrently, latency from each record's intended
# send time) to show the consumers keep up. One command:
#
#   ./scripts/bench-kafka.sh
#
# Builds release porter and porter-bench, starts Porter on free loopback ports with a temp data
# dir, runs RUNS (3) closed-loop runs per size and one sweep per run, prints a markdown table of
# medians; JSON per run in $OUT (target/bench/kafka/), charts in $OUT/charts. No peer: RabbitMQ,
# Mosquitto and NATS do not speak the Kafka protocol (see BENCHMARKS.md for how the scenario is
# compared). Knobs: RUNS, RECORDS (3000000 at 100 B; a quarter at 1 KiB), PRODUCERS (4),
# CONSUMERS (2), PARTITIONS (6), RATES (200000,400000,800000), DURATION (10 s per rate).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
RECORDS="${RECORDS:-3000000}"
PRODUCERS="${PRODUCERS:-4}"
CONSUMERS="${CONSUMERS:-2}"
PARTITIONS="${PARTITIONS:-6}"
RATES="${RATES:-200000,400000,800000}"
DURATION="${DURATION:-10}"
OUT="${OUT:-$ROOT/target/bench/kafka}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt

cargo build --release -p porter -p porter-bench >&2
BENCH="$ROOT/target/release/porter-bench"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA="$(mktemp -d /tmp/porter-bench-kafka.XXXXXX)"
KAFKA_PORT="$(free_port)"
"$ROOT/target/release/porter" serve --data-dir "$DATA/data" --kafka-listen "127.0.0.1:$KAFKA_PORT" \
    --amqp-listen "127.0.0.1:$(free_port)" --log warn >"$OUT/porter.log" 2>&1 &
PORTER_PID=$!
cleanup() {
    kill "$PORTER_PID" 2>/dev/null || true
    wait "$PORTER_PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break
    sleep 0.1
done
echo "porter $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo '+dirty'), librdkafka via rdkafka $(grep -A1 '^name = "rdkafka"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')" | tee "$OUT/versions.txt" >&2

common=(--brokers "127.0.0.1:$KAFKA_PORT" --partitions "$PARTITIONS" --acks all --linger-ms 5
    --broker-pid "$PORTER_PID" --label porter --quiet --max-seconds 120)
for n in $(seq "$RUNS"); do
    for size in 100 1024; do
        records=$RECORDS
        [[ $size -gt 100 ]] && records=$((RECORDS / 4))
        name="porter-log-${size}B-${PRODUCERS}p${CONSUMERS}c-$n"
        "$BENCH" kafka "${common[@]}" --record-bytes "$size" --records "$records" \
            --producers "$PRODUCERS" --consumers "$CONSUMERS" --json "$OUT/$name.json" \
            >"$OUT/$name.txt" 2>&1 || echo "run $name failed: $(tail -n 3 "$OUT/$name.txt")" >&2
        grep -E '^(==|produced|consumed|errors)' "$OUT/$name.txt" >&2 || true
    done
    name="porter-log-100B-open-$n"
    "$BENCH" kafka "${common[@]}" --record-bytes 100 --rates "$RATES" --duration "$DURATION" \
        --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || echo "run $name failed: $(tail -n 3 "$OUT/$name.txt")" >&2
    grep -E '^(==|consumed|end-to-end|errors)' "$OUT/$name.txt" >&2 || true
    if ! kill -0 "$PORTER_PID" 2>/dev/null; then
        echo "porter died; last lines of its log:" >&2
        tail -n 40 "$OUT/porter.log" >&2
        exit 1
    fi
done

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
groups = {}
for f in glob.glob(f"{out}/porter-*.json"):
    key = re.sub(r"-\d+(-rate\d+)?\.json$", r"\1", os.path.basename(f))
    groups.setdefault(key, []).append(json.load(open(f)))
med = lambda runs, get: statistics.median(get(r) for r in runs)
print(open(f"{out}/versions.txt").read().strip() + f"; medians of {max(len(v) for v in groups.values())} runs\n")
print("| run | produce rec/s | produce MB/s | consume rec/s | p50 / p99 / p99.9 ms | broker CPU s/M | peak RSS MiB | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted(groups, key=lambda k: ("rate" in k, int(re.search(r"rate(\d+)", k).group(1)) if "rate" in k else 0, k)):
    runs = groups[key]
    lat = lambda q: med(runs, lambda r: r["end_to_end"][q]) / 1000
    print(f"| {key} | {med(runs, lambda r: r['produce_records_per_sec']):,.0f} | {med(runs, lambda r: r['produce_mb_per_sec']):.1f} "
          f"| {med(runs, lambda r: r['consume_records_per_sec']):,.0f} | {lat('p50_us'):.1f} / {lat('p99_us'):.1f} / {lat('p999_us'):.1f} "
          f"| {med(runs, lambda r: r['broker_cpu_seconds_per_million'] or 0):.2f} "
          f"| {max((r.get('broker') or {}).get('rss_peak_kib', 0) for r in runs) / 1024:.0f} "
          f"| {sum(r['errors'] for r in runs)} |")
PY
"$BENCH" chart "$OUT" --out "$OUT/charts" >&2 || echo "chart failed" >&2
