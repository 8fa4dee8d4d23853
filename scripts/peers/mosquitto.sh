#!/usr/bin/env bash
# A real Mosquitto as a peer for Porter's MQTT benchmarks (scripts/bench-mqtt.sh):
#
#   scripts/peers/mosquitto.sh install   # apt-get install mosquitto if missing (idempotent)
#   scripts/peers/mosquitto.sh start     # install if needed, start on 127.0.0.1:$MOSQUITTO_PORT, wait for MQTT
#   scripts/peers/mosquitto.sh status    # exit 0 and print the URL if it runs and accepts MQTT, else exit 1
#   scripts/peers/mosquitto.sh stop      # stop it (SIGTERM, which saves its database, then SIGKILL)
#   scripts/peers/mosquitto.sh url       # print mqtt://127.0.0.1:$MOSQUITTO_PORT
#   scripts/peers/mosquitto.sh pid       # print the broker's pid (for porter-bench --broker-pid)
#
# The broker is private to this script and never touches a system Mosquitto:
#   - listener 127.0.0.1:$MOSQUITTO_PORT only (default 1884, not the standard 1883), anonymous
#     clients allowed (loopback only);
#   - everything lives in $MOSQUITTO_PEER_DIR (default /tmp/porter-mosquitto-peer-$MOSQUITTO_PORT):
#     mosquitto.conf, data/ (the persistence database), mosquitto.log, pid;
#     `start` wipes data/ first unless MOSQUITTO_KEEP_DATA=1, so each start is a fresh broker.
#
# Durability (what "persistence true" buys in Mosquitto 2.0): Mosquitto keeps everything in
# memory and has no per-message log. Persistence is a *snapshot* of the whole in-memory state
# (persistent sessions, their subscriptions, their queued and in-flight QoS 1 messages, retained
# messages) written to a temporary file, fflush + fsync'd, and renamed over data/mosquitto.db.
# With autosave_on_changes true, a snapshot is taken once $MOSQUITTO_AUTOSAVE_CHANGES "changes"
# (subscription changes + retained messages + messages queued to clients) accumulate, default
# 1000, and on a clean shutdown. So a crash loses up to the last 1000 changes: a QoS 1 message
# already PUBACKed to its publisher can be lost, unlike in a broker that logs before it acks.
# autosave_interval 1 would snapshot after every change — the closest Mosquitto comes to
# per-message durability — but each snapshot rewrites the whole database (every session of every
# client), which makes the cost grow with the state, not the message; 1000 keeps the snapshot
# cost visible in the broker's CPU without turning the benchmark into a snapshot benchmark.
#
# Limits raised so a QoS 1 benchmark measures the broker, not its default throttles:
#   max_inflight_messages 1000   (default 20): unacked QoS 1 messages per client towards it;
#   max_queued_messages 1000000  (default 1000): messages queued per client beyond the in-flight
#                                ones; a fan-out subscriber falling behind would otherwise have
#                                messages silently dropped after 1000;
#   max_queued_bytes 0, max_inflight_bytes 0: no byte limits (the defaults);
#   set_tcp_nodelay true: the benchmark's messages are small; Nagle would add delay, and the
#                         other peers (NATS) and the driver set TCP_NODELAY too;
#   the open-files limit of the broker is raised to the hard limit (thousands of chat clients).
# Installing: Debian's mosquitto (2.0.11 on bookworm) with apt-get. While installing, a
# policy-rc.d that forbids service starts is put in place if there is none, so the package does
# not start the system broker on 1883; the system service stays stopped and unused.
# Knobs: MOSQUITTO_PORT, MOSQUITTO_PEER_DIR, MOSQUITTO_KEEP_DATA=1, MOSQUITTO_AUTOSAVE_CHANGES,
# MOSQUITTO_CONF_EXTRA (lines appended to mosquitto.conf), MOSQUITTO_START_TIMEOUT_S (default 20).
set -euo pipefail

MOSQUITTO_PORT="${MOSQUITTO_PORT:-1884}"
PEER_DIR="${MOSQUITTO_PEER_DIR:-/tmp/porter-mosquitto-peer-$MOSQUITTO_PORT}"
AUTOSAVE_CHANGES="${MOSQUITTO_AUTOSAVE_CHANGES:-1000}"
START_TIMEOUT_S="${MOSQUITTO_START_TIMEOUT_S:-20}"
MOSQUITTO=/usr/sbin/mosquitto
URL="mqtt://127.0.0.1:$MOSQUITTO_PORT"

