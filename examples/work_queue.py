"""Async work queue over AMQP 0-9-1: sign-ups hand e-mail work to background workers.

The web tier publishes one persistent message per sign-up to the durable queue `signup-emails`
and waits for the broker's confirm, so a sign-up is never lost once confirmed. Two workers share
the queue (competing consumers) with prefetch=1: a busy worker gets no new message until it acks,
so work goes to whoever is free (fair dispatch). A worker acks only after the work is done; one
failure is nacked with requeue and comes back, flagged `redelivered`, to some worker.

    cargo run --release -p porter -- serve          # in another terminal
    python3 examples/work_queue.py                  # AMQP_URL=amqp://... to point elsewhere
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
SIGNUPS = int(os.environ.get("SIGNUPS", "200"))
WORKERS = 2
DEADLINE_S = 60


def web_tier(queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()  # basic_publish now returns only once the broker confirmed
    for n in range(SIGNUPS):
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=f"user-{n}@example.com".encode(),
            properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                            content_type="text/plain"),
        )
    connection.close()


def worker(name: str, queue: str, done: dict, lock: threading.Lock, failed_once: set) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    deadline = time.monotonic() + DEADLINE_S
    for method, properties, body in channel.consume(queue, inactivity_timeout=0.5):
        with lock:
            finished = len(done) == SIGNUPS
        if finished or time.monotonic() > deadline:
            break
        if method is None:
            continue
        address = body.decode()
        with lock:
            fail = address == "user-7@example.com" and address not in failed_once
            if fail:
                failed_once.add(address)
        if fail:
            # The SMTP server timed out: give the message back; another worker will retry it.
            channel.basic_nack(method.delivery_tag, requeue=True)
            continue
        time.sleep(0.001)  # "send the e-mail"
        with lock:
            done.setdefault(address, (name, method.redelivered))
        channel.basic_ack(method.delivery_tag)
    channel.cancel()
    connection.close()


def main() -> None:
    queue = f"signup-emails-{uuid.uuid4().hex[:8]}"
    setup = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    setup.channel().queue_declare(queue, durable=True)
    done: dict[str, tuple[str, bool]] = {}
    lock = threading.Lock()
    failed_once: set[str] = set()
    workers = [threading.Thread(target=worker, args=(f"worker-{i}", queue, done, lock, failed_once))
               for i in range(WORKERS)]
    for w in workers:
        w.start()
    started = time.monotonic()
    web_tier(queue)
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    per_worker = {f"worker-{i}": sum(1 for who, _ in done.values() if who == f"worker-{i}")
                  for i in range(WORKERS)}
    retried = [address for address, (_, redelivered) in done.items() if redelivered]
    setup.channel().queue_delete(queue)
    setup.close()
    print(f"{len(done)}/{SIGNUPS} sign-up e-mails sent in {elapsed:.2f}s; per worker {per_worker}; "
          f"retried after a failure: {retried}")
    if len(done) != SIGNUPS or not retried or min(per_worker.values()) == 0:
        sys.exit("FAILED")
    print("ok: every sign-up handled, the failed one redelivered, both workers busy")


if __name__ == "__main__":
    main()
