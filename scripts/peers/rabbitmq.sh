#!/usr/bin/env bash
# A real RabbitMQ as a peer for Porter's AMQP 0-9-1 tests and benchmarks:
#
#   scripts/peers/rabbitmq.sh install   # apt-get install rabbitmq-server if missing (idempotent)
#   scripts/peers/rabbitmq.sh start     # install if needed, start on 127.0.0.1:$RABBITMQ_PORT, wait for AMQP
#   scripts/peers/rabbitmq.sh status    # exit 0 and print the URL if it runs and accepts AMQP, else exit 1
#   scripts/peers/rabbitmq.sh stop      # stop it (rabbitmqctl stop, then SIGKILL of its own pid)
#   scripts/peers/rabbitmq.sh restart   # graceful stop + start, keeping the data
#   scripts/peers/rabbitmq.sh kill9-restart  # SIGKILL of its VM + start, keeping the data
#   scripts/peers/rabbitmq.sh url       # print the AMQP URL (for AMQP_TEST_URL)
#   scripts/peers/rabbitmq.sh ctl ARGS  # rabbitmqctl against this node (e.g. ctl list_queues)
#
# Typical use, validating the AMQP end-to-end tests against RabbitMQ instead of Porter:
#
#   scripts/peers/rabbitmq.sh start
#   AMQP_TEST_URL=$(scripts/peers/rabbitmq.sh url) .venv/bin/python -m pytest -q tests/python -k amqp
#   (cd tests/node && AMQP_TEST_URL=$(../../scripts/peers/rabbitmq.sh url) node --test amqp*.test.js)
#   scripts/peers/rabbitmq.sh stop
#
# The restart tests (test_amqp_durability.py) can run against it too, slowly (a start takes ~5 s):
#   AMQP_TEST_URL=... AMQP_TEST_RESTART_CMD="scripts/peers/rabbitmq.sh restart" \
#   AMQP_TEST_KILL9_CMD="scripts/peers/rabbitmq.sh kill9-restart" PORTER_AMQP_CRASH_CYCLES=3 \
#   .venv/bin/python -m pytest -q tests/python/test_amqp_durability.py
#
# The node is private to this script and never touches a system RabbitMQ:
#   - node name   porter-peer-$RABBITMQ_PORT@localhost, AMQP on 127.0.0.1:$RABBITMQ_PORT only
#                 (default 5673, so it never collides with Porter's or a system broker's 5672),
#                 Erlang distribution on 127.0.0.1:$RABBITMQ_DIST_PORT (default port + 20000),
#                 its own epmd on $ERL_EPMD_PORT (default port + 10000; stopped by `stop`);
#   - everything lives in $RABBITMQ_PEER_DIR (default /tmp/porter-rabbitmq-peer-$RABBITMQ_PORT):
#     mnesia/ (data), log/, home/ (HOME, so the Erlang cookie is ours), rabbitmq.conf, pid, stdout.log;
#     `start` wipes mnesia/ first unless RABBITMQ_KEEP_DATA=1, so each start is a fresh broker;
#   - the default user guest/guest (loopback only), vhost "/"; no plugins.
#   - management of the node goes through this script (or rabbitmqctl with the same env: see `ctl`).
# Installing: Debian's rabbitmq-server (3.10.x on bookworm) with apt-get. While installing, a
# policy-rc.d that forbids service starts is put in place if there is none, so the package does not
# start the system node on 5672; the system service stays stopped and unused.
# Knobs: RABBITMQ_PORT, RABBITMQ_DIST_PORT, ERL_EPMD_PORT, RABBITMQ_PEER_DIR, RABBITMQ_KEEP_DATA=1,
# RABBITMQ_START_TIMEOUT_S (default 90), RABBITMQ_CONF_EXTRA (lines appended to rabbitmq.conf).
# Runs as root (or with sudo for the install step only).
set -euo pipefail

