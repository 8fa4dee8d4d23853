"""Peak shaving over AMQP 0-9-1: a flash sale's burst is queued and drained at a safe rate.

The order service receives a burst far faster than the fulfilment workers can go. The durable
queue `flash-sale-orders` absorbs it, but it is bounded (`x-max-length`) with
`x-overflow = reject-publish`: once full, the broker nacks new publishes instead of growing without
limit. The publisher uses confirms, so a nack is a clear "not accepted, try again": it backs off
and retries, and the burst turns into a steady stream the workers can take. Nothing is lost and
the backlog never exceeds its bound.

    cargo run --release -p porter -- serve          # in another terminal
    python3 examples/peak_shaving.py                # AMQP_URL=amqp://... to point elsewhere
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
ORDERS = int(os.environ.get("ORDERS", "1000"))
QUEUE_BOUND = 100            # at most this many orders wait in the queue
DRAIN_RATE = 200             # orders/s the workers can safely fulfil
RETRY_BACKOFF_S = 0.02
DEADLINE_S = 60


def order_service(queue: str, stats: dict) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    for n in range(ORDERS):
        while True:
            try:
                channel.basic_publish("", queue, f"order-{n}".encode(),
                                      pika.BasicProperties(delivery_mode=2))
                break
            except pika.exceptions.NackError:
                # The queue is full: the broker refused this order. Back off and retry; a web
                # tier would answer "busy, retrying" instead of falling over.
                stats["rejected"] += 1
                time.sleep(RETRY_BACKOFF_S)
    connection.close()


def fulfilment(queue: str, received: list) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=50)
    started = time.monotonic()
    for method, _, body in channel.consume(queue, inactivity_timeout=0.5):
        if len(received) == ORDERS or time.monotonic() - started > DEADLINE_S:
            break
        if method is None:
            continue
        received.append(body.decode())
        channel.basic_ack(method.delivery_tag)
        # Pace to the safe rate: the n-th order is not handled before n / DRAIN_RATE seconds.
        ahead = len(received) / DRAIN_RATE - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    channel.cancel()
    connection.close()


def main() -> None:
    queue = f"flash-sale-orders-{uuid.uuid4().hex[:8]}"
    monitor = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    monitor_channel = monitor.channel()
    monitor_channel.queue_declare(queue, durable=True, arguments={
        "x-max-length": QUEUE_BOUND,
        "x-overflow": "reject-publish",
    })
    stats = {"rejected": 0}
    received: list[str] = []
    threads = [threading.Thread(target=order_service, args=(queue, stats)),
               threading.Thread(target=fulfilment, args=(queue, received))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    max_depth = 0
    while any(thread.is_alive() for thread in threads):
        depth = monitor_channel.queue_declare(queue, passive=True).method.message_count
        max_depth = max(max_depth, depth)
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    monitor_channel.queue_delete(queue)
    monitor.close()

    print(f"{ORDERS} orders burst in; fulfilled {len(received)} in {elapsed:.2f}s "
          f"(safe rate {DRAIN_RATE}/s); deepest backlog {max_depth} (bound {QUEUE_BOUND}); "
          f"publishes refused and retried: {stats['rejected']}")
    if sorted(received) != sorted(f"order-{n}" for n in range(ORDERS)):
        sys.exit("FAILED: orders lost or duplicated")
    if max_depth > QUEUE_BOUND or stats["rejected"] == 0:
        sys.exit("FAILED: the bound did not hold, or the burst never hit it")
    print("ok: the burst was absorbed within the bound and drained completely")


if __name__ == "__main__":
    main()
