#!/usr/bin/env python3
"""Runs the Eclipse Paho MQTT interoperability tests (vendor/paho.mqtt.testing, unmodified)
against a broker: `mqtt_interop.py {3|5} HOST PORT [TEST...]`.

The suites' own `__main__` blocks parse `-p PORT` and then call `unittest.main()`, which parses
the same arguments again and exits on `-p`; so upstream only runs against localhost:1883. This
runner imports the suite module instead and sets the globals its `__main__` block would set
(host, port, topic lists, exactly as upstream defines them), then runs its test cases."""

import importlib
import sys
import unittest
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "vendor" / "paho.mqtt.testing" / "interoperability"


def main() -> int:
    version, host, port, *tests = sys.argv[1:]
    sys.path.insert(0, str(SUITE))
    module = importlib.import_module({"3": "client_test", "5": "client_test5"}[version])
    module.host = host
    module.port = int(port)
    # As the suites' __main__ blocks set them (MQTT 5's under a prefix).
    prefix = "client_test5/" if version == "5" else ""
    module.topic_prefix = prefix
    module.topics = [prefix + t for t in ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")]
    module.wildtopics = [prefix + t for t in ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")]
    module.nosubscribe_topics = ("test/nosubscribe",)
    program = unittest.main(module=module, argv=["mqtt_interop"] + tests, exit=False, verbosity=2)
    result = program.result
    print(f"paho interoperability MQTT {version}: ran {result.testsRun}, "
          f"failures {len(result.failures)}, errors {len(result.errors)}, skipped {len(result.skipped)}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
