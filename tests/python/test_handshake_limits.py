"""What an unauthenticated client can make the broker hold: raw sockets on the handshake.

RabbitMQ 3.10 (checked): before connection.tune-ok its frame_max is 4096, and a larger
frame ends the connection (it closes the socket after a 3 s delay, sending nothing);
Warren answers connection.close 501 FRAME_ERROR, then closes. Its handshake_timeout (10 s)
drops a client that does not finish the handshake; Warren's is ``--handshake-timeout-ms``,
shortened here so the test stays quick.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from broker_process import start_warren_broker
from raw_amqp import (
    CONNECTION_CLOSE,
    CONNECTION_START,
    CONNECTION_START_OK,
    CONNECTION_TUNE,
    PROTOCOL_HEADER,
    RawConnection,
    longstr,
    method_frame,
    shortstr,
)

pytestmark = pytest.mark.timeout(30)


def start_ok_frame(frame_size: int) -> bytes:
    """A PLAIN guest/guest start-ok padded (in client-properties) to exactly ``frame_size``."""

    def build(padding: bytes) -> bytes:
        properties = shortstr("padding") + b"S" + longstr(padding)
        args = longstr(properties) + shortstr("PLAIN") + longstr(b"\0guest\0guest")
        return method_frame(0, CONNECTION_START_OK, args + shortstr("en_US"))

    empty = len(build(b""))
    return build(b"x" * (frame_size - empty))


def test_a_start_ok_of_4096_bytes_is_accepted(broker):
    c = RawConnection(broker.host, broker.port)
    c.send(PROTOCOL_HEADER)
    c.expect(CONNECTION_START)
    frame = start_ok_frame(4096)
    assert len(frame) == 4096
    c.send(frame)
    c.expect(CONNECTION_TUNE)
    c.close()


def test_a_frame_larger_than_4096_bytes_before_tune_ends_the_connection(broker):
    c = RawConnection(broker.host, broker.port, timeout_s=10)
    c.send(PROTOCOL_HEADER)
    c.expect(CONNECTION_START)
    try:
        c.send(start_ok_frame(64 * 1024))
        got = c.read_method()
    except ConnectionResetError:
        got = None
    if got is not None:  # Warren says why; RabbitMQ just closes.
        assert got.method == CONNECTION_CLOSE
        assert got.close_reason()[0] == 501
    c.close()


@pytest.fixture
def impatient_warren():
    started = start_warren_broker(("--handshake-timeout-ms", "300"))
    yield started
    started.warren.stop()
    assert not started.warren.problems(), started.warren.output()
    started.warren.cleanup()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    begun = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return time.monotonic() - begun < seconds


@pytest.mark.warren_only
def test_a_client_that_sends_nothing_is_dropped_after_the_handshake_timeout(impatient_warren):
    with socket.create_connection((impatient_warren.host, impatient_warren.port)) as s:
        assert closed_within(s, 3)


@pytest.mark.warren_only
def test_a_client_that_stalls_mid_handshake_is_dropped(impatient_warren):
    with socket.create_connection((impatient_warren.host, impatient_warren.port)) as s:
        s.sendall(PROTOCOL_HEADER)
        # connection.start arrives; the client never answers it.
        assert closed_within(s, 3)
