"""Malformed input over raw sockets: what the broker answers, and that nobody else notices.

Every case was run against RabbitMQ 3.10 and the reply code it sent is pinned here.
Where RabbitMQ sends no reply at all (its connection process crashes on an unknown
method or an undecodable field table and the socket is just closed), the test accepts
that as well as a connection.close with the code the spec names for the case, and
says so. After each case, a bystander connection that was open throughout, and a new
connection, must both still work.
"""

from __future__ import annotations

import struct

import pika
import pytest

from raw_amqp import (
    BASIC_GET,
    BASIC_PUBLISH,
    CHANNEL_OPEN,
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    QUEUE_DECLARE,
    QUEUE_DECLARE_OK,
    RawConnection,
    basic_get_args,
    basic_publish_args,
    body_frame,
    content_header_frame,
    content_header_with_headers,
    frame,
    method_frame,
    queue_declare_args,
    shortstr,
)

pytestmark = pytest.mark.timeout(20)


def assert_broker_serves(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", queue, b"still alive")
    assert ch.basic_get(queue, auto_ack=True)[2] == b"still alive"
    ch.close()


@pytest.fixture(autouse=True)
def bystander(broker):
    """A healthy connection open during the bad one; it and a new one must work after."""
    conn = broker.connect()
    assert_broker_serves(conn)
    yield conn
    assert conn.is_open, "the bystander connection was closed by the malformed one"
    assert_broker_serves(conn)
    conn.close()
    fresh = broker.connect()
    assert_broker_serves(fresh)
    fresh.close()


@pytest.fixture
def raw(broker):
    conn = RawConnection(broker.host, broker.port)
    yield conn
    conn.close()


@pytest.fixture
def opened(broker, raw):
    """A raw connection through connection.open-ok, with channel 1 open."""
    raw.handshake(broker.username, broker.password, broker.vhost)
    raw.open_channel(1)
    return raw


def assert_closed_with(raw: RawConnection, code: int, text_part: str, method=None, framing_lost=False):
    """Expect connection.close with ``code``; then (unless the framing itself was broken, when
    the server may not read our close-ok and RabbitMQ waits 3 s before closing) the socket
    must be closed by the server after our close-ok."""
    reason = raw.read_close_or_end()
    assert reason is not None, "server dropped the socket without connection.close"
    got_code, text, class_id, method_id = reason
    assert got_code == code, reason
    assert text_part in text, reason
    if method is not None:
        assert (class_id, method_id) == method, reason
    if not framing_lost:
        assert raw.read_all_until_closed() == b""


# --- before the handshake -----------------------------------------------------------


@pytest.mark.parametrize(
    "greeting",
    [
        b"XYZ" + PROTOCOL_HEADER,
        b"AMQP\x01\x01\x00\x0a",  # AMQP 0-10
        b"AMQP\x00\x01\x00\x00",  # AMQP 1.0
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"\x00" * 8,
    ],
    ids=["garbage-before-header", "amqp-0-10", "amqp-1-0", "http-get", "zeros"],
)
def test_wrong_protocol_header_is_answered_with_the_supported_one(raw, greeting):
    raw.send(greeting)
    assert raw.read_all_until_closed() == PROTOCOL_HEADER


# --- framing --------------------------------------------------------------------------


def test_bad_frame_end_octet_is_a_frame_error(opened):
    payload = struct.pack(">HH", *QUEUE_DECLARE) + queue_declare_args("")
    opened.send(frame(FRAME_METHOD, 1, payload, end=0x00))
    assert_closed_with(opened, 501, "FRAME_ERROR", framing_lost=True)


def test_body_frame_larger_than_frame_max_is_a_frame_error(opened):
    oversized = opened.tune.frame_max + 1000
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x"))
        + content_header_frame(1, oversized)
        + body_frame(1, b"x" * oversized)
    )
    assert_closed_with(opened, 501, "FRAME_ERROR", framing_lost=True)


def test_method_frame_larger_than_frame_max_is_a_frame_error(opened):
    opened.send(frame(FRAME_METHOD, 1, struct.pack(">HH", *QUEUE_DECLARE) + b"x" * 140000))
    assert_closed_with(opened, 501, "FRAME_ERROR", framing_lost=True)


def test_huge_declared_frame_size_is_refused_before_its_payload_arrives(opened):
    # Only the 7-byte frame header: the broker must not wait for (or allocate) 4 GiB.
    opened.send(struct.pack(">BHI", FRAME_METHOD, 1, 0xFFFFFFFF))
    assert_closed_with(opened, 501, "FRAME_ERROR", framing_lost=True)


def test_unknown_frame_type_is_a_frame_error(opened):
    opened.send(frame(5, 1, b"abc"))
    assert_closed_with(opened, 501, "FRAME_ERROR")


