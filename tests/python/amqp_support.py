"""Small helpers shared by the pika tests: expected broker errors and draining queues."""

from __future__ import annotations

import contextlib
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker


@contextlib.contextmanager
def channel_closed_by_broker(code: int, text_part: str):
    """Expect the broker to close the channel with ``code`` and a text containing ``text_part``.

    RabbitMQ's texts read ``NOT_FOUND - no queue 'q' in vhost '/'``; asserting on the code
    and a distinctive fragment pins the behaviour without freezing incidental wording.
    """
    with pytest.raises(ChannelClosedByBroker) as info:
        yield info
    assert info.value.reply_code == code, info.value
    assert text_part in info.value.reply_text, info.value


@contextlib.contextmanager
def connection_closed_by_broker(code: int, text_part: str):
    with pytest.raises(ConnectionClosedByBroker) as info:
        yield info
    assert info.value.reply_code == code, info.value
    assert text_part in info.value.reply_text, info.value


def get_bodies(ch, queue: str, auto_ack: bool = True) -> list:
    """Every message currently in ``queue``, fetched with basic.get, as bodies."""
    bodies = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return bodies
        bodies.append(body)


def wait_until(conn: pika.BlockingConnection, predicate, timeout_s: float = 5.0) -> bool:
    """Pump the connection's events until ``predicate()`` holds or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        conn.process_data_events(time_limit=min(0.05, remaining))
    return True


def queue_exists(broker, name: str) -> bool:
    """Whether ``name`` exists, checked by a passive declare on a throwaway connection."""
    probe = broker.connect()
    try:
        probe.channel().queue_declare(name, passive=True)
        return True
    except ChannelClosedByBroker as err:
        # 405: it exists, as some other connection's exclusive queue.
        assert err.reply_code in (404, 405), err
        return err.reply_code == 405
    finally:
        if probe.is_open:
            probe.close()


def exchange_exists(broker, name: str) -> bool:
    probe = broker.connect()
    try:
        probe.channel().exchange_declare(name, passive=True)
        return True
    except ChannelClosedByBroker as err:
        assert err.reply_code == 404, err
        return False
    finally:
        if probe.is_open:
            probe.close()


def message_count(broker, name: str) -> int:
    probe = broker.connect()
    try:
        return probe.channel().queue_declare(name, passive=True).method.message_count
    finally:
        probe.close()
