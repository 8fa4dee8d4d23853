#!/usr/bin/env bash
# Prints the path of `rabbitmqadmin`, RabbitMQ's own management CLI (a Python script shipped in
# Debian's rabbitmq-server package), for test_management.py: the system's copy if installed,
# else the script alone, extracted from the downloaded package into target/tools (no Erlang, no
# service; idempotent: a second run only prints the path).
#
#   scripts/rabbitmqadmin.sh            # -> /usr/bin/rabbitmqadmin or target/tools/rabbitmqadmin
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${CARGO_TARGET_DIR:-$ROOT/target}/tools"

if command -v rabbitmqadmin >/dev/null 2>&1; then
    command -v rabbitmqadmin
    exit 0
fi
if [[ -x "$TOOLS/rabbitmqadmin" ]]; then
    echo "$TOOLS/rabbitmqadmin"
    exit 0
fi
mkdir -p "$TOOLS"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download rabbitmq-server >/dev/null 2>&1) || {
    # The package index may be empty on a fresh machine.
    if [[ $(id -u) -eq 0 ]]; then apt-get update -qq; else sudo apt-get update -qq; fi
    (cd "$work" && apt-get download rabbitmq-server >/dev/null)
}
dpkg-deb -x "$work"/rabbitmq-server_*.deb "$work/root"
script="$(find "$work/root" -path '*rabbitmq_management*/cli/rabbitmqadmin' -type f | head -n 1)"
[[ -n "$script" ]] || { echo "rabbitmqadmin not found in the rabbitmq-server package" >&2; exit 1; }
install -m 755 "$script" "$TOOLS/rabbitmqadmin"
echo "$TOOLS/rabbitmqadmin"