def test_method_frame_too_short_for_its_ids_is_a_frame_error(opened):
    opened.send(frame(FRAME_METHOD, 1, b"\x00\x32"))
    assert_closed_with(opened, 501, "FRAME_ERROR")


def test_truncated_method_arguments_are_a_frame_error(opened):
    opened.send(method_frame(1, QUEUE_DECLARE, b"\x00"))
    assert_closed_with(opened, 501, "FRAME_ERROR")


def test_table_longer_than_its_frame_is_a_frame_error(opened):
    args = (struct.pack(">H", 0) + shortstr("q") + b"\x00" + struct.pack(">I", 1000) + b"\x01kt\x01")
    opened.send(method_frame(1, QUEUE_DECLARE, args))
    assert_closed_with(opened, 501, "FRAME_ERROR")


def test_protocol_header_after_the_handshake_is_a_frame_error(opened):
    # Read as a frame of type 'A' (65) with an absurd size.
    opened.send(PROTOCOL_HEADER)
    assert_closed_with(opened, 501, "FRAME_ERROR", framing_lost=True)


# --- unknown methods and bad field values (RabbitMQ drops the socket) -------------------


def assert_refused_or_dropped(raw: RawConnection, acceptable_codes: tuple):
    """RabbitMQ 3.10 closes the socket without a word here; a connection.close with one of
    ``acceptable_codes`` first is what the spec asks for and is accepted too."""
    reason = raw.read_close_or_end()
    if reason is not None:
        assert reason[0] in acceptable_codes, reason
        assert raw.read_all_until_closed() == b""


@pytest.mark.parametrize(
    "channel, method",
    [(1, (999, 10)), (1, (60, 999)), (0, (10, 99))],
    ids=["unknown-class", "unknown-basic-method", "unknown-connection-method"],
)
def test_unknown_class_or_method_ends_the_connection(opened, channel, method):
    opened.send(method_frame(channel, method))
    assert_refused_or_dropped(opened, (540, 503))


def test_undecodable_argument_table_ends_the_connection(opened):
    args = struct.pack(">H", 0) + shortstr("q") + b"\x00" + struct.pack(">I", 3) + b"\x01kZ"
    opened.send(method_frame(1, QUEUE_DECLARE, args))
    assert_refused_or_dropped(opened, (501, 502))


def test_undecodable_headers_table_in_a_content_header_ends_the_connection(opened):
    # RabbitMQ answers 541 INTERNAL_ERROR (its property decoder crashes).
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x"))
        + content_header_with_headers(1, 1, b"\x01kZ")
        + body_frame(1, b"a")
    )
    assert_refused_or_dropped(opened, (541, 501, 502))


# --- frame sequencing -----------------------------------------------------------------


def test_content_header_without_a_publish_is_an_unexpected_frame(opened):
    opened.send(content_header_frame(1, 5))
    assert_closed_with(opened, 505, "UNEXPECTED_FRAME")


def test_body_frame_without_a_publish_is_an_unexpected_frame(opened):
    opened.send(body_frame(1, b"abc"))
    assert_closed_with(opened, 505, "UNEXPECTED_FRAME")


def test_method_where_a_content_header_is_expected_is_an_unexpected_frame(opened):
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x"))
        + method_frame(1, QUEUE_DECLARE, queue_declare_args(""))
    )
    assert_closed_with(opened, 505, "expected content header for class 60", BASIC_PUBLISH)


def test_content_header_of_another_class_is_an_unexpected_frame(opened):
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x"))
        + content_header_frame(1, 1, class_id=50)
        + body_frame(1, b"a")
    )
    assert_closed_with(opened, 505, "got one for class 50", BASIC_PUBLISH)


def test_method_where_a_body_is_expected_is_an_unexpected_frame(opened):
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x"))
        + content_header_frame(1, 3)
        + method_frame(1, QUEUE_DECLARE, queue_declare_args(""))
    )
    assert_closed_with(opened, 505, "expected content body", BASIC_PUBLISH)


def test_body_larger_than_declared_is_refused_and_not_enqueued(broker, opened, names):
    queue = names("q")
    opened.send(method_frame(1, QUEUE_DECLARE, queue_declare_args(queue)))
    opened.expect(QUEUE_DECLARE_OK)
    # 6 body bytes for a declared size of 3, then another method. RabbitMQ notices at
    # the method (it still expects body), other brokers may notice at the body frame.
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", queue))
        + content_header_frame(1, 3)
        + body_frame(1, b"abcdef")
        + method_frame(1, BASIC_GET, basic_get_args(queue))
    )
    reason = opened.read_close_or_end()
    assert reason is not None and reason[0] in (505, 501), reason
    conn = broker.connect()
    try:
        ch = conn.channel()
        assert ch.queue_declare(queue, passive=True).method.message_count == 0
        ch.queue_delete(queue)
    finally:
        conn.close()


