"""Broker CPU per AMQP login: N logins with the right password (cached after the first) and N
with a wrong one (each a full PBKDF2 check), measured from /proc/<pid>/stat. BENCHMARKS.md,
issue 17 (second session). Usage, against a running broker (release build) and its AMQP port:

    target/release/porter serve --data-dir /tmp/login-bench --amqp-listen 127.0.0.1:15673 ... &
    .venv/bin/python scripts/bench-login-cost.py $(pgrep -f login-bench) 15673 200
"""
import os, sys, time
import pika

pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def login(password):
    params = pika.ConnectionParameters("127.0.0.1", port, credentials=pika.PlainCredentials("guest", password),
                                       connection_attempts=1)
    try:
        pika.BlockingConnection(params).close()
        return True
    except Exception:
        return False

for label, password in [("right password (cached)", "guest"), ("wrong password (PBKDF2 each)", "nope")]:
    login(password)
    c0, t0 = cpu(), time.perf_counter()
    for _ in range(n):
        login(password)
    c1, t1 = cpu(), time.perf_counter()
    print(f"{label}: {n} logins, broker CPU {1000 * (c1 - c0) / n:.2f} ms/login, wall {1000 * (t1 - t0) / n:.1f} ms/login")
