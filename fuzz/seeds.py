"""Writes the fuzz targets' seed inputs (fuzz/corpus/<target>/seed-*) from the clients' own
encoders: kafka-python's requests and record batches (every codec), pika's AMQP frames, MQTT and
STOMP frames as their specs spell them, rocketmq-python-client's protobuf requests, and a
definitions document. Deterministic; re-run after changing it:

    .venv/bin/python fuzz/seeds.py
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def save(target: str, name: str, data: bytes) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{name}").write_bytes(data)


def kafka() -> None:
    from kafka.protocol.api_versions import ApiVersionsRequest
    from kafka.protocol.metadata import MetadataRequest
    from kafka.protocol.produce import ProduceRequest
    from kafka.record.default_records import DefaultRecordBatchBuilder

    def frame(request, correlation_id: int) -> bytes:
        header = struct.pack(">hhi", request.API_KEY, request.API_VERSION, correlation_id)
        header += struct.pack(">h", len(b"fuzz")) + b"fuzz"
        if request.FLEXIBLE_VERSION:
            header += b"\x00"  # no tagged fields
        return header + request.encode()

    def batch(codec: int) -> bytes:
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                            producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                            batch_size=1 << 20)
        for i in range(3):
            builder.append(i, timestamp=1_700_000_000_000 + i, key=f"k{i}".encode(),
                           value=b"v" * (i * 10), headers=[("h", b"x")])
        return bytes(builder.build())

    save("kafka_request", "api-versions", frame(ApiVersionsRequest[0](), 1))
    save("kafka_request", "metadata", frame(MetadataRequest[1](topics=["orders"]), 2))
    from kafka.errors import UnsupportedCodecError
    for codec, name in [(0, "none"), (1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")]:
        try:
            records = batch(codec)
        except UnsupportedCodecError:
            # kafka-python needs optional libraries for these; the committed seeds were made
            # where they were installed, and stay.
            print(f"kafka-python cannot make {name} batches here: seed kept as it is")
            continue
        save("kafka_records", name, records)
        produce = ProduceRequest[3](transactional_id=None, required_acks=-1, timeout=1000,
                                    topics=[("orders", [(0, records)])])
        save("kafka_request", f"produce-{name}", frame(produce, 3))


def amqp() -> None:
    import pika.frame
    import pika.spec
    frames = b"AMQP\x00\x00\x09\x01"
    start_ok = pika.spec.Connection.StartOk(client_properties={"product": "fuzz", "capabilities": {"publisher_confirms": True}},
                                            mechanism="PLAIN", response="\0guest\0guest", locale="en_US")
    for channel, method in [(0, start_ok), (0, pika.spec.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=60)),
                            (0, pika.spec.Connection.Open(virtual_host="/")), (1, pika.spec.Channel.Open()),
                            (1, pika.spec.Queue.Declare(queue="q", durable=True, arguments={"x-max-length": 10, "x-dead-letter-exchange": "dlx"})),
                            (1, pika.spec.Basic.Publish(exchange="", routing_key="q"))]:
        frames += pika.frame.Method(channel, method).marshal()
    properties = pika.spec.BasicProperties(content_type="text/plain", headers={"a": 1, "b": [1, "x"], "c": {"d": True}},
                                           delivery_mode=2, priority=3, expiration="1000")
    frames += pika.frame.Header(1, 5, properties).marshal()
    frames += pika.frame.Body(1, b"hello").marshal()
    save("amqp_frames", "session", frames[8:])
    save("amqp_frames", "header-only", pika.frame.Header(1, 5, properties).marshal())


def mqtt() -> None:
    def string(s: bytes) -> bytes:
        return struct.pack(">H", len(s)) + s

    def packet(kind: int, body: bytes) -> bytes:
        length, encoded = len(body), b""
        while True:
            byte, length = length % 128, length // 128
            encoded += bytes([byte | (0x80 if length else 0)])
            if not length:
                break
        return bytes([kind]) + encoded + body

    connect311 = packet(0x10, string(b"MQTT") + b"\x04\xc2\x00\x3c" + string(b"client") + string(b"guest") + string(b"guest"))
    connect5 = packet(0x10, string(b"MQTT") + b"\x05\x02\x00\x3c" + b"\x05\x11\x00\x00\x00\x3c" + string(b"client5"))
    publish = packet(0x32, string(b"plant/7/temp") + b"\x00\x01" + b"21.5")
    publish5 = packet(0x32, string(b"plant/7/temp") + b"\x00\x01" + b"\x08\x26" + string(b"k") + string(b"v") + b"\x01\x01" + b"21.5")
    subscribe = packet(0x82, b"\x00\x02" + string(b"plant/+/temp") + b"\x01")
    save("mqtt_packets", "v311", connect311 + publish + subscribe + b"\xc0\x00" + b"\xe0\x00")
    save("mqtt_packets", "v5", connect5 + publish5 + packet(0x82, b"\x00\x02\x00" + string(b"$share/g/a/#") + b"\x01"))


def stomp() -> None:
    save("stomp_frames", "session",
         b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"
         b"SUBSCRIBE\nid:0\ndestination:/queue/orders\nack:client-individual\n\n\x00"
         b"SEND\ndestination:/exchange/amq.topic/a.b\ncontent-type:text/plain\ncontent-length:5\n\nhello\x00\n\n"
         b"ACK\nid:1\n\n\x00DISCONNECT\nreceipt:r\n\n\x00")
    save("stomp_frames", "escapes", b"SEND\r\ndestination:/queue/a\\cb\r\nx\\n:y\\\\\r\n\r\nbody\x00")


def rocketmq() -> None:
    from rocketmq.grpc_protocol import definition_pb2, service_pb2
    topic = definition_pb2.Resource(name="orders", resource_namespace="")
    message = definition_pb2.Message(topic=topic, body=b"hello", user_properties={"k": "v"},
                                     system_properties=definition_pb2.SystemProperties(tag="t", keys=["key"], message_id="id", message_group="g"))
    save("rocketmq_requests", "send", service_pb2.SendMessageRequest(messages=[message]).SerializeToString())
    group = definition_pb2.Resource(name="billing")
    receive = service_pb2.ReceiveMessageRequest(group=group, message_queue=definition_pb2.MessageQueue(topic=topic, id=0),
                                                filter_expression=definition_pb2.FilterExpression(type=definition_pb2.TAG, expression="t||u"),
                                                batch_size=16, auto_renew=True)
    save("rocketmq_requests", "receive", receive.SerializeToString())
    save("rocketmq_requests", "route", service_pb2.QueryRouteRequest(topic=topic).SerializeToString())
    save("rocketmq_requests", "ack", service_pb2.AckMessageRequest(group=group, topic=topic, entries=[service_pb2.AckMessageEntry(message_id="id", receipt_handle="rh")]).SerializeToString())


def management() -> None:
    document = {"vhosts": [{"name": "/"}], "users": [{"name": "u", "password_hash": "", "tags": ["management"]}],
                "permissions": [{"user": "u", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
                "exchanges": [{"name": "x", "vhost": "/", "type": "topic", "durable": True, "auto_delete": False, "internal": False, "arguments": {}}],
                "queues": [{"name": "q", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {"x-max-length": 5}}],
                "bindings": [{"source": "x", "vhost": "/", "destination": "q", "destination_type": "queue", "routing_key": "#", "arguments": {}}],
                "topics": [{"name": "t", "partitions": 3, "config": {"cleanup.policy": "compact"}}]}
    save("management_definitions", "definitions", json.dumps(document).encode())


if __name__ == "__main__":
    kafka()
    amqp()
    mqtt()
    stomp()
    rocketmq()
    management()
    for target in sorted(CORPUS.iterdir()):
        print(target.name, len(list(target.iterdir())), "seeds")
