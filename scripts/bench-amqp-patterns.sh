#!/usr/bin/env bash
# The durable work queue (100 B persistent messages, one durable queue, one consumer with
# prefetch 100 acking every delivery) with three publisher patterns, Porter against RabbitMQ,
# brokers alternating, RUNS times each (issue 14 §1):
#
#   ./scripts/bench-amqp-patterns.sh            # ~10 min
#   PEER=none ./scripts/bench-amqp-patterns.sh  # Porter only
#   SYSCALLS=1 ./scripts/bench-amqp-patterns.sh # also count Porter's syscalls per message (strace -c)
#
# Patterns:
#   pipelined  porter-bench amqp, many publishes queued for lapin to coalesce (--inflight 1000)
#   awaited    porter-bench amqp --publisher awaited: each basic_publish awaited, up to 1,000
#              confirms outstanding — what most lapin applications do
#   pika       scripts/bench_pika.py: BlockingConnection, confirms, one message in flight
# Closed loop, then open loop at half of Porter's awaited closed-loop median (p99 at equal load).
# Prints a markdown table of medians (msg/s, broker CPU-s per million, p50/p99 ms, client CPU
# where the driver reports it) to $OUT/summary.md.
# Knobs: RUNS (3), RECORDS (100000; pika: RECORDS/10), PEER (rabbitmq|none), OUT
# (target/bench/amqp-patterns), SYSCALLS (0), RABBITMQ_PORT (5679), OPEN_SECONDS (10).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
RECORDS="${RECORDS:-100000}"
PEER="${PEER:-rabbitmq}"
SYSCALLS="${SYSCALLS:-0}"
OPEN_SECONDS="${OPEN_SECONDS:-10}"
OUT="${OUT:-$ROOT/target/bench/amqp-patterns}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5679}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export RABBITMQ_PORT RUST_BACKTRACE=0
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt

cargo build --release -p porter -p porter-bench >&2
BENCH="$ROOT/target/release/porter-bench"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DATA="$(mktemp -d /tmp/porter-bench-patterns.XXXXXX)"
AMQP_PORT="$(free_port)"
"$ROOT/target/release/porter" serve --data-dir "$DATA/data" --kafka-listen off \
    --amqp-listen "127.0.0.1:$AMQP_PORT" --log warn >"$OUT/porter.log" 2>&1 &
PORTER_PID=$!
RABBIT_STARTED=0
cleanup() {
    kill "$PORTER_PID" 2>/dev/null || true
    wait "$PORTER_PID" 2>/dev/null || true
    if [[ $RABBIT_STARTED == 1 ]]; then "$ROOT/scripts/peers/rabbitmq.sh" stop >/dev/null 2>&1 || true; fi
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null && break; sleep 0.1; done
BROKERS=(porter)
if [[ $PEER == rabbitmq ]]; then
    "$ROOT/scripts/peers/rabbitmq.sh" start >&2
    RABBIT_STARTED=1
    RABBIT_URL="$("$ROOT/scripts/peers/rabbitmq.sh" url)"
    RABBIT_PID="$(tr -dc '0-9' <"${RABBITMQ_PEER_DIR:-/tmp/porter-rabbitmq-peer-$RABBITMQ_PORT}/pid")"
    BROKERS+=(rabbitmq)
fi
PORTER_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F"

# one BROKER PATTERN RUN [RATE]: one run, its JSON in $OUT/BROKER-PATTERN[-rateR]-RUN.json.
one() {
    local broker=$1 pattern=$2 n=$3 rate=${4:-}
    local url=$PORTER_URL pid=$PORTER_PID name="$broker-$pattern${rate:+-rate$rate}-$n"
    if [[ $broker == rabbitmq ]]; then url=$RABBIT_URL; pid=$RABBIT_PID; fi
    local strace_pid=""
    if [[ $SYSCALLS == 1 && $broker == porter && -z $rate ]]; then
        strace -c -f -q -p "$pid" -o "$OUT/$name.strace" &
        strace_pid=$!
        sleep 0.5
    fi
    case $pattern in
    pika)
        "$PYTHON" "$ROOT/scripts/bench_pika.py" --url "$url" --records $((RECORDS / 10)) \
            --broker-pid "$pid" --label "$broker" >"$OUT/$name.json" 2>"$OUT/$name.txt" ;;
    *)
        local extra=(--inflight 1000)
        [[ $pattern == awaited ]] && extra+=(--publisher awaited)
        [[ -n $rate ]] && extra+=(--rate "$rate" --duration "$OPEN_SECONDS")
        "$BENCH" amqp --url "$url" --records "$RECORDS" "${extra[@]}" --max-seconds 120 \
            --broker-pid "$pid" --label "$broker" --quiet --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 ;;
    esac || echo "run $name failed: $(tail -n 3 "$OUT/$name.txt")" >&2
    if [[ -n $strace_pid ]]; then
        kill -INT "$strace_pid" 2>/dev/null || true
        wait "$strace_pid" 2>/dev/null || true
    fi
    echo "$name done" >&2
}

