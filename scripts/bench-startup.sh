#!/usr/bin/env bash
# Startup benchmarks of `porter serve` (release build); figures go to BENCHMARKS.md.
#
#   (a) start to listening on an empty data directory: time from spawn until the Kafka port
#       accepts a TCP connection, and the `startup_ms` the server logs; median of 5
#   (b) idle RSS: VmRSS from /proc/PID/status after 2 s idle (median of the same 5 starts)
#   (c) recovery with a large log (BENCH_LOG_GB GiB in one partition, default 10): clean start
#       and starts after kill -9, each the median of 3
#
# The large log is made by starting porter once, creating topic `big` with one kcat produce,
# stopping it with SIGTERM, then appending through `Log::append` with the `fill_log` example
# straight into <data>/logs/big/0 (flush = never, 1 GiB segments, ~1 MiB batches of 1 KiB
# records). It is BENCH_LOG_GB GiB less 64 MiB, so the active segment is almost full: the worst
# case for a crash-recovery tail scan. Crash cases:
#   crash-idle   kill -9 of a broker that wrote nothing since it started: indexes are intact and
#                recovery CRC-checks only the last index interval of the active segment
#   crash-tail   as after a kill -9 of a broker that filled the active segment since it started:
#                the active segment's index files are emptied (their entries were only in memory),
#                so recovery CRC-checks the whole active segment
# With BENCH_DROP_CACHES=1 (root), the crash-tail and clean cases are also run with the page cache
# dropped before each start (as after a reboot).
#
# Knobs: BENCH_LOG_GB (default 10; 0 skips (c)), BENCH_PORT (default: a free port), BENCH_DIR (default
# target/bench-startup; must be on the real disk), BENCH_DROP_CACHES (default 0).
# Needs: kcat, python3. The data directory is deleted at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LOG_GB="${BENCH_LOG_GB:-10}"
# A port nobody listens on now (others' tests may hold fixed ones).
PORT="${BENCH_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
WORK="${BENCH_DIR:-$ROOT/target/bench-startup}"
DROP_CACHES="${BENCH_DROP_CACHES:-0}"
BIN="$ROOT/target/release/porter"
FILL="$ROOT/target/release/examples/fill_log"
PORTER_PID=""

for tool in kcat python3; do
    command -v "$tool" >/dev/null || { echo "bench-startup: $tool is required" >&2; exit 1; }
done

