"""Chat over AMQP 0-9-1: rooms and direct messages through one topic exchange.

Every message goes to the topic exchange `chat` with a routing key saying where it is going:
`room.<room>` for a room, `user.<name>` for a direct message. Each connected user has one
exclusive, auto-delete queue (it disappears when they disconnect) bound to `user.<name>` and to
`room.<room>` for every room they joined. Routing does the rest: a room message is copied to every
member, a direct message reaches one person.

    cargo run --release -p porter -- serve          # in another terminal
    python3 examples/chat.py                        # AMQP_URL=amqp://... to point elsewhere
"""

from __future__ import annotations

import os
import sys
import uuid

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
ROOMS = {"alice": ["general", "rust"], "bob": ["general"], "carol": ["rust"]}


class User:
    def __init__(self, name: str, exchange: str, rooms: list[str]):
        self.name = name
        self.exchange = exchange
        self.connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.channel = self.connection.channel()
        # Confirms: say() returns once the broker has routed the line, so lines from different
        # users reach each inbox in the order they were said.
        self.channel.confirm_delivery()
        # Server-named, exclusive and auto-delete: the inbox lives exactly as long as the session.
        self.inbox = self.channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.channel.queue_bind(self.inbox, exchange, routing_key=f"user.{name}")
        for room in rooms:
            self.channel.queue_bind(self.inbox, exchange, routing_key=f"room.{room}")

    def say(self, room: str, text: str) -> None:
        self.channel.basic_publish(self.exchange, f"room.{room}", f"[{room}] {self.name}: {text}".encode())

    def tell(self, user: str, text: str) -> None:
        self.channel.basic_publish(self.exchange, f"user.{user}", f"{self.name} -> {user}: {text}".encode())

    def read(self) -> list[str]:
        lines = []
        for method, _, body in self.channel.consume(self.inbox, auto_ack=True, inactivity_timeout=0.5):
            if method is None:
                break
            lines.append(body.decode())
        self.channel.cancel()
        return lines

    def leave(self) -> None:
        self.connection.close()


def main() -> None:
    exchange = f"chat-{uuid.uuid4().hex[:8]}"
    admin = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    admin.channel().exchange_declare(exchange, exchange_type="topic")
    users = {name: User(name, exchange, rooms) for name, rooms in ROOMS.items()}

    users["alice"].say("general", "hi all")
    users["bob"].say("general", "hey alice")
    users["carol"].say("rust", "anyone tried the borrow checker today?")
    users["bob"].tell("carol", "lunch?")

    inboxes = {name: user.read() for name, user in users.items()}
    for name, lines in inboxes.items():
        print(f"--- {name}'s screen")
        for line in lines:
            print(f"  {line}")
    for user in users.values():
        user.leave()
    admin.channel().exchange_delete(exchange)
    admin.close()

    expected = {
        "alice": ["[general] alice: hi all", "[general] bob: hey alice",
                  "[rust] carol: anyone tried the borrow checker today?"],
        "bob": ["[general] alice: hi all", "[general] bob: hey alice"],
        "carol": ["[rust] carol: anyone tried the borrow checker today?", "bob -> carol: lunch?"],
    }
    if inboxes != expected:
        sys.exit(f"FAILED: expected {expected}")
    print("ok: room messages reached every member, the direct message only its addressee")


if __name__ == "__main__":
    main()
