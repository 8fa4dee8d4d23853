#!/usr/bin/env bash
# Porter itself as a "peer" of the MQTT benchmark (scripts/bench-mqtt.sh), started and stopped the
# same way as Mosquitto and NATS so all three are measured by one script:
#
#   scripts/peers/porter.sh install   # cargo build --release -p porter (cargo makes it a no-op when built)
#   scripts/peers/porter.sh start     # start on 127.0.0.1:$PORTER_MQTT_PORT (MQTT only), wait for it
#   scripts/peers/porter.sh status    # exit 0 and print the URL if it runs and accepts connections
#   scripts/peers/porter.sh stop      # SIGTERM (a clean stop), then SIGKILL
#   scripts/peers/porter.sh url       # print mqtt://127.0.0.1:$PORTER_MQTT_PORT
#   scripts/peers/porter.sh pid       # print the broker's pid (for porter-bench --broker-pid)
#
# The broker is private: every other listener off, data in $PORTER_PEER_DIR/data (default
# /tmp/porter-mqtt-peer-$PORTER_MQTT_PORT), wiped at each start unless PORTER_KEEP_DATA=1.
# Durability is Porter's default (flush = group): a QoS 1 PUBLISH is acknowledged after its
# message is fdatasync'ed in every session queue it reached (one fsync shared by concurrent
# writers); Mosquitto and NATS acknowledge before anything reaches the disk (see
# docs/bench-mqtt-results.md), so Porter does the most work per message here.
# Knobs: PORTER_MQTT_PORT (1886), PORTER_PEER_DIR, PORTER_KEEP_DATA=1, PORTER_PEER_ARGS (extra
# `porter serve` flags), PORTER_START_TIMEOUT_S (20).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORTER_MQTT_PORT="${PORTER_MQTT_PORT:-1886}"
PEER_DIR="${PORTER_PEER_DIR:-/tmp/porter-mqtt-peer-$PORTER_MQTT_PORT}"
START_TIMEOUT_S="${PORTER_START_TIMEOUT_S:-20}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/porter"
URL="mqtt://127.0.0.1:$PORTER_MQTT_PORT"

log() { printf '[porter-peer] %s\n' "$*" >&2; }

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

accepts() { (echo >"/dev/tcp/127.0.0.1/$PORTER_MQTT_PORT") 2>/dev/null; }

cmd_install() { (cd "$ROOT" && cargo build --release -p porter >&2); }

cmd_start() {
    cmd_install
    if live_pid "$PEER_DIR/pid" >/dev/null; then
        log "already running"
        return 0
    fi
    mkdir -p "$PEER_DIR"
    [[ ${PORTER_KEEP_DATA:-0} == 1 ]] || rm -rf "$PEER_DIR/data"
    read -r -a extra <<<"${PORTER_PEER_ARGS:-}"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    "$BIN" serve --data-dir "$PEER_DIR/data" --kafka-listen off --amqp-listen off \
        --rocketmq-listen off --stomp-listen off --mqtt-listen "127.0.0.1:$PORTER_MQTT_PORT" \
        $("$BIN" serve --help | grep -q -- --http-listen && echo --http-listen off) \
        --log warn ${extra[@]+"${extra[@]}"} >"$PEER_DIR/porter.log" 2>&1 &
    echo $! >"$PEER_DIR/pid"
    for _ in $(seq $((START_TIMEOUT_S * 10))); do
        if accepts; then
            log "porter on $URL (pid $(cat "$PEER_DIR/pid"))"
            return 0
        fi
        sleep 0.1
    done
    log "did not accept within ${START_TIMEOUT_S}s; log: $PEER_DIR/porter.log"
    return 1
}

cmd_stop() {
    local pid
    pid=$(live_pid "$PEER_DIR/pid") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$PEER_DIR/pid"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PEER_DIR/pid"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) live_pid "$PEER_DIR/pid" >/dev/null && accepts && echo "$URL" ;;
url) echo "$URL" ;;
pid) live_pid "$PEER_DIR/pid" ;;
*) echo "usage: $0 install|start|status|stop|url|pid" >&2; exit 2 ;;
esac
