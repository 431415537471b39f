"""A hand-written AMQP 0-9-1 client, just enough to send what no library would send.

The malformed-input tests need to write frames byte by byte (bad frame ends, oversized
frames, headers without a method, unknown method ids) and to read exactly what the
server answers. Only the handful of methods the tests use are encoded here.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8

CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_PUBLISH = (60, 40)


def shortstr(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">B", len(raw)) + raw


def longstr(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def frame(kind: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


def method_frame(channel: int, method: tuple, args: bytes = b"") -> bytes:
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *method) + args)


def content_header_frame(channel: int, body_size: int, class_id: int = 60) -> bytes:
    # class, weight, body size, property flags (none set)
    return frame(FRAME_HEADER, channel, struct.pack(">HHQH", class_id, 0, body_size, 0))


def body_frame(channel: int, body: bytes) -> bytes:
    return frame(FRAME_BODY, channel, body)


def basic_publish_args(exchange: str, routing_key: str) -> bytes:
    # reserved short, exchange, routing key, bits (mandatory, immediate)
    return struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key) + b"\x00"


def queue_declare_args(queue: str) -> bytes:
    # reserved short, queue, bits (passive durable exclusive auto-delete no-wait), table
    return struct.pack(">H", 0) + shortstr(queue) + b"\x00" + struct.pack(">I", 0)


@dataclass
class Frame:
    kind: int
    channel: int
    payload: bytes

    @property
    def method(self) -> tuple:
        assert self.kind == FRAME_METHOD, self
        return struct.unpack(">HH", self.payload[:4])

    def close_reason(self) -> tuple:
        """(reply code, reply text, class id, method id) of a connection/channel close."""
        args = self.payload[4:]
        code = struct.unpack(">H", args[:2])[0]
        length = args[2]
        text = args[3 : 3 + length].decode()
        class_id, method_id = struct.unpack(">HH", args[3 + length : 7 + length])
        return code, text, class_id, method_id


@dataclass
class Tune:
    channel_max: int
    frame_max: int
    heartbeat: int


class RawConnection:
    """A socket speaking AMQP by hand. Reads time out so a silent server fails the test."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.buffer = b""
        self.tune: Tune | None = None

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_some(self) -> bytes:
        """Bytes from the socket; b'' when the server closed it."""
        return self.sock.recv(65536)

    def read_until_closed(self) -> bytes:
        """Everything the server sends until it closes the socket."""
        chunks = [self.buffer]
        self.buffer = b""
        while True:
            chunk = self.recv_some()
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def read_frame(self) -> Frame | None:
        """The next frame, or None if the server closed the socket first."""
        while True:
            if len(self.buffer) >= 7:
                kind, channel, size = struct.unpack(">BHI", self.buffer[:7])
                if len(self.buffer) >= 8 + size:
                    payload = self.buffer[7 : 7 + size]
                    assert self.buffer[7 + size] == FRAME_END, self.buffer[: 8 + size]
                    self.buffer = self.buffer[8 + size :]
                    return Frame(kind, channel, payload)
            chunk = self.recv_some()
            if not chunk:
                return None
            self.buffer += chunk

    def read_method(self) -> Frame | None:
        """The next method frame, skipping heartbeats."""
        while True:
            got = self.read_frame()
            if got is None or got.kind != FRAME_HEARTBEAT:
                return got

    def expect(self, method: tuple) -> Frame:
        got = self.read_method()
        assert got is not None, f"server closed the socket while {method} was expected"
        assert got.method == method, (got.method, got.payload)
        return got

    def handshake(self, user: str, password: str, vhost: str, frame_max: int = 0,
                  channel_max: int = 0, capabilities: tuple = ()) -> None:
        """Protocol header through connection.open-ok, without heartbeats.

        ``frame_max``/``channel_max`` of 0 accept the server's proposal. ``capabilities``
        names the client capabilities to announce as true (``consumer_cancel_notify`` for
        server-sent basic.cancel); without any, the client-properties table is empty.
        """
        self.send(PROTOCOL_HEADER)
        self.expect(CONNECTION_START)
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        properties = b""
        if capabilities:
            flags = b"".join(shortstr(name) + b"t\x01" for name in capabilities)
            properties = shortstr("capabilities") + b"F" + longstr(flags)
        start_ok = (
            longstr(properties)  # client-properties table
            + shortstr("PLAIN")
            + longstr(response)
            + shortstr("en_US")
        )
        self.send(method_frame(0, CONNECTION_START_OK, start_ok))
        tune = self.expect(CONNECTION_TUNE)
        server_channel_max, server_frame_max, server_heartbeat = struct.unpack(
            ">HIH", tune.payload[4:12]
        )
        self.tune = Tune(server_channel_max, server_frame_max, server_heartbeat)
        channel_max = channel_max or server_channel_max
        frame_max = frame_max or server_frame_max
        self.send(method_frame(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, 0)))
        self.send(method_frame(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + b"\x00"))
        self.expect(CONNECTION_OPEN_OK)

    def open_channel(self, channel: int) -> None:
        self.send(method_frame(channel, CHANNEL_OPEN, shortstr("")))
        self.expect(CHANNEL_OPEN_OK)

    def read_all_until_closed(self) -> bytes:
        """Everything the server sends before closing, whether it closes with FIN or RST.

        A server that closes while unread input is pending makes the kernel send a reset;
        the bytes it wrote before are still delivered first, so they are kept.
        """
        data = self.buffer
        self.buffer = b""
        try:
            while True:
                chunk = self.recv_some()
                if not chunk:
                    return data
                data += chunk
        except ConnectionResetError:
            return data

    def read_close_or_end(self) -> tuple | None:
        """The reason of the server's connection.close, answered with close-ok, or None if
        the server dropped the socket without one."""
        while True:
            try:
                got = self.read_method()
            except ConnectionResetError:
                return None
            if got is None:
                return None
            if got.kind == FRAME_METHOD and got.method == CONNECTION_CLOSE:
                try:
                    self.send(method_frame(0, CONNECTION_CLOSE_OK))
                except OSError:
                    pass
                return got.close_reason()

    def expect_connection_close(self) -> tuple:
        """Read up to the server's connection.close; answer close-ok; return its reason."""
        while True:
            got = self.read_method()
            assert got is not None, "server closed the socket without connection.close"
            if got.kind == FRAME_METHOD and got.method == CONNECTION_CLOSE:
                reason = got.close_reason()
                try:
                    self.send(method_frame(0, CONNECTION_CLOSE_OK))
                except OSError:
                    pass
                return reason

    def expect_channel_close(self, channel: int) -> tuple:
        got = self.read_method()
        assert got is not None, "server closed the socket without channel.close"
        assert got.channel == channel and got.method == CHANNEL_CLOSE, (got.channel, got.payload)
        return got.close_reason()


