"""Queue arguments of durable queues across a Warren restart: TTL deadlines count from the
original enqueue time, dead-letter settings, priorities, limits and quorum delivery limits
still apply. Needs Warren processes of its own (skipped against an external broker)."""

from __future__ import annotations

import contextlib
import time

import pika
import pytest

from broker_process import start_warren_broker
from queue_args_support import poll_get, x_death

pytestmark = [pytest.mark.warren_only, pytest.mark.timeout(60)]

PERSISTENT = pika.BasicProperties(delivery_mode=2)


@contextlib.contextmanager
def warren_on(data_dir):
    broker = start_warren_broker(data_dir=data_dir)
    conn = broker.connect()
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()
        assert broker.warren.stop() == 0
        assert broker.warren.problems() == []


def durable_dlx(ch):
    ch.exchange_declare("restart.dlx", exchange_type="fanout", durable=True)
    ch.queue_declare("restart.dlq", durable=True)
    ch.queue_bind("restart.dlq", "restart.dlx")


def test_ttl_counts_from_the_enqueue_time_across_a_restart(tmp_path):
    with warren_on(tmp_path) as ch:
        durable_dlx(ch)
        ch.queue_declare("restart.ttl", durable=True,
                         arguments={"x-message-ttl": 1500, "x-dead-letter-exchange": "restart.dlx"})
        ch.queue_declare("restart.exp", durable=True)
        ch.confirm_delivery()
        ch.basic_publish("", "restart.ttl", b"queue ttl", PERSISTENT)
        ch.basic_publish("", "restart.exp", b"expiration",
                         pika.BasicProperties(delivery_mode=2, expiration="1500"))
        ch.basic_publish("", "restart.exp", b"no ttl", PERSISTENT)
    time.sleep(1.6)
    with warren_on(tmp_path) as ch:
        # Both deadlines passed while Warren was down: the messages go at once, not 1.5 s
        # after the restart.
        started = time.monotonic()
        method, props, body = poll_get(ch, "restart.dlq", timeout_s=1.0)
        assert body == b"queue ttl", time.monotonic() - started
        assert [(d["reason"], d["queue"]) for d in x_death(props)] == [("expired", "restart.ttl")]
        assert ch.queue_declare("restart.ttl", durable=True, passive=True).method.message_count == 0
        assert poll_get(ch, "restart.exp", timeout_s=0.5)[2] == b"no ttl"
        assert ch.basic_get("restart.exp")[0] is None


def test_unexpired_ttl_keeps_running_after_a_restart(tmp_path):
    with warren_on(tmp_path) as ch:
        ch.queue_declare("restart.ttl", durable=True, arguments={"x-message-ttl": 3000})
        ch.confirm_delivery()
        ch.basic_publish("", "restart.ttl", b"m", PERSISTENT)
    with warren_on(tmp_path) as ch:
        assert ch.queue_declare("restart.ttl", durable=True, passive=True).method.message_count == 1
        deadline = time.monotonic() + 5
        while ch.queue_declare("restart.ttl", durable=True, passive=True).method.message_count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ch.queue_declare("restart.ttl", durable=True, passive=True).method.message_count == 0


def test_dead_letter_priority_and_limit_settings_survive_a_restart(tmp_path):
    with warren_on(tmp_path) as ch:
        durable_dlx(ch)
        ch.queue_declare("restart.src", durable=True, arguments={
            "x-dead-letter-exchange": "restart.dlx", "x-max-priority": 5})
        ch.queue_declare("restart.full", durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.confirm_delivery()
        for body, priority in [(b"low", 1), (b"high", 5)]:
            ch.basic_publish("", "restart.src", body, pika.BasicProperties(delivery_mode=2, priority=priority))
        ch.basic_publish("", "restart.full", b"first", PERSISTENT)
    with warren_on(tmp_path) as ch:
        method, _, body = ch.basic_get("restart.src", auto_ack=False)
        assert body == b"high"
        ch.basic_nack(method.delivery_tag, requeue=False)
        _, props, body = poll_get(ch, "restart.dlq")
        assert body == b"high" and x_death(props)[0]["reason"] == "rejected"
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.NackError):
            ch.basic_publish("", "restart.full", b"second", PERSISTENT)


def test_quorum_queue_keeps_its_delivery_limit_across_a_restart(tmp_path):
    with warren_on(tmp_path) as ch:
        durable_dlx(ch)
        ch.queue_declare("restart.quorum", durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 0, "x-dead-letter-exchange": "restart.dlx"})
        ch.confirm_delivery()
        ch.basic_publish("", "restart.quorum", b"poison", PERSISTENT)
    with warren_on(tmp_path) as ch:
        method, props, _ = ch.basic_get("restart.quorum", auto_ack=False)
        assert props.headers["x-delivery-count"] == 0
        ch.basic_nack(method.delivery_tag, requeue=True)
        _, props, body = poll_get(ch, "restart.dlq")
        assert body == b"poison" and x_death(props)[0]["reason"] == "delivery_limit"
