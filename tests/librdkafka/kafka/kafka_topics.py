"""A stand-in for Apache Kafka's bin/kafka-topics.sh, for librdkafka's test suite against Porter.

A few librdkafka tests shell out to `$KAFKA_PATH/bin/kafka-topics.sh --bootstrap-server $BROKERS ...`
(tests/test.c: test_kafka_topics()) to create a topic with configs (0052, 0077), add partitions
(0045) or delete a topic (0045). Porter has no Kafka distribution, so scripts/librdkafka-suite.sh
points KAFKA_PATH at tests/librdkafka/kafka, whose bin/kafka-topics.sh runs this with
confluent-kafka's AdminClient: the same CreateTopics / CreatePartitions / DeleteTopics requests the
real tool sends to the broker. Only the options those tests use are accepted; anything else is an
error (exit 1), as is any error the broker returns, so a test sees a failure as it would with Kafka.
"""

from __future__ import annotations

import argparse
import sys

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

TIMEOUT_S = 30


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kafka-topics.sh (Porter stand-in)")
    parser.add_argument("--bootstrap-server", required=True)
    action = parser.add_mutually_exclusive_group(required=True)
    for name in ("create", "alter", "delete", "list", "describe"):
        action.add_argument(f"--{name}", action="store_true")
    parser.add_argument("--topic")
    parser.add_argument("--partitions", type=int)
    parser.add_argument("--replication-factor", type=int)
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--if-not-exists", action="store_true")
    parser.add_argument("--if-exists", action="store_true")
    args = parser.parse_args(argv)
    if (args.create or args.alter or args.delete) and not args.topic:
        parser.error("--topic is required")
    if args.alter and args.partitions is None:
        parser.error("--alter supports only --partitions here")
    return args


def configs(pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--config {pair}: expected KEY=VALUE")
        result[key] = value
    return result


def wait(futures: dict) -> None:
    for name, future in futures.items():
        future.result(timeout=TIMEOUT_S)
        print(f"{name}: done")


def main(argv: list[str]) -> int:
    args = parse(argv)
    admin = AdminClient({"bootstrap.servers": args.bootstrap_server})
    try:
        if args.create:
            topic = NewTopic(
                args.topic,
                num_partitions=args.partitions if args.partitions is not None else -1,
                replication_factor=args.replication_factor if args.replication_factor is not None else -1,
                config=configs(args.config),
            )
            try:
                wait(admin.create_topics([topic], operation_timeout=TIMEOUT_S))
            except Exception as err:  # noqa: BLE001 - the tool reports any failure and exits 1
                if args.if_not_exists and "TOPIC_ALREADY_EXISTS" in str(err):
                    return 0
                raise
            print(f"Created topic {args.topic}.")
        elif args.alter:
            wait(admin.create_partitions([NewPartitions(args.topic, args.partitions)],
                                         operation_timeout=TIMEOUT_S))
        elif args.delete:
            wait(admin.delete_topics([args.topic], operation_timeout=TIMEOUT_S))
        elif args.list:
            for name in sorted(admin.list_topics(timeout=TIMEOUT_S).topics):
                print(name)
        else:
            metadata = admin.list_topics(topic=args.topic, timeout=TIMEOUT_S)
            for name, topic in sorted(metadata.topics.items()):
                print(f"Topic: {name}\tPartitionCount: {len(topic.partitions)}\t"
                      f"Error: {topic.error}")
    except Exception as err:  # noqa: BLE001
        print(f"Error while executing topic command : {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
