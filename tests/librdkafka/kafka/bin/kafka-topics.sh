#!/usr/bin/env bash
# Porter's stand-in for Kafka's kafka-topics.sh (see ../kafka_topics.py). Run by librdkafka's tests
# through $KAFKA_PATH/bin/; scripts/librdkafka-suite.sh sets LIBRDKAFKA_SUITE_PYTHON to a Python
# with confluent-kafka.
exec "${LIBRDKAFKA_SUITE_PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/../kafka_topics.py" "$@"
