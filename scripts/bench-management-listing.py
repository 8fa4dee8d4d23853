"""100k queues: how long the management API takes to list them, and whether a publisher's
confirm latency changes while it does (no global lock held while serialising). BENCHMARKS.md,
issue 17. Usage (release build; data on /dev/shm, ports 25672 and 25680 must be free):

    .venv/bin/python scripts/bench-management-listing.py target/release/porter 100000
"""
import os, statistics, subprocess, sys, threading, time
import pika, requests

BIN = sys.argv[1]; N = int(sys.argv[2]); DATA = "/dev/shm/p100k"
subprocess.run(["rm", "-rf", DATA])
proc = subprocess.Popen([BIN, "serve", "--data-dir", DATA, "--kafka-listen", "off", "--rocketmq-listen", "off",
    "--mqtt-listen", "off", "--stomp-listen", "off", "--amqp-listen", "127.0.0.1:25672",
    "--http-listen", "127.0.0.1:25680", "--log", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)
def rss():
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) // 1024
def hwm():
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmHWM"): return int(line.split()[1]) // 1024
params = pika.URLParameters("amqp://guest:guest@127.0.0.1:25672/%2F")
conn = pika.BlockingConnection(params); ch = conn.channel()
t0 = time.time()
for i in range(N):
    ch.queue_declare(f"q{i:06d}", durable=True)
print(f"declared {N} queues in {time.time()-t0:.1f}s; RSS {rss()} MiB")
conn.close()
def cpu_s():
    fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
# Idle: what the broker spends with nobody asking (the message-rate sampler reads every queue's
# counts every 5 s).
c0 = cpu_s(); time.sleep(30)
print(f"idle broker CPU with {N} queues: {100 * (cpu_s() - c0) / 30:.1f}% of a core")
AUTH = ("guest", "guest"); URL = "http://127.0.0.1:25680"
def timed(path):
    t = time.time(); r = requests.get(URL + path, auth=AUTH, timeout=300); return time.time() - t, len(r.content), r.status_code
for path in ["/api/queues", "/api/queues?page=1&page_size=500", "/api/queues?page=150&page_size=500&name=q0", "/api/overview", "/metrics"]:
    d, size, code = timed(path)
    print(f"GET {path}: {code} {d*1000:.0f} ms, {size/1e6:.1f} MB")
print(f"RSS now {rss()} MiB, peak {hwm()} MiB")

def confirm_latencies(seconds):
    c = pika.BlockingConnection(params); k = c.channel(); k.confirm_delivery()
    k.queue_declare("probe", durable=True)
    lat = []; end = time.time() + seconds
    while time.time() < end:
        t = time.time(); k.basic_publish("", "probe", b"x", pika.BasicProperties(delivery_mode=2)); lat.append((time.time() - t) * 1000)
    c.close(); lat.sort()
    return len(lat), lat[len(lat)//2], lat[int(len(lat)*0.99)], lat[-1]
print("publisher alone: n=%d p50=%.2f p99=%.2f max=%.2f ms" % confirm_latencies(5))
stop = threading.Event(); lists = []
def lister():
    while not stop.is_set(): lists.append(timed("/api/queues")[0])
th = threading.Thread(target=lister); th.start()
print("publisher while /api/queues is listed in a loop: n=%d p50=%.2f p99=%.2f max=%.2f ms" % confirm_latencies(5))
stop.set(); th.join()
print(f"listings during that: {len(lists)}, each {statistics.median(lists)*1000:.0f} ms median; peak RSS {hwm()} MiB")
proc.terminate(); proc.wait(60); subprocess.run(["rm", "-rf", DATA])
