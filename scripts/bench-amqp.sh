#!/usr/bin/env bash
# Porter vs RabbitMQ on the durable work queue (issue 5 §4), same client code (porter-bench amqp,
# lapin) and the same durability on both: durable queue, persistent messages, publisher confirms,
# manual acks. One command:
#
#   ./scripts/bench-amqp.sh
#
# Builds release porter and porter-bench, starts Porter (temp data dir, loopback ports) and a
# private RabbitMQ (scripts/peers/rabbitmq.sh), then, brokers alternating, RUNS times each:
#   1. work queue, closed loop: {100 B, 4 KiB} x {1p/1c, 4p/4c};
#   2. work queue, open-loop sweep (1p/1c, --rates): per message size, RATES msgs/s (default
#      0.25, 0.5, 1 and 2 times RabbitMQ's median 1p/1c closed-loop throughput for that size;
#      RATE=R for one point), OPEN_SECONDS each, for latency against throughput at equal load;
#   3. fan-out (100 B): one publisher, a fanout exchange, N = 1, 10, 100 durable queues each with a
#      consumer; FANOUT_DELIVERIES / N messages, so every N moves about as many deliveries;
#   4. peak shaving (100 B): a PEAK_BURST_SECONDS burst at 10x PEAK_CONSUME_RATE into a
#      PEAK_MAX_LENGTH reject-publish queue drained at PEAK_CONSUME_RATE;
#   5. chat (100 B): CHAT_CONNECTIONS clients (2000) in 50 rooms with exclusive inboxes, paced at
#      each of CHAT_RATES ("100 500") msgs/s for 10 s, half to a user, half to a room.
# Prints markdown tables of medians (Porter / RabbitMQ ratio; peak: accepted, refused, depth,
# drain, RSS), writes them to $OUT/summary.md, JSON per run in $OUT, and SVG charts
# (`porter-bench chart`) in $OUT/charts. Stops both brokers on exit.
# Knobs: RUNS (3), RECORDS (200000 for 100 B; a quarter of it for 4 KiB), MAX_SECONDS (60), RATE,
# RATES (comma-separated; overrides the default sweep), OPEN_SECONDS (10), FANOUT_DELIVERIES
# (200000), FANOUT_SUBSCRIBERS ("1 10 100"), PEAK_CONSUME_RATE (1000), PEAK_BURST_SECONDS (5),
# PEAK_MAX_LENGTH (10000), CHAT_CONNECTIONS (2000), CHAT_RATES ("100 500"), BENCH_ARGS (extra porter-bench amqp flags for every run, e.g.
# "--prefetch 1000 --ack-every 10"), RABBITMQ_PORT (5679: a node of its own, not the tests'
# default 5673), OUT (target/bench/amqp).
# If Porter dies during a run, the script stops there and prints the tail of its log (kept in
# $OUT/porter.log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
RECORDS="${RECORDS:-200000}"
MAX_SECONDS="${MAX_SECONDS:-60}"
OPEN_SECONDS="${OPEN_SECONDS:-10}"
FANOUT_DELIVERIES="${FANOUT_DELIVERIES:-200000}"
FANOUT_SUBSCRIBERS="${FANOUT_SUBSCRIBERS:-1 10 100}"
CHAT_CONNECTIONS="${CHAT_CONNECTIONS:-2000}"
CHAT_RATES="${CHAT_RATES:-100 500}"
PEAK_CONSUME_RATE="${PEAK_CONSUME_RATE:-1000}"
PEAK_BURST_SECONDS="${PEAK_BURST_SECONDS:-5}"
PEAK_MAX_LENGTH="${PEAK_MAX_LENGTH:-10000}"
OUT="${OUT:-$ROOT/target/bench/amqp}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5679}"
read -r -a EXTRA_ARGS <<<"${BENCH_ARGS:-}"
export RUST_BACKTRACE=0
export RABBITMQ_PORT
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/porter.log "$OUT"/charts/*.svg

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

# bench BROKER NAME ARGS...: one porter-bench amqp command against BROKER, output in $OUT/NAME.txt,
# JSON in $OUT/NAME.json (a sweep writes NAME-rateR.json per rate). Stops the script if Porter died.
bench() {
    local broker=$1 name=$2
    shift 2
    local url=$PORTER_URL pid=$PORTER_PID
    if [[ $broker == rabbitmq ]]; then url=$RABBIT_URL; pid=$RABBIT_PID; fi
    "$BENCH" amqp --url "$url" "$@" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} --max-seconds "$MAX_SECONDS" \
        --broker-pid "$pid" --label "$broker" --quiet \
        --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || echo "run $name failed: $(tail -n 3 "$OUT/$name.txt")" >&2
    grep -E '^(==|consumed|end-to-end|peak|errors)' "$OUT/$name.txt" >&2 || true
    if ! kill -0 "$PORTER_PID" 2>/dev/null; then
        echo "porter (pid $PORTER_PID) died during $name; last lines of its log:" >&2
        tail -n 40 "$OUT/porter.log" >&2
        exit 1
    fi
}

run() { # broker size producers consumers run: the closed-loop work queue
    local broker=$1 size=$2 p=$3 c=$4 n=$5 records=$RECORDS
    if [[ $size -gt 1000 ]]; then records=$((RECORDS / 4)); fi
    bench "$broker" "$broker-${size}B-${p}p${c}c-$n" --record-bytes "$size" --producers "$p" \
        --consumers "$c" --records "$records"
}

for size in 100 4096; do
    for pc in "1 1" "4 4"; do
        for n in $(seq "$RUNS"); do
            run porter "$size" $pc "$n"
            run rabbitmq "$size" $pc "$n"
        done
    done
done

# Open-loop sweep at equal load: multiples of RabbitMQ's median closed-loop 1p/1c rate unless RATES
# (or RATE) is set; one porter-bench command per broker and run, OPEN_SECONDS at each rate.
for size in 100 4096; do
    rates="${RATES:-${RATE:-$(python3 - "$OUT" "$size" <<'EOF'
import json, glob, statistics, sys
out, size = sys.argv[1], sys.argv[2]
runs = [json.load(open(f)) for f in glob.glob(f"{out}/rabbitmq-{size}B-1p1c-[0-9]*.json")]
rates = [r["consume_records_per_sec"] for r in runs if r["consumed"]]
base = statistics.median(rates) if rates else 4000
print(",".join(str(max(100, int(base * f))) for f in (0.25, 0.5, 1, 2)))
EOF
)}}"
    for n in $(seq "$RUNS"); do
        for broker in porter rabbitmq; do
            bench "$broker" "$broker-${size}B-1p1c-open-$n" --record-bytes "$size" \
                --rates "$rates" --duration "$OPEN_SECONDS"
        done
    done
done

# Fan-out: about FANOUT_DELIVERIES deliveries whatever the number of subscribers.
for subscribers in $FANOUT_SUBSCRIBERS; do
    for n in $(seq "$RUNS"); do
        for broker in porter rabbitmq; do
            bench "$broker" "$broker-100B-fanout$subscribers-$n" --scenario fanout \
                --subscribers "$subscribers" --records $((FANOUT_DELIVERIES / subscribers))
        done
    done
done

# Peak shaving: a burst at 10x what the consumers take, into a bounded reject-publish queue.
for n in $(seq "$RUNS"); do
    for broker in porter rabbitmq; do
        bench "$broker" "$broker-100B-peak-$n" --scenario peak --consume-rate "$PEAK_CONSUME_RATE" \
            --burst-seconds "$PEAK_BURST_SECONDS" --max-length "$PEAK_MAX_LENGTH"
    done
done

# Chat: CHAT_CONNECTIONS clients in 50 rooms, paced at each of CHAT_RATES msgs/s for 10 s.
for rate in $CHAT_RATES; do
    for n in $(seq "$RUNS"); do
        for broker in porter rabbitmq; do
            bench "$broker" "$broker-100B-chat${CHAT_CONNECTIONS}c-rate$rate-$n" --scenario chat \
                --connections "$CHAT_CONNECTIONS" --rooms 50 --rate "$rate" --records $((rate * 10))
        done
    done
done

python3 - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
groups = {}
for f in glob.glob(f"{out}/*.json"):
    name = os.path.basename(f)[:-5]
    broker, key = name.split("-", 1)
    # The run number goes; a sweep's "-rateR" stays: "100B-1p1c-open-2-rate500" -> "100B-1p1c-open-rate500".
    key = re.sub(r"-\d+(-rate\d+)?$", r"\1", key)
    groups.setdefault((key, broker), []).append(json.load(open(f)))
def med(runs, field):
    return statistics.median(r[field] for r in runs) if runs else float("nan")
def lat(runs, q):
    return statistics.median(r["end_to_end"][q] for r in runs) / 1000 if runs else float("nan")
def cpu(runs):
    return statistics.median(x["broker_cpu_seconds_per_million"] or 0 for x in runs) if runs else float("nan")
def ratio(a, b):
    return f"{a / b:.1f}x" if b else "-"
def order(k):
    rate = re.search(r"rate(\d+)$", k)
    fan = re.search(r"fanout(\d+)$", k)
    return ("fanout" in k, "rate" in k, k.split("-")[0] if rate or fan else k,
            int(fan.group(1)) if fan else 0, int(rate.group(1)) if rate else 0)
print(open(f"{out}/versions.txt").read().strip() + f"; medians of {max(len(v) for v in groups.values())} runs\n")
print("msg/s is consumed messages per second; for fan-out, deliveries per second (N per message).\n")
print("| scenario | Porter msg/s | RabbitMQ msg/s | ratio | Porter p50 / p99 ms | RabbitMQ p50 / p99 ms | Porter CPU s/M | RabbitMQ CPU s/M | errors P / R |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted({k for k, _ in groups if "peak" not in k}, key=order):
    p, r = groups.get((key, "porter"), []), groups.get((key, "rabbitmq"), [])
    pt, rt = med(p, "consume_records_per_sec"), med(r, "consume_records_per_sec")
    print(f"| {key} | {pt:,.0f} | {rt:,.0f} | {ratio(pt, rt)} | {lat(p, 'p50_us'):.1f} / {lat(p, 'p99_us'):.1f} "
          f"| {lat(r, 'p50_us'):.1f} / {lat(r, 'p99_us'):.1f} | {cpu(p):.1f} | {cpu(r):.1f} "
          f"| {sum(x['errors'] for x in p)} / {sum(x['errors'] for x in r)} |")
peaks = [(b, runs) for (k, b), runs in sorted(groups.items()) if "peak" in k]
if peaks:
    first = peaks[0][1][0]
    print(f"\nPeak shaving: {first['scenario']} ({first['peak']['burst_rate']} msgs/s for "
          f"{first['peak']['burst_seconds']} s); medians, drain = burst end to last accepted message consumed.\n")
    print("| broker | published | confirmed | nacked | max depth | drain s | broker RSS peak MiB | consumed | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for broker, runs in peaks:
        pk = lambda field: statistics.median((r["peak"][field] or 0) for r in runs)
        drained = [r["peak"]["drain_seconds"] for r in runs if r["peak"]["drain_seconds"] is not None]
        drain = f"{statistics.median(drained):.1f}" if len(drained) == len(runs) else f"not drained in {len(runs) - len(drained)} runs"
        print(f"| {broker} | {pk('published'):,.0f} | {pk('confirmed'):,.0f} | {pk('nacked'):,.0f} "
              f"| {pk('max_queue_depth'):,.0f} | {drain} | {pk('broker_rss_peak_kib') / 1024:.0f} "
              f"| {med(runs, 'consumed'):,.0f} | {sum(r['errors'] for r in runs)} |")
EOF

"$BENCH" chart "$OUT" --out "$OUT/charts" | sed "s|^$ROOT/||" | tee "$OUT/charts.txt" >&2