RABBITMQ_PORT="${RABBITMQ_PORT:-5673}"
RABBITMQ_DIST_PORT="${RABBITMQ_DIST_PORT:-$((RABBITMQ_PORT + 20000))}"
ERL_EPMD_PORT="${ERL_EPMD_PORT:-$((RABBITMQ_PORT + 10000))}"
PEER_DIR="${RABBITMQ_PEER_DIR:-/tmp/porter-rabbitmq-peer-$RABBITMQ_PORT}"
START_TIMEOUT_S="${RABBITMQ_START_TIMEOUT_S:-90}"
NODE_NAME="porter-peer-$RABBITMQ_PORT@localhost"
RABBIT_LIB=/usr/lib/rabbitmq/bin
URL="amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/%2F"

log() { printf '[rabbitmq-peer] %s\n' "$*" >&2; }

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

installed() {
    [[ -x "$RABBIT_LIB/rabbitmq-server" && -x "$RABBIT_LIB/rabbitmqctl" ]]
}

cmd_install() {
    if installed; then
        log "rabbitmq-server already installed ($(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?'))"
        return 0
    fi
    apt_install_without_starting rabbitmq-server || return $?
    installed || { log "installed, but $RABBIT_LIB/rabbitmq-server is missing"; return 1; }
    log "installed rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server)"
}

# The environment every rabbitmq-server / rabbitmqctl call of this node gets.
node_env() {
    env \
        HOME="$PEER_DIR/home" \
        RABBITMQ_NODENAME="$NODE_NAME" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$RABBITMQ_PORT" \
        RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT" \
        ERL_EPMD_PORT="$ERL_EPMD_PORT" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_MNESIA_BASE="$PEER_DIR/mnesia" \
        RABBITMQ_LOG_BASE="$PEER_DIR/log" \
        RABBITMQ_CONFIG_FILE="$PEER_DIR/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$PEER_DIR/advanced.config" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$PEER_DIR/enabled_plugins" \
        RABBITMQ_PLUGINS_EXPAND_DIR="$PEER_DIR/plugins-expand" \
        RABBITMQ_PID_FILE="$PEER_DIR/pid" \
        RABBITMQ_CONF_ENV_FILE="$PEER_DIR/rabbitmq-env.conf" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        "$@"
}

ctl() {
    node_env "$RABBIT_LIB/rabbitmqctl" -n "$NODE_NAME" "$@"
}

amqp_accepts() {
    # A real protocol check, not just an open port: send the AMQP header, expect connection.start
    # (a method frame: type 1, channel 0, class 10 method 10).
    python3 - "$RABBITMQ_PORT" <<'PY' 2>/dev/null
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    data = b""
    while len(data) < 11:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    sys.exit(0 if data[:1] == b"\x01" and data[7:11] == b"\x00\x0a\x00\x0a" else 1)
except OSError:
    sys.exit(1)
PY
}

server_pid() {
    # The pid of the Erlang VM (beam) of this node, if it is alive.
    live_pid "$PEER_DIR/pid"
}

cmd_status() {
    if server_pid >/dev/null && amqp_accepts; then
        echo "$URL"
        return 0
    fi
    log "not running (no live pid in $PEER_DIR/pid or no AMQP on 127.0.0.1:$RABBITMQ_PORT)"
    return 1
}

