"""Log ingestion over the Kafka protocol: every service ships its logs through Porter.

Four "services" produce JSON log lines, keyed by service name so each service's lines stay in
order (one key -> one partition), batched by the client (linger) and compressed. An indexer in the
consumer group `log-indexer` reads them all back and checks that nothing was lost or reordered.

    cargo run --release -p porter -- serve          # in another terminal
    python3 examples/log_ingestion.py               # KAFKA_BOOTSTRAP=host:port to point elsewhere
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "localhost:9092")
SERVICES = ["orders", "inventory", "payments", "shipping"]
LINES_PER_SERVICE = int(os.environ.get("LINES_PER_SERVICE", "5000"))
PARTITIONS = 3
DEADLINE_S = 60


def create_topic(name: str) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS)]).values():
        future.result(timeout=10)


def ship_logs(topic: str, service: str) -> None:
    # Batching is what makes log shipping cheap: wait up to 5 ms to fill a batch, compress it,
    # and let one request carry thousands of lines. acks=all: a line is stored once acknowledged.
    producer = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "linger.ms": 5,
        "compression.type": "lz4",
        "acks": "all",
        "enable.idempotence": True,
    })
    for sequence in range(LINES_PER_SERVICE):
        line = {"service": service, "seq": sequence, "level": "INFO", "msg": f"handled request {sequence}"}
        while True:
            try:
                producer.produce(topic, key=service, value=json.dumps(line))
                break
            except BufferError:  # the client's queue is full: let it send, then retry
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        sys.exit(f"{service}: {remaining} lines not acknowledged")


def index_logs(topic: str) -> dict[str, int]:
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "log-indexer",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    next_seq = {service: 0 for service in SERVICES}
    expected = len(SERVICES) * LINES_PER_SERVICE
    seen = 0
    deadline = time.monotonic() + DEADLINE_S
    while seen < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        line = json.loads(message.value())
        # Per-key order: each service's lines arrive in the order it wrote them.
        if line["seq"] != next_seq[line["service"]]:
            sys.exit(f"{line['service']}: expected line {next_seq[line['service']]}, got {line['seq']}")
        next_seq[line["service"]] += 1
        seen += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    return next_seq


def main() -> None:
    topic = f"app-logs-{uuid.uuid4().hex[:8]}"
    create_topic(topic)
    started = time.monotonic()
    shippers = [threading.Thread(target=ship_logs, args=(topic, s)) for s in SERVICES]
    for shipper in shippers:
        shipper.start()
    for shipper in shippers:
        shipper.join()
    shipped_s = time.monotonic() - started
    counts = index_logs(topic)
    total = len(SERVICES) * LINES_PER_SERVICE
    print(f"shipped {total} log lines from {len(SERVICES)} services in {shipped_s:.2f}s "
          f"({total / shipped_s:,.0f} lines/s); indexed per service: {counts}")
    if any(count != LINES_PER_SERVICE for count in counts.values()):
        sys.exit("FAILED: lines missing")
    print("ok: every line indexed, in order per service")


if __name__ == "__main__":
    main()
