#!/usr/bin/env bash
# Porter and its MQTT peers measured with one client code path (porter-bench mqtt, rumqttc): fan-out
# and chat against Porter (scripts/peers/porter.sh), Mosquitto and NATS. One command:
#
#   ./scripts/bench-mqtt.sh
#
# Builds release porter-bench, then for each run starts a fresh private broker
# (scripts/peers/mosquitto.sh, scripts/peers/nats.sh: wiped data, so every run starts from an
# empty broker and its peak RSS is that run's), runs one scenario, and stops the broker again:
#   - fan-out: 1 publisher -> N = 1, 10, 100 subscribers of one topic, 100 B, QoS 1, persistent
#     sessions, closed loop (at most INFLIGHT messages per subscriber undelivered);
#   - chat: CONNECTIONS clients (2000) in ROOMS rooms (50, so 40 per room), each subscribed to its
#     room and its inbox (QoS 1, persistent sessions), at each of CHAT_RATES msgs/s of 100 B (chat
#     lines are small), half to a random inbox and half to a random room: ~20.5 deliveries per
#     message. 100 msgs/s (~2k deliveries/s) is the rate both brokers sustain on this 2-core
#     machine (NATS keeps a JetStream consumer per QoS 1 subscription, 4000 here, and falls
#     behind at 250/s), so there the latency columns compare the brokers at equal load; 500 msgs/s
#     (~10k deliveries/s) shows where one of them no longer keeps up.
# The driver runs with --keep-sessions: the broker and its data are wiped after each run anyway,
# and NATS takes longer to delete 4000 JetStream consumers than the run itself.
# Brokers alternate, RUNS times each. JSON (and the driver's text output) per run in
# target/bench/mqtt/; prints a markdown table of medians and writes it to $OUT/summary.md.
# Only brokers this script started are stopped; a broker already answering on a port aborts it.
# The machine is shared: before each run the script waits (up to QUIET_WAIT_S, default 30 s) for a
# second in which the rest of the machine used under QUIET_BUSY (0.3) CPU, and every result
# records how busy the whole machine was during the load, so a run disturbed by another tenant
# shows in the "rest of machine" column instead of passing for a slow broker.
# Knobs: RUNS (3), SUBSCRIBERS ("1 10 100"), FANOUT_DELIVERIES (200000 deliveries per fan-out
# run, split over the subscribers), CONNECTIONS (2000), ROOMS (50), CHAT_RATES ("100 500"),
# CHAT_SECONDS (10), RECORD_BYTES (100), QOS (1), INFLIGHT (256), MAX_SECONDS (30),
# BROKERS ("mosquitto nats"), BENCH_ARGS (extra porter-bench mqtt flags for every run),
# MOSQUITTO_PORT (1884), NATS_PORT (4223), NATS_MQTT_PORT (1885), OUT (target/bench/mqtt).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
SUBSCRIBERS="${SUBSCRIBERS:-1 10 100}"
FANOUT_DELIVERIES="${FANOUT_DELIVERIES:-200000}"
CONNECTIONS="${CONNECTIONS:-2000}"
ROOMS="${ROOMS:-50}"
CHAT_RATES="${CHAT_RATES:-100 500}"
CHAT_SECONDS="${CHAT_SECONDS:-10}"
RECORD_BYTES="${RECORD_BYTES:-100}"
QOS="${QOS:-1}"
INFLIGHT="${INFLIGHT:-256}"
MAX_SECONDS="${MAX_SECONDS:-30}"
QUIET_WAIT_S="${QUIET_WAIT_S:-30}"
QUIET_BUSY="${QUIET_BUSY:-0.3}"
BROKERS="${BROKERS:-porter mosquitto nats}"
OUT="${OUT:-$ROOT/target/bench/mqtt}"
export MOSQUITTO_PORT="${MOSQUITTO_PORT:-1884}"
export NATS_PORT="${NATS_PORT:-4223}"
export NATS_MQTT_PORT="${NATS_MQTT_PORT:-1885}"
export PORTER_MQTT_PORT="${PORTER_MQTT_PORT:-1886}"
read -r -a EXTRA_ARGS <<<"${BENCH_ARGS:-}"
export RUST_BACKTRACE=0
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/summary.md

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release -p porter-bench >&2
BENCH="$CARGO_TARGET_DIR/release/porter-bench"

peer() { "$ROOT/scripts/peers/$1.sh" "${@:2}"; }
port_of() {
    case $1 in
    mosquitto) echo "$MOSQUITTO_PORT" ;;
    porter) echo "$PORTER_MQTT_PORT" ;;
    *) echo "$NATS_MQTT_PORT" ;;
    esac
}

for broker in $BROKERS; do
    peer "$broker" install >&2
    if peer "$broker" status >/dev/null 2>&1 ||
        (echo >"/dev/tcp/127.0.0.1/$(port_of "$broker")") 2>/dev/null; then
        echo "something already listens on $broker's port $(port_of "$broker") (not ours): set its port knob" >&2
        exit 1
    fi
