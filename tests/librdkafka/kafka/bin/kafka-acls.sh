#!/usr/bin/env bash
# Porter has no ACLs (docs/kafka.md: "No SASL, TLS or ACLs yet"), so this stand-in for Kafka's
# kafka-acls.sh refuses, and a test that needs an ACL fails visibly instead of passing vacuously.
# The tests that call it (0109, 0115, 0119) are listed in tests/librdkafka/not-applicable.txt.
echo "kafka-acls.sh: Porter has no ACLs; refusing: $*" >&2
exit 1
