"""A refused AMQP login, as a client and its operator see it (pika against a real Porter).

The client hears only RabbitMQ's words, "ACCESS_REFUSED - Login was refused using authentication
mechanism PLAIN. For details see the broker logfile.", so the broker log must hold the details: one
line naming the peer address, the user and the mechanism, and never the password.
"""

from __future__ import annotations

import re
import time
import uuid

import pika
import pika.exceptions
import pytest

from amqp_helpers import connection_parameters

# tracing's colours, present when the log is not plain text; stripped before matching.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_WAIT_S = 5.0

REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
    "For details see the broker logfile."
)


def refused_lines(server) -> list[str]:
    """The log's login-refused lines, waiting (bounded) for the first to be written."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        log = ANSI.sub("", server.log_path.read_text(errors="replace"))
        lines = [line for line in log.splitlines() if "login refused" in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("who", ["known user, wrong password", "unknown user"])
def test_refused_login_is_logged_with_peer_user_and_mechanism_but_not_the_password(porter, who):
    password = f"pw-{uuid.uuid4().hex}"
    user = "guest" if who.startswith("known") else f"nobody-{uuid.uuid4().hex[:8]}"
    params = connection_parameters(porter.amqp_url, credentials=pika.PlainCredentials(user, password))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params)
    assert "403" in str(info.value) and REFUSED in str(info.value)

    lines = refused_lines(porter)
    assert len(lines) == 1, porter.log_tail()
    line = lines[0]
    assert re.search(r"\bpeer=127\.0\.0\.1:\d+\b", line), line
    assert re.search(rf"\buser={re.escape(user)}(\s|$)", line), line
    assert re.search(r"\bmechanism=PLAIN\b", line), line
    assert password not in porter.log_path.read_text(errors="replace")