log() { printf '[mosquitto-peer] %s\n' "$*" >&2; }

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

installed() { [[ -x $MOSQUITTO ]]; }

version() { dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || echo '?'; }

cmd_install() {
    if installed; then
        log "mosquitto already installed ($(version))"
        return 0
    fi
    apt_install_without_starting mosquitto || return $?
    installed || { log "installed, but $MOSQUITTO is missing"; return 1; }
    log "installed mosquitto $(version)"
}


server_pid() {
    live_pid "$PEER_DIR/pid"
}

cmd_status() {
    if server_pid >/dev/null && mqtt_accepts "$MOSQUITTO_PORT" 2; then
        echo "$URL"
        return 0
    fi
    log "not running (no live pid in $PEER_DIR/pid or no MQTT on 127.0.0.1:$MOSQUITTO_PORT)"
    return 1
}

write_conf() {
    cat >"$PEER_DIR/mosquitto.conf" <<EOF
# written by scripts/peers/mosquitto.sh
listener $MOSQUITTO_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $PEER_DIR/data/
persistence_file mosquitto.db
autosave_on_changes true
autosave_interval $AUTOSAVE_CHANGES
max_inflight_messages 1000
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_bytes 0
set_tcp_nodelay true
log_dest file $PEER_DIR/mosquitto.log
log_type error
log_type warning
log_type notice
connection_messages false
${MOSQUITTO_CONF_EXTRA:-}
EOF
}

cmd_start() {
    cmd_install
    if server_pid >/dev/null; then
        if mqtt_accepts "$MOSQUITTO_PORT" 2; then
            log "already running (pid $(server_pid)) at $URL"
            echo "$URL"
            return 0
        fi
        log "a broker is running (pid $(server_pid)) but does not answer MQTT; stopping it first"
        cmd_stop
    fi
    if mqtt_accepts "$MOSQUITTO_PORT" 2; then
        log "something else already answers MQTT on 127.0.0.1:$MOSQUITTO_PORT; pick another MOSQUITTO_PORT"
        return 1
    fi
    mkdir -p "$PEER_DIR"
    if [[ "${MOSQUITTO_KEEP_DATA:-0}" != "1" ]]; then
        rm -rf "$PEER_DIR/data"
    fi
    mkdir -p "$PEER_DIR/data"
    write_conf
    # Debian's mosquitto drops to the "mosquitto" user when started as root: it must own its data.
    if [[ $(id -u) -eq 0 ]] && id mosquitto >/dev/null 2>&1; then
        chown -R mosquitto: "$PEER_DIR/data"
        touch "$PEER_DIR/mosquitto.log" && chown mosquitto: "$PEER_DIR/mosquitto.log"
    fi
    rm -f "$PEER_DIR/pid"
    log "starting mosquitto $(version) on 127.0.0.1:$MOSQUITTO_PORT (dir $PEER_DIR)"
    # setsid: its own session, so the caller's job control never signals it; the open-files limit
    # raised to the hard limit for thousands of client connections.
    (
        ulimit -n "$(ulimit -Hn)"
        exec setsid "$MOSQUITTO" -c "$PEER_DIR/mosquitto.conf" >"$PEER_DIR/stdout.log" 2>&1 </dev/null
    ) &
    echo $! >"$PEER_DIR/pid"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if server_pid >/dev/null && mqtt_accepts "$MOSQUITTO_PORT" 2; then
            log "ready: $URL (pid $(server_pid))"
            echo "$URL"
            return 0
        fi
        if ! server_pid >/dev/null; then
            log "mosquitto exited during startup; last lines of its logs:"
            tail -n 20 "$PEER_DIR/stdout.log" "$PEER_DIR/mosquitto.log" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
    log "not ready within ${START_TIMEOUT_S}s; stopping it"
    tail -n 20 "$PEER_DIR/stdout.log" "$PEER_DIR/mosquitto.log" >&2 2>/dev/null || true
    cmd_stop || true
    return 1
}

cmd_stop() {
    stop_pid_file mosquitto "$PEER_DIR/pid"
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
