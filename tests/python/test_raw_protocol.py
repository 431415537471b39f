"""Protocol behaviour that pika cannot exercise, driven by the hand-written client.

pika picks consumer tags itself, refuses duplicate tags before sending them, and can
encode only some field-table types; these tests write the frames themselves.
"""

from __future__ import annotations

import re
import struct

import pytest

from raw_amqp import (
    BASIC_CONSUME,
    BASIC_CONSUME_OK,
    BASIC_GET,
    BASIC_GET_OK,
    BASIC_PUBLISH,
    FRAME_BODY,
    FRAME_HEADER,
    QUEUE_DECLARE,
    QUEUE_DECLARE_OK,
    RawConnection,
    basic_consume_args,
    basic_get_args,
    basic_publish_args,
    body_frame,
    content_header_with_headers,
    method_frame,
    queue_declare_args,
    read_shortstr,
    shortstr,
)


@pytest.fixture
def raw(broker):
    conn = RawConnection(broker.host, broker.port)
    conn.handshake(broker.username, broker.password, broker.vhost)
    conn.open_channel(1)
    yield conn
    conn.close()


def declare_server_named_queue(raw: RawConnection, channel: int = 1) -> str:
    # exclusive bit set (0x04): the queue goes away with this connection
    args = struct.pack(">H", 0) + shortstr("") + b"\x04" + struct.pack(">I", 0)
    raw.send(method_frame(channel, QUEUE_DECLARE, args))
    ok = raw.expect(QUEUE_DECLARE_OK)
    return read_shortstr(ok.payload, 4)[0]


def test_server_generates_a_consumer_tag_when_the_client_sends_none(raw):
    queue = declare_server_named_queue(raw)
    raw.send(method_frame(1, BASIC_CONSUME, basic_consume_args(queue, "")))
    ok = raw.expect(BASIC_CONSUME_OK)
    tag = read_shortstr(ok.payload, 4)[0]
    assert re.fullmatch(r"amq\.ctag-[A-Za-z0-9_-]{22}", tag), tag


def test_duplicate_consumer_tag_on_one_channel_closes_the_connection(raw):
    queue = declare_server_named_queue(raw)
    raw.send(method_frame(1, BASIC_CONSUME, basic_consume_args(queue, "dup")))
    raw.expect(BASIC_CONSUME_OK)
    raw.send(method_frame(1, BASIC_CONSUME, basic_consume_args(queue, "dup")))
    code, text, class_id, method_id = raw.expect_connection_close()
    assert code == 530
    assert "NOT_ALLOWED - attempt to reuse consumer tag 'dup'" in text
    assert (class_id, method_id) == BASIC_CONSUME


def test_the_same_consumer_tag_on_two_channels_is_allowed(raw):
    queue = declare_server_named_queue(raw)
    raw.open_channel(2)
    for channel in (1, 2):
        raw.send(method_frame(channel, BASIC_CONSUME, basic_consume_args(queue, "shared")))
        ok = raw.expect(BASIC_CONSUME_OK)
        assert read_shortstr(ok.payload, 4)[0] == "shared"


def field(name: str, kind: bytes, value: bytes) -> bytes:
    return shortstr(name) + kind + value


def sized(encoded: bytes) -> bytes:
    """A table, array or long string: 32-bit length, then the bytes."""
    return struct.pack(">I", len(encoded)) + encoded


# One field of every type RabbitMQ's table codec knows, including those pika cannot send.
EVERY_FIELD_TYPE = b"".join([
    field("bool", b"t", b"\x01"),
    field("i8", b"b", struct.pack(">b", -5)),
    field("u8", b"B", struct.pack(">B", 250)),
    field("i16", b"s", struct.pack(">h", -300)),
    field("u16", b"u", struct.pack(">H", 65000)),
    field("i32", b"I", struct.pack(">i", -70000)),
    field("u32", b"i", struct.pack(">I", 4000000000)),
    field("i64", b"l", struct.pack(">q", -(2**40))),
    field("f32", b"f", struct.pack(">f", 1.5)),
    field("f64", b"d", struct.pack(">d", -2.25)),
    field("decimal", b"D", struct.pack(">Bi", 2, 314)),
    field("longstr", b"S", struct.pack(">I", 5) + b"hello"),
    field("bytes", b"x", struct.pack(">I", 3) + b"\x00\xff\x10"),
    field("array", b"A", sized(b"t\x00" + b"I" + struct.pack(">i", 9) + b"S" + sized(b"s"))),
    field("timestamp", b"T", struct.pack(">Q", 1700000000)),
    field("table", b"F", sized(field("k", b"t", b"\x00") + field("n", b"V", b""))),
    field("void", b"V", b""),
])


def publish_with_headers(raw: RawConnection, exchange: str, routing_key: str, table: bytes, body: bytes):
    raw.send(
        method_frame(1, BASIC_PUBLISH, basic_publish_args(exchange, routing_key))
        + content_header_with_headers(1, len(body), table)
        + body_frame(1, body)
    )


def get_raw_message(raw: RawConnection, queue: str) -> tuple:
    """basic.get with no-ack; returns (content header payload, body)."""
    raw.send(method_frame(1, BASIC_GET, basic_get_args(queue)))
    raw.expect(BASIC_GET_OK)
    header = raw.read_frame()
    assert header is not None and header.kind == FRAME_HEADER
    body_size = struct.unpack(">Q", header.payload[4:12])[0]
    body = b""
    while len(body) < body_size:
        chunk = raw.read_frame()
        assert chunk is not None and chunk.kind == FRAME_BODY
        body += chunk.payload
    return header.payload, body


def test_headers_of_every_field_type_pass_through_byte_for_byte(raw):
    queue = declare_server_named_queue(raw)
    publish_with_headers(raw, "", queue, EVERY_FIELD_TYPE, b"payload")
    header, body = get_raw_message(raw, queue)
    assert body == b"payload"
    flags = struct.unpack(">H", header[12:14])[0]
    assert flags == 0x2000
    table_size = struct.unpack(">I", header[14:18])[0]
    assert header[18 : 18 + table_size] == EVERY_FIELD_TYPE


def test_headers_exchange_routes_messages_carrying_every_field_type(raw):
    queue = declare_server_named_queue(raw)
    bind_args = field("x-match", b"S", struct.pack(">I", 3) + b"any") + field(
        "longstr", b"S", struct.pack(">I", 5) + b"hello"
    )
    bind = (struct.pack(">H", 0) + shortstr(queue) + shortstr("amq.headers") + shortstr("")
            + b"\x00" + struct.pack(">I", len(bind_args)) + bind_args)
    raw.send(method_frame(1, (50, 20), bind))
    raw.expect((50, 21))
    publish_with_headers(raw, "amq.headers", "", EVERY_FIELD_TYPE, b"matched")
    header, body = get_raw_message(raw, queue)
    assert body == b"matched"
    table_size = struct.unpack(">I", header[14:18])[0]
    assert header[18 : 18 + table_size] == EVERY_FIELD_TYPE
