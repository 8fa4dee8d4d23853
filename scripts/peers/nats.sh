#!/usr/bin/env bash
# A real NATS server (with its MQTT listener) as a peer for Porter's MQTT benchmarks
# (scripts/bench-mqtt.sh):
#
#   scripts/peers/nats.sh install   # apt-get install nats-server if missing (idempotent)
#   scripts/peers/nats.sh start     # install if needed, start, wait until MQTT answers
#   scripts/peers/nats.sh status    # exit 0 and print the MQTT URL if it runs and accepts MQTT, else exit 1
#   scripts/peers/nats.sh stop      # stop it (SIGTERM, then SIGKILL of its own pid)
#   scripts/peers/nats.sh url       # print mqtt://127.0.0.1:$NATS_MQTT_PORT
#   scripts/peers/nats.sh pid       # print the server's pid (for porter-bench --broker-pid)
#
# The server is private to this script and never touches a system NATS:
#   - NATS clients on 127.0.0.1:$NATS_PORT (default 4223, not the standard 4222), MQTT on
#     127.0.0.1:$NATS_MQTT_PORT (default 1885), no HTTP monitoring, no cluster;
#   - server_name porter-nats-peer-$NATS_PORT (NATS' MQTT needs a server name and JetStream);
#   - everything lives in $NATS_PEER_DIR (default /tmp/porter-nats-peer-$NATS_PORT):
#     nats.conf, jetstream/ (store_dir), nats.log, pid; `start` wipes jetstream/ first unless
#     NATS_KEEP_DATA=1, so each start is a fresh server.
#
# Durability: NATS implements MQTT on JetStream, with file storage here. A QoS 1 PUBLISH is
# stored in the $MQTT_msgs stream before the server PUBACKs it; every QoS 1 subscription is a
# JetStream consumer, so a message stays stored until each subscriber acked it; persistent
# sessions live in the $MQTT_sess stream. JetStream's file store writes each message to its block
# file (the OS page cache) as it stores it and fsyncs on its own schedule (not per message), so an
# acked message survives a crash of the server process, not necessarily of the machine. That is
# the durability match for Mosquitto's persistence (see mosquitto.sh, which is weaker: periodic
# snapshots) and for Porter's log.
#
# Limits: mqtt.max_ack_pending 1000 (NATS' default is 1024): QoS 1 messages unacked per
# subscription — the same window Mosquitto gets with max_inflight_messages 1000. JetStream limits
# max_file_store $NATS_MAX_FILE_STORE (default 8GB) and max_memory_store 512MB, so neither stops a
# benchmark on this machine. NATS (Go) raises its own open-files limit and sets TCP_NODELAY.
# Installing: Debian's nats-server (2.9.10 on bookworm; MQTT is supported since 2.2, so Debian's
# version is recent enough) with apt-get, behind a policy-rc.d that forbids service starts if
# there is none (the package ships no running service anyway).
# Knobs: NATS_PORT, NATS_MQTT_PORT, NATS_PEER_DIR, NATS_KEEP_DATA=1, NATS_MAX_FILE_STORE,
# NATS_CONF_EXTRA (lines appended to nats.conf), NATS_START_TIMEOUT_S (default 30).
set -euo pipefail

NATS_PORT="${NATS_PORT:-4223}"
NATS_MQTT_PORT="${NATS_MQTT_PORT:-1885}"
PEER_DIR="${NATS_PEER_DIR:-/tmp/porter-nats-peer-$NATS_PORT}"
MAX_FILE_STORE="${NATS_MAX_FILE_STORE:-8GB}"
START_TIMEOUT_S="${NATS_START_TIMEOUT_S:-30}"
NATS=/usr/sbin/nats-server
URL="mqtt://127.0.0.1:$NATS_MQTT_PORT"

log() { printf '[nats-peer] %s\n' "$*" >&2; }

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

installed() { [[ -x $NATS ]]; }

version() { dpkg-query -W -f='${Version}' nats-server 2>/dev/null || echo '?'; }

cmd_install() {
    if installed; then
        log "nats-server already installed ($(version))"
        return 0
    fi
    apt_install_without_starting nats-server || return $?
    installed || { log "installed, but $NATS is missing"; return 1; }
    log "installed nats-server $(version)"
}


server_pid() {
    live_pid "$PEER_DIR/pid"
}

cmd_status() {
    if server_pid >/dev/null && mqtt_accepts "$NATS_MQTT_PORT" 3; then
        echo "$URL"
        return 0
    fi
    log "not running (no live pid in $PEER_DIR/pid or no MQTT on 127.0.0.1:$NATS_MQTT_PORT)"
    return 1
}

write_conf() {
    cat >"$PEER_DIR/nats.conf" <<EOF
# written by scripts/peers/nats.sh
server_name: "porter-nats-peer-$NATS_PORT"
listen: "127.0.0.1:$NATS_PORT"
pid_file: "$PEER_DIR/pid"
log_file: "$PEER_DIR/nats.log"
jetstream {
  store_dir: "$PEER_DIR/jetstream"
  max_memory_store: 512MB
  max_file_store: $MAX_FILE_STORE
}
mqtt {
  listen: "127.0.0.1:$NATS_MQTT_PORT"
  max_ack_pending: 1000
}
${NATS_CONF_EXTRA:-}
EOF
}

cmd_start() {
    cmd_install
    if server_pid >/dev/null; then
        if mqtt_accepts "$NATS_MQTT_PORT" 3; then
            log "already running (pid $(server_pid)) at $URL"
            echo "$URL"
            return 0
        fi
        log "a server is running (pid $(server_pid)) but does not answer MQTT; stopping it first"
        cmd_stop
    fi
    if mqtt_accepts "$NATS_MQTT_PORT" 3; then
        log "something else already answers MQTT on 127.0.0.1:$NATS_MQTT_PORT; pick another NATS_MQTT_PORT"
        return 1
    fi
    mkdir -p "$PEER_DIR"
    if [[ "${NATS_KEEP_DATA:-0}" != "1" ]]; then
        rm -rf "$PEER_DIR/jetstream"
    fi
    mkdir -p "$PEER_DIR/jetstream"
    write_conf
    rm -f "$PEER_DIR/pid"
    log "starting nats-server $(version) (NATS 127.0.0.1:$NATS_PORT, MQTT 127.0.0.1:$NATS_MQTT_PORT, dir $PEER_DIR)"
    setsid "$NATS" -c "$PEER_DIR/nats.conf" >"$PEER_DIR/stdout.log" 2>&1 </dev/null &
    local launcher=$!
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if server_pid >/dev/null && mqtt_accepts "$NATS_MQTT_PORT" 3; then
            log "ready: $URL (pid $(server_pid))"
            echo "$URL"
            return 0
        fi
        if ! kill -0 "$launcher" 2>/dev/null && ! server_pid >/dev/null; then
            log "nats-server exited during startup; last lines of its logs:"
            tail -n 20 "$PEER_DIR/stdout.log" "$PEER_DIR/nats.log" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
    log "not ready within ${START_TIMEOUT_S}s; stopping it"
    tail -n 20 "$PEER_DIR/stdout.log" "$PEER_DIR/nats.log" >&2 2>/dev/null || true
    cmd_stop || true
    return 1
}

cmd_stop() {
    stop_pid_file nats-server "$PEER_DIR/pid"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) echo "$URL" ;;
    pid) server_pid ;;
    *)
        echo "usage: $0 {install|start|stop|status|url|pid}" >&2
        exit 2
        ;;
esac
