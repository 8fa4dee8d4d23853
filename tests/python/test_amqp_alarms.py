"""Resource alarms: when the broker passes its memory high watermark (or the data disk runs low),
publishing connections get `connection.blocked` and are not read until it clears, while other
connections (consumers draining the backlog) carry on. Porter-only: it needs a configured limit."""

from __future__ import annotations

import time

import pika
import pytest

from amqp_helpers import connection_parameters
from conftest import AMQP_TEST_URL, PORTER_BIN, PorterServer, free_loopback_port

WAIT_S = 10.0


@pytest.mark.skipif(bool(AMQP_TEST_URL), reason="needs a Porter started with an alarm limit")
def test_publishers_are_blocked_while_the_memory_alarm_is_raised(tmp_path):
    config = tmp_path / "porter.toml"
    # Any resident size is above one byte: the alarm is raised at the first sample.
    config.write_text("[alarms]\nmemory_high_watermark_bytes = 1\n")
    (tmp_path / "data").mkdir()
    server = PorterServer(PORTER_BIN, tmp_path / "data", tmp_path / "porter.log", free_loopback_port())
    server.extra_args = ["--config", str(config)]
    server.start()
    try:
        publisher = pika.BlockingConnection(connection_parameters(server.amqp_url))
        reasons: list[str] = []
        publisher.add_on_connection_blocked_callback(lambda _c, frame: reasons.append(frame.method.reason))
        ch = publisher.channel()
        ch.queue_declare("alarmed")
        time.sleep(1.0)  # past the first alarm sample
        ch.basic_publish("", "alarmed", b"held back")
        deadline = time.monotonic() + WAIT_S
        while not reasons and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        assert reasons == ["low on memory"], "a publishing connection is told why it is blocked"

        # Other connections are not blocked: a consumer can still declare, get and ack.
        consumer = pika.BlockingConnection(connection_parameters(server.amqp_url))
        cch = consumer.channel()
        assert cch.queue_declare("alarmed", passive=True).method.message_count == 0, \
            "the blocked publish was not taken in"
        method, _props, _body = cch.basic_get("alarmed", auto_ack=True)
        assert method is None
        consumer.close()
        assert "resource alarm raised" in server.log_tail(200)
    finally:
        server.stop()
