#!/usr/bin/env bash
# Counts a process's syscalls (perf's syscall tracepoints: counted in the kernel, no strace
# slow-down) while a command runs, and prints them per message:
#
#   scripts/syscalls-per-message.sh PID MESSAGES -- porter-bench amqp ...
#
# Prints "syscall count per-message" lines, largest first, then the total. Needs perf and
# permission to trace (root, or kernel.perf_event_paranoid <= -1).
set -euo pipefail
PID=$1 MESSAGES=$2
shift 2
[[ ${1:-} == -- ]] && shift
EVENTS="syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_pwrite64,syscalls:sys_enter_pwritev,syscalls:sys_enter_pread64,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_sched_yield,syscalls:sys_enter_madvise,syscalls:sys_enter_mmap,syscalls:sys_enter_munmap,syscalls:sys_enter_sendfile64,syscalls:sys_enter_splice,raw_syscalls:sys_enter"
OUT="$(mktemp)"
perf stat -x, -e "$EVENTS" -p "$PID" -o "$OUT" &
PERF=$!
sleep 0.3
"$@"
kill -INT "$PERF"
wait "$PERF" 2>/dev/null || true
python3 - "$OUT" "$MESSAGES" <<'PY'
import sys
rows, total = [], None
for line in open(sys.argv[1]):
    parts = line.strip().split(",")
    if len(parts) < 3 or not parts[0].replace(".", "").isdigit():
        continue
    count, event = int(float(parts[0])), parts[2]
    name = event.rsplit("sys_enter_", 1)[-1] if "sys_enter_" in event else "all"
    if name == "all" or event.endswith("raw_syscalls:sys_enter"):
        total = count
    elif count:
        rows.append((count, name))
n = int(sys.argv[2])
for count, name in sorted(rows, reverse=True):
    print(f"{name:12} {count:10} {count / n:8.2f}")
if total is not None:
    print(f"{'all':12} {total:10} {total / n:8.2f}")
PY
rm -f "$OUT"
