"""Helpers for the RocketMQ tests: the official Python client (rocketmq-python-client) pointed at a
Porter server's RocketMQ endpoint, and a raw gRPC stub for requests the client would refuse to
send (oversized bodies, malformed protobuf)."""

from __future__ import annotations

import contextlib
import time

import grpc
from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer
from rocketmq.grpc_protocol import definition_pb2, service_pb2, service_pb2_grpc

WAIT_S = 20.0


def config(server, credentials: Credentials | None = None) -> ClientConfiguration:
    return ClientConfiguration(server.rocketmq_endpoint, credentials or Credentials(), request_timeout=10)


@contextlib.contextmanager
def producer(server, *topics, checker=None, credentials: Credentials | None = None):
    c = config(server, credentials)
    p = Producer(c, topics, checker=checker) if checker else Producer(c, topics)
    p.startup()
    try:
        yield p
    finally:
        p.shutdown()


@contextlib.contextmanager
def simple_consumer(server, group, subscriptions: dict, await_s: int = 1,
                    credentials: Credentials | None = None):
    c = SimpleConsumer(config(server, credentials), group, subscriptions, await_duration=await_s)
    c.startup()
    try:
        yield c
    finally:
        c.shutdown()


def message(topic, body: bytes, tag=None, keys=None, group=None, properties=None, deliver_at_s=None) -> Message:
    m = Message()
    m.topic = topic
    m.body = body
    if tag:
        m.tag = tag
    for key in keys or []:
        m.keys = key  # the client's setter adds one key at a time
    if group:
        m.message_group = group
    if deliver_at_s:
        m.delivery_timestamp = deliver_at_s
    for k, v in (properties or {}).items():
        m.add_property(k, v)
    return m


def receive_all(consumer, want: int, invisible_s: int = 30, ack: bool = True, wait_s: float = WAIT_S):
    """Receives until `want` messages came (acking each unless told not to) or time runs out."""
    got = []
    deadline = time.monotonic() + wait_s
    while len(got) < want and time.monotonic() < deadline:
        for m in consumer.receive(32, invisible_s):
            got.append(m)
            if ack:
                consumer.ack(m)
    return got


def tag(expression: str) -> FilterExpression:
    return FilterExpression(expression)


def sql(expression: str) -> FilterExpression:
    return FilterExpression(expression, definition_pb2.FilterType.SQL)


def raw_stub(server):
    channel = grpc.insecure_channel(server.rocketmq_endpoint)
    return channel, service_pb2_grpc.MessagingServiceStub(channel)


def raw_send(stub, topic: str, body: bytes, **system):
    request = service_pb2.SendMessageRequest()
    m = request.messages.add()
    m.topic.name = topic
    m.body = body
    m.system_properties.message_id = system.pop("message_id", "raw-1")
    m.system_properties.message_type = system.pop("message_type", definition_pb2.MessageType.NORMAL)
    for k, v in system.items():
        setattr(m.system_properties, k, v)
    return stub.SendMessage(request, timeout=10)


Code = definition_pb2.Code
