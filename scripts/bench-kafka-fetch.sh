#!/usr/bin/env bash
# Kafka fetch cost (issue 14): consume throughput and the broker's CPU per million records with
# several consumers, and the broker's RSS while "slow readers" pipeline 50 MiB fetches they never
# read. One command:
#
#   ./scripts/bench-kafka-fetch.sh                 # builds release porter and porter-bench
#   PORTER=/path/to/porter ./scripts/bench-kafka-fetch.sh   # another broker build (before/after)
#
# Scenarios, each on a fresh broker (temp data dir, loopback ports):
#   consume   RECORDS (3000000) x 100 B records over 6 partitions, then CONSUMERS (4) read them
#             back; the consume phase's own broker CPU per million records is reported.
#   consume-raw  the same, read by raw Fetch clients that count records from batch headers
#             (porter-bench --raw-consumers): the broker's ceiling where librdkafka's
#             per-message path is the limit.
#   slow      SLOW_RECORDS (50000) x 1 KiB records (50 MB); SLOW_READERS (1) connections each
#             pipeline 40 Fetch requests (max 50 MiB) for all of it and never read, while 2
#             consumers read everything; broker VmRSS sampled every 20 ms.
#   slow-512  as slow, with the connection memory share raised to 512 MiB, so the share cannot
#             be what bounds the broker.
# JSON and text per run in $OUT (target/bench/kafka-fetch/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-2}"
RECORDS="${RECORDS:-3000000}"
CONSUMERS="${CONSUMERS:-4}"
SLOW_RECORDS="${SLOW_RECORDS:-50000}"
SLOW_READERS="${SLOW_READERS:-1}"
OUT="${OUT:-$ROOT/target/bench/kafka-fetch}"
mkdir -p "$OUT"
if [[ -z "${PORTER:-}" ]]; then
    cargo build --release -p porter -p porter-bench >&2
    PORTER="$ROOT/target/release/porter"
fi
BENCH="${BENCH:-$ROOT/target/release/porter-bench}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME CONFIG_TOML BENCH_ARGS...: a fresh broker for one scenario run.
run() {
    local name="$1" config="$2"
    shift 2
    local data port pid
    data="$(mktemp -d /tmp/porter-bench-fetch.XXXXXX)"
    port="$(free_port)"
    printf '%b' "$config" >"$data/porter.toml"
    "$PORTER" serve --config "$data/porter.toml" --data-dir "$data/data" \
        --kafka-listen "127.0.0.1:$port" --amqp-listen "127.0.0.1:$(free_port)" --log warn \
        >"$OUT/$name.porter.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    "$BENCH" kafka --brokers "127.0.0.1:$port" --partitions 6 --acks all --linger-ms 5 \
        --broker-pid "$pid" --label porter --quiet --max-seconds 120 --json "$OUT/$name.json" \
        "$@" >"$OUT/$name.txt" 2>&1 || echo "run $name failed: $(tail -n 3 "$OUT/$name.txt")" >&2
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
    echo "--- $name (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    grep -E '^(consumed|broker|slow|errors)' "$OUT/$name.txt" >&2 || true
}

for n in $(seq "$RUNS"); do
    run "consume-$n" "" --record-bytes 100 --records "$RECORDS" --producers 4 --consumers "$CONSUMERS"
    run "consume-raw-$n" "" --record-bytes 100 --records "$RECORDS" --producers 4 \
        --consumers "$CONSUMERS" --raw-consumers
    run "slow-$n" "" --record-bytes 1024 --records "$SLOW_RECORDS" --producers 2 --consumers 2 \
        --slow-readers "$SLOW_READERS"
    run "slow-512-$n" "[kafka]\nrequest_memory_bytes_max = 1073741824\nconnection_memory_bytes_max = 536870912\n" \
        --record-bytes 1024 --records "$SLOW_RECORDS" --producers 2 --consumers 2 \
        --slow-readers "$SLOW_READERS"
done
