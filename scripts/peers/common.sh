# Shared by the peer scripts (rabbitmq.sh, mosquitto.sh, nats.sh) and librdkafka-suite.sh: each defines `log` and then
# sources this file. Nothing here starts or stops a broker; it only installs and probes.

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        return 1
    fi
}

# apt_install_without_starting PACKAGE: apt-get install it with a policy-rc.d that forbids service
# starts in place (unless one exists already), so the package's postinst does not start the
# system broker on its standard port; the system service stays stopped and unused.
apt_install_without_starting() {
    local package=$1 policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        added_policy=1
    fi
    log "apt-get install $package"
    {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    } || rc=$?
    if [[ $added_policy -eq 1 ]]; then
        as_root rm -f "$policy"
    fi
    [[ $rc -eq 0 ]] || log "apt-get failed ($rc)"
    return "$rc"
}

# live_pid FILE: print the pid in FILE if that process is alive, else fail.
live_pid() {
    local pid
    [[ -f $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# mqtt_accepts PORT [TIMEOUT_S]: a real protocol check, not just an open port: MQTT 3.1.1 CONNECT
# (clean session, client id "peer-probe") to 127.0.0.1:PORT, expect CONNACK (0x20 0x02) with
# return code 0, then DISCONNECT.
mqtt_accepts() {
    python3 - "$1" "${2:-2}" <<'PY' 2>/dev/null
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=float(sys.argv[2]))
    cid = b"peer-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    s.sendall(bytes([0x10, len(body)]) + body)
    data = b""
    while len(data) < 4:
        chunk = s.recv(4)
        if not chunk:
            break
        data += chunk
    s.sendall(b"\xe0\x00")
    s.close()
    sys.exit(0 if data[:2] == b"\x20\x02" and data[3:4] == b"\x00" else 1)
except OSError:
    sys.exit(1)
PY
}

# stop_pid_file NAME FILE: SIGTERM the live process in FILE, SIGKILL it after 15 s, remove FILE.
stop_pid_file() {
    local name=$1 file=$2 pid
    if pid=$(live_pid "$file"); then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 15))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "still alive after SIGTERM; SIGKILL $pid"
            kill -9 "$pid" 2>/dev/null || true
        fi
    else
        log "not running"
    fi
    rm -f "$file"
}