for n in $(seq "$RUNS"); do
    for pattern in pipelined awaited pika; do
        for broker in "${BROKERS[@]}"; do one "$broker" "$pattern" "$n"; done
    done
done
# Open loop at half of Porter's awaited closed-loop median.
HALF="$("$PYTHON" - "$OUT" <<'EOF'
import glob, json, statistics, sys
rates = [json.load(open(f))["consume_records_per_sec"] for f in glob.glob(f"{sys.argv[1]}/porter-awaited-[0-9]*.json")]
print(int(statistics.median(rates) / 2) if rates else 2000)
EOF
)"
for n in $(seq "$RUNS"); do
    for pattern in pipelined awaited; do
        for broker in "${BROKERS[@]}"; do one "$broker" "$pattern" "$n" "$HALF"; done
    done
done

"$PYTHON" - "$OUT" "$RECORDS" <<'EOF' | tee "$OUT/summary.md"
import glob, json, re, statistics, sys
out, records = sys.argv[1], int(sys.argv[2])
rows = {}
for f in sorted(glob.glob(f"{out}/*.json")):
    m = re.match(r"(\w+)-(\w+)(?:-rate(\d+))?-(\d+)\.json", f.rsplit("/", 1)[1])
    if not m:
        continue
    broker, pattern, rate, _ = m.groups()
    try:
        r = json.load(open(f))
    except ValueError:
        continue
    if "msgs_per_sec" in r:  # bench_pika.py
        row = (r["msgs_per_sec"], r.get("broker_cpu_s_per_million"), r["p50_ms"], r["p99_ms"], r["client_cpu_s"])
    else:
        e = r["end_to_end"]
        row = (r["consume_records_per_sec"], r["broker_cpu_seconds_per_million"], e["p50_us"] / 1e3, e["p99_us"] / 1e3, None)
    rows.setdefault((pattern, rate, broker), []).append(row)
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
def fmt(v, spec):
    return "—" if v is None else format(v, spec)
print("| pattern | load | broker | msg/s | broker CPU-s / M msgs | p50 ms | p99 ms | runs |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for (pattern, rate, broker), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2])):
    cols = [med([r[i] for r in runs]) for i in range(5)]
    load = f"open {rate}/s" if rate else "closed"
    print(f"| {pattern} | {load} | {broker} | {fmt(cols[0], ',.0f')} | {fmt(cols[1], '.1f')} | {fmt(cols[2], '.2f')} | {fmt(cols[3], '.1f')} | {len(runs)} |")
straces = sorted(glob.glob(f"{out}/*.strace"))
if straces:
    print("\nPorter's syscalls per message delivered (strace -c -f over the run; medians):\n")
    counts = {}
    for f in straces:
        pattern = f.rsplit("/", 1)[1].split("-")[1]
        n = records / 10 if pattern == "pika" else records
        for line in open(f):
            parts = line.split()
            if len(parts) >= 5 and parts[-1] not in ("syscall", "total") and parts[3].isdigit():
                counts.setdefault(pattern, {}).setdefault(parts[-1], []).append(int(parts[3]) / n)
    for pattern, calls in counts.items():
        top = sorted(((statistics.median(v), k) for k, v in calls.items()), reverse=True)[:8]
        total = sum(statistics.median(v) for v in calls.values())
        print(f"- {pattern}: {total:.2f} in all; " + ", ".join(f"{k} {v:.2f}" for v, k in top))
EOF
