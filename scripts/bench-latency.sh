#!/usr/bin/env bash
# The latency budget (issue 14 §5): end-to-end p99 at half the measured peak, and stalls caused
# by Porter's own maintenance, with porter-bench's open loop (latency counted from each message's
# intended send time, so a stall shows instead of slowing the sender). One command:
#
#   ./scripts/bench-latency.sh          # ~6 min
#
# 1. Kafka, linger.ms=0, acks=all, 100 B, PRODUCERS producers, 6 partitions: closed-loop peak,
#    then open loop at half of it for DURATION s (produced and consumed concurrently).
# 2. AMQP durable work queue (persistent, confirms, manual acks, prefetch 100), 100 B, 1p/1c,
#    awaited publishes: closed-loop peak, then open loop at half of it.
# 3. A long Kafka open-loop run (LONG_SECONDS at a quarter of the peak) against a broker set up
#    so that maintenance runs all the time: 4 MiB segments rolled every few seconds per partition,
#    15 s retention checked every second (segment deletion), metadata checkpoints. Its max
#    latency is the worst stall; the log says how many retention passes deleted segments.
# Prints a markdown table to $OUT/summary.md. Knobs: OUT (target/bench/latency), PRODUCERS (4),
# RECORDS (1000000), DURATION (10), LONG_SECONDS (90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/target/bench/latency}"
PRODUCERS="${PRODUCERS:-4}"
RECORDS="${RECORDS:-1000000}"
DURATION="${DURATION:-10}"
LONG_SECONDS="${LONG_SECONDS:-90}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt
export RUST_BACKTRACE=0

cargo build --release -p porter -p porter-bench >&2
BENCH="$ROOT/target/release/porter-bench"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA="$(mktemp -d /tmp/porter-bench-latency.XXXXXX)"
PORTER_PID=""
stop_porter() {
    if [[ -n $PORTER_PID ]]; then
        kill "$PORTER_PID" 2>/dev/null || true
        wait "$PORTER_PID" 2>/dev/null || true
    fi
    PORTER_PID=""
}
trap 'stop_porter; rm -rf "$DATA"' EXIT
# start_porter CONFIG: a fresh broker on free ports, with CONFIG (a TOML file, or "").
start_porter() {
    stop_porter
    rm -rf "$DATA/data"
    KAFKA_PORT="$(free_port)" AMQP_PORT="$(free_port)"
    local config=()
    [[ -n $1 ]] && config=(--config "$1")
    "$ROOT/target/release/porter" serve "${config[@]}" --data-dir "$DATA/data" \
        --kafka-listen "127.0.0.1:$KAFKA_PORT" --amqp-listen "127.0.0.1:$AMQP_PORT" \
        --log info >>"$OUT/porter.log" 2>&1 &
    PORTER_PID=$!
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break; sleep 0.1; done
}
rate_of() { python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))[sys.argv[2]]))" "$@"; }

start_porter ""
kafka=(kafka --brokers "127.0.0.1:$KAFKA_PORT" --partitions 6 --acks all --linger-ms 0
    --record-bytes 100 --broker-pid "$PORTER_PID" --quiet --max-seconds 120)
"$BENCH" "${kafka[@]}" --producers "$PRODUCERS" --records "$RECORDS" --label kafka-peak \
    --json "$OUT/kafka-peak.json" >"$OUT/kafka-peak.txt" 2>&1
KAFKA_HALF=$(($(rate_of "$OUT/kafka-peak.json" produce_records_per_sec) / 2))
"$BENCH" "${kafka[@]}" --producers "$PRODUCERS" --rate "$KAFKA_HALF" --duration "$DURATION" \
    --label kafka-half --json "$OUT/kafka-half.json" >"$OUT/kafka-half.txt" 2>&1

amqp=(amqp --url "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F" --record-bytes 100 --inflight 1000
    --publisher awaited --broker-pid "$PORTER_PID" --quiet --max-seconds 120)
"$BENCH" "${amqp[@]}" --records 200000 --label amqp-peak --json "$OUT/amqp-peak.json" \
    >"$OUT/amqp-peak.txt" 2>&1
AMQP_HALF=$(($(rate_of "$OUT/amqp-peak.json" consume_records_per_sec) / 2))
"$BENCH" "${amqp[@]}" --rate "$AMQP_HALF" --duration "$DURATION" --label amqp-half \
    --json "$OUT/amqp-half.json" >"$OUT/amqp-half.txt" 2>&1

cat >"$DATA/maintenance.toml" <<'EOF'
[storage]
segment_bytes = 4194304
retention_ms = 15000
retention_check_interval_ms = 1000
EOF
start_porter "$DATA/maintenance.toml"
"$BENCH" kafka --brokers "127.0.0.1:$KAFKA_PORT" --partitions 6 --acks all --linger-ms 0 \
    --record-bytes 100 --broker-pid "$PORTER_PID" --quiet --max-seconds $((LONG_SECONDS + 60)) \
    --producers "$PRODUCERS" --rate $((KAFKA_HALF / 2)) --duration "$LONG_SECONDS" \
    --label kafka-long --json "$OUT/kafka-long.json" >"$OUT/kafka-long.txt" 2>&1
DELETED=$(grep -c "retention deleting segments" "$OUT/porter.log" || true)

python3 - "$OUT" "$DELETED" <<'PY' | tee "$OUT/summary.md"
import json, sys
out = sys.argv[1]
def row(name, what):
    r = json.load(open(f"{out}/{name}.json"))
    e = r["end_to_end"]
    # Open loop: the asked rate; closed loop: what was produced (Kafka) or delivered (AMQP).
    rate = r["rate"] or (r["produce_records_per_sec"] if name.startswith("kafka") else r["consume_records_per_sec"])
    print(f"| {what} | {rate:,.0f} | {e['p50_us']/1e3:.2f} | {e['p99_us']/1e3:.2f} | {e['p999_us']/1e3:.2f} "
          f"| {e['max_us']/1e3:.1f} | {r['broker_cpu_seconds_per_million'] or 0:.2f} |")
print("| run | msg/s | p50 ms | p99 ms | p99.9 ms | max ms | broker CPU-s / M |")
print("|---|---:|---:|---:|---:|---:|---:|")
row("kafka-peak", "Kafka closed loop (peak), linger 0")
row("kafka-half", "Kafka open loop at half the peak, linger 0")
row("amqp-peak", "AMQP durable closed loop (peak), awaited publishes")
row("amqp-half", "AMQP durable open loop at half the peak")
row("kafka-long", "Kafka open loop, quarter peak, maintenance running")
print(f"\nRetention passes that deleted segments during the long run: {sys.argv[2]}")
PY