cleanup() {
    if [[ -n "$PORTER_PID" ]] && kill -0 "$PORTER_PID" 2>/dev/null; then
        kill -KILL "$PORTER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> building (release)"
cargo build --release -p porter
cargo build --release -p porter-storage --example fill_log

rm -rf "$WORK"
mkdir -p "$WORK"

# start_porter DATA LOG: spawns porter, waits until the port accepts, sets PORTER_PID and
# LISTEN_MS (spawn to accepting, from a client's view) and STARTUP_MS (what porter logged).
start_porter() {
    local data=$1 log=$2 out
    out=$(python3 - "$BIN" "$data" "$PORT" "$log" <<'EOF'
import socket, subprocess, sys, time
bin_, data, port, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(log, "wb") as err:
    started = time.monotonic()
    proc = subprocess.Popen(
        [bin_, "serve", "--data-dir", data, "--kafka-listen", f"127.0.0.1:{port}",
         "--amqp-listen", f"127.0.0.1:{port + 1}",
         "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
deadline = started + 120
try:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    proc.kill()
    sys.exit(f"something else already listens on port {port}")
except OSError:
    pass
while True:
    if proc.poll() is not None:
        sys.exit(f"porter exited with {proc.returncode}; see {log}")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            proc.kill()
            sys.exit("porter did not listen within 120 s")
        time.sleep(0.0005)
print(proc.pid, round((time.monotonic() - started) * 1000, 1))
EOF
)
    PORTER_PID=${out%% *}
    LISTEN_MS=${out##* }
    # The "listening" line is written just before accept starts; give it a moment to land.
    STARTUP_MS=""
    for _ in $(seq 50); do
        STARTUP_MS=$(grep -o '"startup_ms":[0-9]*' "$log" | head -1 | cut -d: -f2 || true)
        [[ -n "$STARTUP_MS" ]] && break
        sleep 0.02
    done
}

# stop_porter SIGNAL: TERM waits for the graceful stop (which writes .clean-shutdown).
stop_porter() {
    kill "-$1" "$PORTER_PID"
    while kill -0 "$PORTER_PID" 2>/dev/null; do sleep 0.02; done
    PORTER_PID=""
}

rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

drop_caches() {
    sync
    echo 3 > /proc/sys/vm/drop_caches
}

# measure NAME COUNT SETUP STOP: COUNT starts, each preceded by the shell function SETUP, each
# stopped with signal STOP; prints and records the medians.
declare -a SUMMARY=()
measure() {
    local name=$1 count=$2 setup=$3 stop=$4 data=$5
    local listen=() logged=() rss=()
    for i in $(seq "$count"); do
        "$setup" "$data"
        start_porter "$data" "$WORK/$name-$i.log"
        listen+=("$LISTEN_MS")
        logged+=("${STARTUP_MS:-nan}")
        if [[ $name == empty ]]; then
            sleep 2
            rss+=("$(rss_kb "$PORTER_PID")")
        fi
        stop_porter "$stop"
    done
    local line
    line=$(printf '%-22s listening %8s ms (runs: %s)   startup_ms %6s (runs: %s)' \
        "$name" "$(median "${listen[@]}")" "${listen[*]}" \
        "$(median "${logged[@]}")" "${logged[*]}")
    if [[ ${#rss[@]} -gt 0 ]]; then
        line+=$(printf '   idle RSS %s KiB (runs: %s)' "$(median "${rss[@]}")" "${rss[*]}")
    fi
    echo "$line"
    SUMMARY+=("$line")
}

nothing() { :; }
# After SIGKILL there is no marker: the next start recovers.
crash_idle() { rm -f "$1/.clean-shutdown"; }
crash_tail() {
    rm -f "$1/.clean-shutdown"
    local active
    active=$(find "$1/logs/big/0" -name '*.log' | sort | tail -1)
    : > "${active%.log}.index"
    : > "${active%.log}.timeindex"
}
crash_tail_cold() { crash_tail "$1"; drop_caches; }
clean_cold() { drop_caches; }

echo "==> (a, b) empty data directory: start to listening, idle RSS"
measure empty 5 nothing TERM "$WORK/empty"

if [[ "$LOG_GB" != 0 ]]; then
    DATA="$WORK/big"
    BYTES=$((LOG_GB * 1024 * 1024 * 1024 - 64 * 1024 * 1024))
    echo "==> (c) creating topic big, then filling it with $BYTES bytes"
    start_porter "$DATA" "$WORK/create.log"
    echo x | kcat -b "127.0.0.1:$PORT" -t big -P
    stop_porter TERM
    [[ -d "$DATA/logs/big/0" ]] || { echo "no $DATA/logs/big/0 after producing" >&2; exit 1; }
    "$FILL" "$DATA/logs/big/0" "$BYTES"
    touch "$DATA/.clean-shutdown"
    du -sh "$DATA/logs/big/0"
    ls "$DATA/logs/big/0"

    measure clean 3 nothing TERM "$DATA"
    # Leave the data dir as after a kill -9 for each crash start.
    measure crash-idle 3 crash_idle KILL "$DATA"
    measure crash-tail 3 crash_tail KILL "$DATA"
    if [[ "$DROP_CACHES" == 1 ]]; then
        measure crash-tail-cold 3 crash_tail_cold KILL "$DATA"
        # One graceful stop writes the marker again for the clean cold starts.
        start_porter "$DATA" "$WORK/reclean.log"
        stop_porter TERM
        measure clean-cold 3 clean_cold TERM "$DATA"
    fi
    echo "==> recovery log lines of the last crash-tail start:"
    grep -h -E 'truncat|rebuild|recover' "$WORK"/crash-tail-3.log | cut -c1-300 || true
fi

echo
echo "==> summary (medians; times from spawn)"
printf '%s\n' "${SUMMARY[@]}"