cmd_start() {
    cmd_install
    if server_pid >/dev/null; then
        if amqp_accepts; then
            log "already running (pid $(server_pid)) at $URL"
            echo "$URL"
            return 0
        fi
        log "a node is running (pid $(server_pid)) but does not answer AMQP; stopping it first"
        cmd_stop
    fi
    if amqp_accepts; then
        log "something else already answers AMQP on 127.0.0.1:$RABBITMQ_PORT; pick another RABBITMQ_PORT"
        return 1
    fi
    mkdir -p "$PEER_DIR/home" "$PEER_DIR/log"
    if [[ "${RABBITMQ_KEEP_DATA:-0}" != "1" ]]; then
        rm -rf "$PEER_DIR/mnesia"
    fi
    mkdir -p "$PEER_DIR/mnesia"
    chmod 700 "$PEER_DIR/home"
    if [[ ! -f "$PEER_DIR/home/.erlang.cookie" ]]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -dc 'a-f0-9' | tr 'a-f' 'A-F' >"$PEER_DIR/home/.erlang.cookie"
        chmod 400 "$PEER_DIR/home/.erlang.cookie"
    fi
    : >"$PEER_DIR/rabbitmq-env.conf"
    echo "[]." >"$PEER_DIR/advanced.config"
    echo "[]." >"$PEER_DIR/enabled_plugins"
    {
        echo "# written by scripts/peers/rabbitmq.sh"
        echo "listeners.tcp.1 = 127.0.0.1:$RABBITMQ_PORT"
        echo "loopback_users.guest = true"
        echo "log.console = false"
        echo "log.file.level = info"
        # The machine is small (2 cores, shared with the tests): keep the default watermarks.
        printf '%s\n' "${RABBITMQ_CONF_EXTRA:-}"
    } >"$PEER_DIR/rabbitmq.conf"
    rm -f "$PEER_DIR/pid"
    log "starting $NODE_NAME on 127.0.0.1:$RABBITMQ_PORT (dir $PEER_DIR)"
    # setsid: its own session, so the caller's terminal or job control never signals it.
    node_env setsid "$RABBIT_LIB/rabbitmq-server" >"$PEER_DIR/stdout.log" 2>&1 </dev/null &
    local launcher=$!
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if server_pid >/dev/null && amqp_accepts; then
            log "ready: $URL (pid $(server_pid))"
            echo "$URL"
            return 0
        fi
        if ! kill -0 "$launcher" 2>/dev/null && ! server_pid >/dev/null; then
            log "rabbitmq-server exited during startup; last lines of $PEER_DIR/stdout.log and the log:"
            tail -n 40 "$PEER_DIR/stdout.log" >&2 || true
            tail -n 40 "$PEER_DIR"/log/*.log >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.5
    done
    log "not ready within ${START_TIMEOUT_S}s; stopping it. Last lines of its logs:"
    tail -n 40 "$PEER_DIR/stdout.log" >&2 || true
    tail -n 40 "$PEER_DIR"/log/*.log >&2 2>/dev/null || true
    cmd_stop || true
    return 1
}

cmd_stop() {
    local pid
    if pid=$(server_pid); then
        log "stopping $NODE_NAME (pid $pid)"
        node_env timeout 60 "$RABBIT_LIB/rabbitmqctl" -n "$NODE_NAME" stop "$PEER_DIR/pid" >/dev/null 2>&1 || true
        local deadline=$((SECONDS + 15))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "still alive after rabbitmqctl stop; SIGKILL $pid"
            kill -9 "$pid" 2>/dev/null || true
        fi
    else
        log "not running"
    fi
    rm -f "$PEER_DIR/pid"
    # Our own epmd (on our own port), if one was started for this node.
    if [[ -x "$(command -v epmd || true)" ]]; then
        ERL_EPMD_PORT="$ERL_EPMD_PORT" epmd -kill >/dev/null 2>&1 || true
    elif [[ -d /usr/lib/erlang ]]; then
        local epmd_bin
        epmd_bin=$(find /usr/lib/erlang -name epmd -type f -perm -u+x 2>/dev/null | head -n 1)
        [[ -n $epmd_bin ]] && ERL_EPMD_PORT="$ERL_EPMD_PORT" "$epmd_bin" -kill >/dev/null 2>&1 || true
    fi
    return 0
}

# Restart keeping the data: graceful (rabbitmqctl stop) or a crash (SIGKILL of the VM).
cmd_restart() {
    local how=$1 pid
    if [[ $how == kill9 ]] && pid=$(server_pid); then
        log "SIGKILL $pid"
        kill -9 "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 15))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        rm -f "$PEER_DIR/pid"
    else
        cmd_stop
    fi
    RABBITMQ_KEEP_DATA=1 cmd_start
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_restart graceful ;;
    kill9-restart) cmd_restart kill9 ;;
    status) cmd_status ;;
    url) echo "$URL" ;;
    ctl) shift; ctl "$@" ;;
    *)
        echo "usage: $0 {install|start|stop|restart|kill9-restart|status|url|ctl ARGS...}" >&2
        exit 2
        ;;
esac
