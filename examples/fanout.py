"""Fan-out over AMQP 0-9-1: one event, several independent services.

The sign-up service publishes `user.signed-up` events once, to the fanout exchange `signups`. The
e-mail, SMS and analytics services each own a durable queue bound to it, so each gets its own copy
and consumes at its own pace; adding a fourth service is one more queue and binding, with no change
to the publisher. That is the decoupling.

    cargo run --release -p porter -- serve          # in another terminal
    python3 examples/fanout.py                      # AMQP_URL=amqp://... to point elsewhere
"""

from __future__ import annotations

import json
import os
import sys
import uuid

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
EVENTS = int(os.environ.get("EVENTS", "100"))
SERVICES = ["email", "sms", "analytics"]


def main() -> None:
    suffix = uuid.uuid4().hex[:8]
    exchange = f"signups-{suffix}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
    queues = {}
    for service in SERVICES:
        queue = f"{service}-{suffix}"
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange)  # a fanout exchange ignores the routing key
        queues[service] = queue

    channel.confirm_delivery()
    for n in range(EVENTS):
        event = {"type": "user.signed-up", "user": f"user-{n}", "email": f"user-{n}@example.com"}
        channel.basic_publish(exchange, routing_key="", body=json.dumps(event).encode(),
                              properties=pika.BasicProperties(delivery_mode=2,
                                                              content_type="application/json"))

    received = {}
    for service, queue in queues.items():
        users = []
        for method, _, body in channel.consume(queue, inactivity_timeout=2):
            if method is None:
                break
            users.append(json.loads(body)["user"])
            channel.basic_ack(method.delivery_tag)
            if len(users) == EVENTS:
                break
        channel.cancel()
        received[service] = users
        channel.queue_delete(queue)
    channel.exchange_delete(exchange)
    connection.close()

    for service, users in received.items():
        print(f"{service:>9}: {len(users)} events, first {users[:1]}, last {users[-1:]}")
    expected = [f"user-{n}" for n in range(EVENTS)]
    if any(users != expected for users in received.values()):
        sys.exit("FAILED: a service missed events or saw them out of order")
    print(f"ok: each of {len(SERVICES)} services got all {EVENTS} events, in order")


if __name__ == "__main__":
    main()
