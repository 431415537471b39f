"""Resource alarms: a publisher that outruns memory is blocked (connection.blocked, not
read), consumers are still served, and the publisher is unblocked once memory is back
under the high watermark. Warren-only: it needs a broker started with a small watermark.
"""

from __future__ import annotations

import time

import pika
import pytest

from broker_process import start_warren_broker

pytestmark = [pytest.mark.warren_only, pytest.mark.timeout(60)]

BODY = b"x" * (256 * 1024)  # large enough that freeing it returns memory to the OS


def test_flooding_publisher_is_blocked_then_unblocked_when_a_consumer_drains():
    broker = start_warren_broker(extra_args=("--memory-high-watermark", "64MiB", "--memory-paging-ratio", "2"))
    try:
        producer = broker.connect(blocked_connection_timeout=None)
        events = []
        producer.add_on_connection_blocked_callback(lambda _c, m: events.append(("blocked", m.method.reason)))
        producer.add_on_connection_unblocked_callback(lambda _c, _m: events.append(("unblocked", None)))
        pch = producer.channel()
        pch.queue_declare("flood", auto_delete=False)
        for _ in range(600):  # up to 150 MiB; the alarm fires long before
            pch.basic_publish("", "flood", BODY)
            producer.process_data_events(time_limit=0.02)
            if events:
                break
        deadline = time.monotonic() + 5
        while not events and time.monotonic() < deadline:
            producer.process_data_events(time_limit=0.1)
        assert events and events[0] == ("blocked", "low on memory"), events

        # A connection that only consumes is still served while the alarm lasts.
        consumer = broker.connect()
        cch = consumer.channel()
        drained = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            method, _, body = cch.basic_get("flood", auto_ack=True)
            if method is None:
                break
            assert body == BODY
            drained += 1
        assert drained > 0

        deadline = time.monotonic() + 15
        while ("unblocked", None) not in events and time.monotonic() < deadline:
            producer.process_data_events(time_limit=0.1)
        assert ("unblocked", None) in events, events
        # Once unblocked, publishing works again.
        pch.confirm_delivery()
        pch.basic_publish("", "flood", b"after")
        consumer.close()
        producer.close()
    finally:
        broker.warren.stop()
        assert broker.warren.problems() == []
        broker.warren.cleanup()