def test_body_frame_after_a_zero_size_header_is_an_unexpected_frame(opened):
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x"))
        + content_header_frame(1, 0)
        + body_frame(1, b"x")
    )
    assert_closed_with(opened, 505, "UNEXPECTED_FRAME")


def test_empty_body_frames_are_allowed(opened):
    opened.send(method_frame(1, QUEUE_DECLARE, queue_declare_args("")))
    opened.expect(QUEUE_DECLARE_OK)
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x"))
        + content_header_frame(1, 2)
        + body_frame(1, b"")
        + body_frame(1, b"ab")
        + method_frame(1, QUEUE_DECLARE, queue_declare_args(""))
    )
    opened.expect(QUEUE_DECLARE_OK)


def test_heartbeat_on_a_non_zero_channel_is_an_unexpected_frame(opened):
    opened.send(frame(FRAME_HEARTBEAT, 1, b""))
    assert_closed_with(opened, 505, "UNEXPECTED_FRAME")


# --- channels ---------------------------------------------------------------------------


def test_method_on_a_channel_never_opened_is_a_channel_error(opened):
    opened.send(method_frame(5, QUEUE_DECLARE, queue_declare_args("")))
    assert_closed_with(opened, 504, "CHANNEL_ERROR - expected 'channel.open'", QUEUE_DECLARE)


def test_opening_an_open_channel_again_is_a_channel_error(opened):
    opened.send(method_frame(1, CHANNEL_OPEN, shortstr("")))
    assert_closed_with(opened, 504, "second 'channel.open' seen", CHANNEL_OPEN)


def test_channel_method_on_channel_zero_is_a_channel_error(opened):
    opened.send(method_frame(0, QUEUE_DECLARE, queue_declare_args("")))
    assert_closed_with(opened, 504, "CHANNEL_ERROR", QUEUE_DECLARE)


def test_connection_method_on_a_channel_is_command_invalid(opened):
    opened.send(method_frame(1, (10, 40), shortstr("/") + shortstr("") + b"\x00"))
    assert_closed_with(opened, 503, "COMMAND_INVALID", (10, 40))


def test_a_channel_id_above_channel_max_is_accepted_as_rabbitmq_does(broker, raw):
    # RabbitMQ counts open channels rather than checking ids against channel-max, and
    # clients' own suites (aiormq's) open channel 65535 under a channel-max of 2047.
    raw.handshake(broker.username, broker.password, broker.vhost, channel_max=3)
    raw.open_channel(65535)
    raw.open_channel(4)


def test_opening_more_channels_than_channel_max_is_not_allowed(broker, raw):
    # RabbitMQ counts open channels: with every one of channel-max in use, one more is
    # refused: "NOT_ALLOWED - number of channels opened (3) has reached the negotiated
    # channel_max (3)".
    raw.handshake(broker.username, broker.password, broker.vhost, channel_max=3)
    for channel in (1, 2, 3):
        raw.open_channel(channel)
    raw.send(method_frame(4, CHANNEL_OPEN, shortstr("")))
    assert_closed_with(raw, 530, "channel_max")


# --- connections that stop half-way --------------------------------------------------------


def test_truncated_frame_then_close_does_not_disturb_others(broker, opened, bystander):
    whole = method_frame(1, QUEUE_DECLARE, queue_declare_args(""))
    opened.send(whole[: len(whole) // 2])
    opened.close()
    assert_broker_serves(bystander)


def test_truncated_frame_left_hanging_does_not_block_others(broker, opened, bystander):
    whole = method_frame(1, BASIC_PUBLISH, basic_publish_args("", "x")) + content_header_frame(1, 100)
    opened.send(whole + body_frame(1, b"y" * 100)[:20])
    # The half-sent frame stays pending while others are served.
    assert_broker_serves(bystander)
    other = broker.connect()
    assert_broker_serves(other)
    other.close()


def test_silence_after_the_protocol_header_does_not_block_others(broker, raw, bystander):
    raw.send(PROTOCOL_HEADER)
    assert raw.read_frame() is not None  # connection.start, then say nothing more
    assert_broker_serves(bystander)


def test_connection_dropped_mid_body_loses_only_that_message(broker, opened, bystander, names):
    queue = names("q")
    opened.send(method_frame(1, QUEUE_DECLARE, queue_declare_args(queue)))
    opened.expect(QUEUE_DECLARE_OK)
    opened.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args("", queue))
        + content_header_frame(1, 10)
        + body_frame(1, b"0123456789")
        + method_frame(1, BASIC_PUBLISH, basic_publish_args("", queue))
        + content_header_frame(1, 10)
        + body_frame(1, b"01234")
    )
    opened.send(method_frame(1, QUEUE_DECLARE, queue_declare_args(queue))[:5])
    opened.close()
    ch = bystander.channel()
    ok = ch.queue_declare(queue, passive=True)
    assert ok.method.message_count == 1
    assert ch.basic_get(queue, auto_ack=True)[2] == b"0123456789"
    ch.queue_delete(queue)