done
RUNNING=""
cleanup() {
    # Only a broker this script started (and has not stopped yet).
    if [[ -n $RUNNING ]]; then peer "$RUNNING" stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

RUMQTTC_VERSION="$(grep -A1 '^name = "rumqttc"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
{
    echo "porter $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates scripts || echo '+dirty'), Mosquitto $(dpkg-query -W -f='${Version}' mosquitto) (Debian), NATS $(/usr/sbin/nats-server --version | sed 's/^nats-server: //') (Debian $(dpkg-query -W -f='${Version}' nats-server)), rumqttc $RUMQTTC_VERSION"
    echo "$(nproc) vCPU, client and broker share the machine; $(uname -r)"
} | tee "$OUT/versions.txt" >&2

wait_quiet() { # until one second in which the machine is busy less than QUIET_BUSY CPU
    python3 - "$QUIET_WAIT_S" "$QUIET_BUSY" <<'PY' >&2
import sys, time
wait, limit = float(sys.argv[1]), float(sys.argv[2])
def busy():
    f = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
    return (sum(f) - f[3] - f[4]) / 100
start = time.time()
while True:
    a = busy(); time.sleep(1); b = busy() - a
    if b < limit:
        break
    if time.time() - start > wait:
        print(f"machine still busy ({b:.2f} CPU) after {wait:.0f}s; running anyway")
        break
PY
}

run() { # broker name n -- porter-bench mqtt flags
    local broker=$1 name=$2 n=$3
    shift 4
    peer "$broker" start >/dev/null 2>"$OUT/$broker-$name-$n.peer.txt"
    RUNNING=$broker
    local pid
    pid="$(peer "$broker" pid)"
    wait_quiet
    "$BENCH" mqtt --port "$(port_of "$broker")" --qos "$QOS" --record-bytes "$RECORD_BYTES" \
        --inflight "$INFLIGHT" --max-seconds "$MAX_SECONDS" --broker-pid "$pid" --label "$broker" \
        --keep-sessions \
        "$@" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} \
        --json "$OUT/$broker-$name-$n.json" >"$OUT/$broker-$name-$n.txt" 2>&1 ||
        echo "run $broker-$name-$n failed: $(tail -n 3 "$OUT/$broker-$name-$n.txt")" >&2
    grep -E '^(==|consumed|end-to-end|deliveries|driver|errors)' "$OUT/$broker-$name-$n.txt" >&2 || true
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$broker (pid $pid) died during $name-$n" >&2
    fi
    peer "$broker" stop >/dev/null 2>&1
    RUNNING=""
}

for subs in $SUBSCRIBERS; do
    records=$((FANOUT_DELIVERIES / subs))
    for n in $(seq "$RUNS"); do
        for broker in $BROKERS; do
            run "$broker" "fanout$subs" "$n" -- --scenario fanout --subscribers "$subs" --records "$records"
        done
    done
done
for rate in $CHAT_RATES; do
    for n in $(seq "$RUNS"); do
        for broker in $BROKERS; do
            run "$broker" "chat$rate" "$n" -- --scenario chat --connections "$CONNECTIONS" \
                --rooms "$ROOMS" --rate "$rate" --records $((rate * CHAT_SECONDS))
        done
    done
done

python3 - "$OUT" "$BROKERS" <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, re, statistics, sys
out, brokers = sys.argv[1], sys.argv[2].split()
groups = {}
for f in glob.glob(f"{out}/*.json"):
    broker, key, _ = re.match(r"(\w+)-(\w+)-(\d+)$", os.path.basename(f)[:-5]).groups()
    groups.setdefault(key, {}).setdefault(broker, []).append(json.load(open(f)))
def med(runs, get):
    values = [get(r) for r in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")
names = {"porter": "Porter", "mosquitto": "Mosquitto", "nats": "NATS"}
order = lambda k: (k.startswith("chat"), int(re.sub(r"\D", "", k) or 0))
n_runs = max(len(r) for g in groups.values() for r in g.values())
print(open(f"{out}/versions.txt").read().strip() + f"; medians of {n_runs} runs\n")
print("| scenario | broker | deliveries/s | publishes/s | p50 ms | p99 ms | p99.9 ms | max ms "
      "| broker CPU s / M deliveries | broker peak RSS MiB | broker CPU % | driver CPU % "
      "| rest of machine CPU % | lost / errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted(groups, key=order):
    scenario = next(iter(groups[key].values()))[0]["scenario"]
    for broker in brokers:
        runs = groups[key].get(broker, [])
        if not runs:
            continue
        lat = lambda q: med(runs, lambda r: r["end_to_end"][q]) / 1000
        rss = med(runs, lambda r: (r.get("broker") or {}).get("rss_peak_kib")) / 1024
        pct = lambda get: med(runs, lambda r: 100 * get(r) / max(r["consume_seconds"], 1e-9))
        bro = pct(lambda r: (r.get("broker") or {}).get("cpu_seconds", 0))
        drv = pct(lambda r: r["driver_cpu_seconds"])
        rest = pct(lambda r: max(0, r.get("machine_busy_cpu_seconds", 0) - r["driver_cpu_seconds"]
                   - (r.get("broker") or {}).get("cpu_seconds", 0)))
        print(f"| {scenario} | {names.get(broker, broker)} "
              f"| {med(runs, lambda r: r['consume_records_per_sec']):,.0f} "
              f"| {med(runs, lambda r: r['produce_records_per_sec']):,.0f} "
              f"| {lat('p50_us'):.2f} | {lat('p99_us'):.2f} | {lat('p999_us'):.2f} | {lat('max_us'):.1f} "
              f"| {med(runs, lambda r: r['broker_cpu_seconds_per_million']):.2f} | {rss:.0f} | {bro:.0f} | {drv:.0f} | {rest:.0f} "
              f"| {sum(r.get('lost', 0) for r in runs)} / {sum(r['errors'] for r in runs)} |")
EOF
