"""What consumers see when the queue they consume from is deleted.

RabbitMQ 3.10 answers the deleting channel with ``queue.delete-ok`` first and sends that
channel's own consumers their ``basic.cancel`` after it: the channel is busy in the delete
until it has replied. Consumers on other channels and connections get ``basic.cancel`` too,
in no fixed order relative to the delete-ok (a RabbitMQ channel is a process of its own; in
ten runs the other channel's cancel came first six times). py-amqp, and so kombu and Celery,
depend on the first rule: a ``basic.cancel`` read while it waits for delete-ok raises
``ConsumerCancelled`` out of ``queue_delete``.
"""

from __future__ import annotations

import socket
import struct

import amqp
import pytest

from raw_amqp import (
    BASIC_CANCEL,
    BASIC_CONSUME,
    BASIC_CONSUME_OK,
    QUEUE_DECLARE,
    QUEUE_DECLARE_OK,
    QUEUE_DELETE,
    QUEUE_DELETE_OK,
    RawConnection,
    basic_consume_args,
    method_frame,
    queue_declare_args,
    queue_delete_args,
    read_shortstr,
)


def cancel_notified_connection(broker) -> RawConnection:
    conn = RawConnection(broker.host, broker.port)
    conn.handshake(broker.username, broker.password, broker.vhost,
                   capabilities=("consumer_cancel_notify",))
    return conn


def read_events(conn: RawConnection, count: int) -> list:
    """The next ``count`` delete-oks and cancels as (channel, name, consumer tag or count)."""
    events = []
    while len(events) < count:
        try:
            got = conn.read_method()
        except socket.timeout:
            break
        assert got is not None, f"server closed the socket after {events}"
        if got.method == QUEUE_DELETE_OK:
            events.append((got.channel, "delete-ok", struct.unpack(">I", got.payload[4:8])[0]))
        elif got.method == BASIC_CANCEL:
            events.append((got.channel, "cancel", read_shortstr(got.payload, 4)[0]))
    return events


@pytest.fixture
def deleter(broker):
    conn = cancel_notified_connection(broker)
    yield conn
    conn.close()


@pytest.fixture
def bystander(broker):
    conn = cancel_notified_connection(broker)
    yield conn
    conn.close()


def test_queue_delete_ok_comes_before_the_deleting_channels_own_basic_cancel(
    deleter, bystander, names
):
    queue = names("q")
    deleter.open_channel(1)
    deleter.open_channel(2)
    bystander.open_channel(1)
    deleter.send(method_frame(1, QUEUE_DECLARE, queue_declare_args(queue)))
    deleter.expect(QUEUE_DECLARE_OK)
    for conn, channel, tag in ((deleter, 1, "own"), (deleter, 2, "sibling"), (bystander, 1, "other")):
        conn.send(method_frame(channel, BASIC_CONSUME, basic_consume_args(queue, tag)))
        conn.expect(BASIC_CONSUME_OK)

    deleter.send(method_frame(1, QUEUE_DELETE, queue_delete_args(queue)))

    events = read_events(deleter, 3)
    assert sorted(events) == [(1, "cancel", "own"), (1, "delete-ok", 0), (2, "cancel", "sibling")]
    assert events.index((1, "delete-ok", 0)) < events.index((1, "cancel", "own")), events
    assert read_events(bystander, 1) == [(1, "cancel", "other")]


def test_py_amqp_queue_delete_returns_while_its_channel_consumes_from_the_queue(broker, names):
    queue = names("q")
    conn = amqp.Connection(f"{broker.host}:{broker.port}", userid=broker.username,
                           password=broker.password, virtual_host=broker.vhost)
    conn.connect()
    try:
        ch = conn.channel()
        ch.queue_declare(queue)
        tag = ch.basic_consume(queue, callback=lambda message: None)
        # Raised ConsumerCancelled here when the cancel came before delete-ok.
        ch.queue_delete(queue)
        with pytest.raises(amqp.ConsumerCancelled) as cancelled:
            conn.drain_events(timeout=5)
        assert cancelled.value.reply_text == tag
    finally:
        conn.close()
