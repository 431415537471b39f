"""What a connection's close handshake has already done when each side sees it.

RabbitMQ 3.10 stops every channel of a connection (their unacked messages go back to their
queues, their consumers are removed) before it sends ``connection.close-ok`` to a client that
closes, and before it sends its own ``connection.close`` on a connection error. A client
that has read either frame can count on its messages being back in their queues, even while
its socket is still open. The connection is held open here with a raw client that does not
close its socket after the handshake.
"""

from __future__ import annotations

import struct

import pytest

from raw_amqp import (
    BASIC_CONSUME,
    BASIC_CONSUME_OK,
    CONNECTION_CLOSE,
    CONNECTION_CLOSE_OK,
    FRAME_METHOD,
    RawConnection,
    basic_consume_args,
    method_frame,
    shortstr,
)

BASIC_DELIVER = (60, 60)


@pytest.fixture
def holder(broker):
    """A raw connection with channel 1 open; the test decides when its socket closes."""
    conn = RawConnection(broker.host, broker.port)
    conn.handshake(broker.username, broker.password, broker.vhost)
    conn.open_channel(1)
    yield conn
    conn.close()


def hold_one_unacked_message(holder: RawConnection, ch, queue: str) -> None:
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"held")
    holder.send(method_frame(1, BASIC_CONSUME, basic_consume_args(queue, "holder")))
    holder.expect(BASIC_CONSUME_OK)
    holder.expect(BASIC_DELIVER)
    holder.read_frame()  # content header
    holder.read_frame()  # body


def counts(ch, queue: str) -> tuple:
    ok = ch.queue_declare(queue, passive=True).method
    return ok.message_count, ok.consumer_count


def test_close_ok_comes_after_the_connections_channels_gave_back_their_messages(
    holder, ch, names
):
    queue = names("q")
    hold_one_unacked_message(holder, ch, queue)
    assert counts(ch, queue) == (0, 1)

    close = struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)
    holder.send(method_frame(0, CONNECTION_CLOSE, close))
    holder.expect(CONNECTION_CLOSE_OK)

    # The holder's socket is still open.
    assert counts(ch, queue) == (1, 0)
    method, _props, body = ch.basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"held", True)


def test_server_connection_close_comes_after_the_connections_channels_gave_back_their_messages(
    holder, ch, names
):
    queue = names("q")
    hold_one_unacked_message(holder, ch, queue)
    # A reused consumer tag is a connection error (530).
    holder.send(method_frame(1, BASIC_CONSUME, basic_consume_args(queue, "holder")))
    got = holder.read_method()
    assert got is not None and got.kind == FRAME_METHOD and got.method == CONNECTION_CLOSE, got
    assert got.close_reason()[0] == 530

    # No close-ok sent yet.
    assert counts(ch, queue) == (1, 0)
    holder.send(method_frame(0, CONNECTION_CLOSE_OK))
    assert holder.read_all_until_closed() == b""