QUEUE_DELETE = (50, 40)
QUEUE_DELETE_OK = (50, 41)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_CANCEL = (60, 30)
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
BASIC_GET_EMPTY = (60, 72)
HEADERS_FLAG = 0x2000


def basic_consume_args(queue: str, consumer_tag: str = "", no_ack: bool = False) -> bytes:
    bits = 0x02 if no_ack else 0x00
    return (struct.pack(">H", 0) + shortstr(queue) + shortstr(consumer_tag)
            + bytes([bits]) + struct.pack(">I", 0))


def queue_delete_args(queue: str) -> bytes:
    # reserved short, queue, bits (if-unused if-empty no-wait)
    return struct.pack(">H", 0) + shortstr(queue) + b"\x00"


def basic_get_args(queue: str, no_ack: bool = True) -> bytes:
    return struct.pack(">H", 0) + shortstr(queue) + bytes([1 if no_ack else 0])


def content_header_with_headers(channel: int, body_size: int, table: bytes) -> bytes:
    """A basic content header whose only property is ``headers`` (``table`` is encoded)."""
    payload = struct.pack(">HHQH", 60, 0, body_size, HEADERS_FLAG) + struct.pack(">I", len(table)) + table
    return frame(FRAME_HEADER, channel, payload)


def read_shortstr(payload: bytes, offset: int) -> tuple:
    length = payload[offset]
    return payload[offset + 1 : offset + 1 + length].decode(), offset + 1 + length
