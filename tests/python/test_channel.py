"""Channel lifecycle: many channels per connection, independent closes, channel.flow."""

from __future__ import annotations

import pytest
from pika.exceptions import ChannelClosedByBroker, ChannelWrongStateError

from amqp_support import connection_closed_by_broker, get_bodies


def test_closing_one_channel_leaves_the_others_working(conn, names):
    channels = [conn.channel() for _ in range(64)]
    assert len({c.channel_number for c in channels}) == 64
    victim = channels.pop(31)
    victim.close()
    assert victim.is_closed
    queue = names("q")
    channels[0].queue_declare(queue, auto_delete=False)
    try:
        for i, c in enumerate(channels):
            assert c.is_open
            c.basic_publish("", queue, f"m{i}".encode())
            # A get on the publishing channel sees that channel's own publish.
            assert get_bodies(c, queue) == [f"m{i}".encode()]
    finally:
        channels[0].queue_delete(queue)


def test_operations_on_a_closed_channel_raise(conn):
    ch = conn.channel()
    ch.close()
    with pytest.raises(ChannelWrongStateError):
        ch.queue_declare("", exclusive=True)
    with pytest.raises(ChannelWrongStateError):
        ch.basic_publish("", "anything", b"x")
    assert conn.is_open
    assert conn.channel().queue_declare("", exclusive=True).method.queue


def test_a_channel_closed_by_the_broker_does_not_affect_its_siblings(conn, names):
    doomed = conn.channel()
    sibling = conn.channel()
    with pytest.raises(ChannelClosedByBroker):
        doomed.queue_declare(names("missing"), passive=True)
    assert doomed.is_closed
    with pytest.raises(ChannelWrongStateError):
        doomed.basic_publish("", "x", b"x")
    assert sibling.is_open
    assert conn.is_open
    assert sibling.queue_declare("", exclusive=True).method.queue


def test_channel_numbers_are_reusable_after_close(conn):
    first = conn.channel(channel_number=7)
    first.close()
    again = conn.channel(channel_number=7)
    assert again.is_open
    assert again.queue_declare("", exclusive=True).method.queue


def test_channel_flow_active_is_confirmed(ch):
    assert ch.flow(True) is True
    assert ch.is_open


def test_channel_flow_inactive_from_client_is_not_implemented(conn):
    # RabbitMQ does not let clients pause deliveries with channel.flow: it closes the
    # whole connection with 540 NOT_IMPLEMENTED.
    ch = conn.channel()
    with connection_closed_by_broker(540, "active=false"):
        ch.flow(False)
