#!/usr/bin/env python3
"""pika's plain pattern against any AMQP 0-9-1 broker: a BlockingConnection publisher in confirm
mode (one persistent message in flight: each basic_publish waits for its confirm) and one
consumer (prefetch 100, one basic.ack per delivery) on a fresh durable queue, in two processes.

    bench_pika.py --url amqp://guest:guest@127.0.0.1:5672/%2F --records 20000 [--broker-pid PID]

Prints one JSON line: msg/s, end-to-end latency percentiles (ms), and with --broker-pid the
broker's CPU seconds per million messages and RSS before/after (from /proc). The client is the
limit here, not the broker: pika spends most of a round trip in Python; `client_cpu_s` says how
much.
"""

import argparse
import json
import multiprocessing
import os
import struct
import time

import pika

CLK_TCK = os.sysconf("SC_CLK_TCK")


def broker_sample(pid):
    """(cpu seconds, rss bytes) of a process from /proc."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def consume(url, queue, records, ready, results):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=100)
    latencies = []
    ready.set()
    for method, _props, body in ch.consume(queue, inactivity_timeout=30):
        if method is None:
            break
        sent = struct.unpack(">d", body[:8])[0]
        latencies.append(time.time() - sent)
        ch.basic_ack(method.delivery_tag)
        if len(latencies) >= records:
            break
    ch.cancel()
    conn.close()
    results.put((latencies, time.process_time()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--record-bytes", type=int, default=100)
    parser.add_argument("--broker-pid", type=int)
    parser.add_argument("--label", default="run")
    args = parser.parse_args()

    queue = f"bench-pika-{time.time_ns()}"
    conn = pika.BlockingConnection(pika.URLParameters(args.url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    ready = multiprocessing.Event()
    results = multiprocessing.Queue()
    consumer = multiprocessing.Process(
        target=consume, args=(args.url, queue, args.records, ready, results)
    )
    consumer.start()
    ready.wait(30)
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2)
    pad = b"x" * max(0, args.record_bytes - 8)
    before = broker_sample(args.broker_pid)
    started = time.time()
    for _ in range(args.records):
        ch.basic_publish("", queue, struct.pack(">d", time.time()) + pad, props)
    published = time.time() - started
    latencies, consumer_cpu = results.get(timeout=120)
    elapsed = time.time() - started
    after = broker_sample(args.broker_pid)
    consumer.join(10)
    ch.queue_delete(queue)
    conn.close()

    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1e3, 2)

    out = {
        "label": args.label,
        "scenario": "pika blocking publisher, confirms, 1 in flight; 1 consumer prefetch 100",
        "records": args.records,
        "consumed": len(latencies),
        "publish_msgs_per_sec": round(args.records / published),
        "msgs_per_sec": round(len(latencies) / elapsed),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "client_cpu_s": round(time.process_time() + consumer_cpu, 2),
        "elapsed_s": round(elapsed, 2),
    }
    if before and after:
        out["broker_cpu_s_per_million"] = round((after[0] - before[0]) / len(latencies) * 1e6, 1)
        out["broker_rss_mib"] = round(after[1] / 2**20, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
