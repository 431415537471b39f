"""Connection-level behaviour: authentication, vhosts, tuning, heartbeats, properties, close."""

from __future__ import annotations

import time

import pika
import pytest
from pika.exceptions import (
    ConnectionWrongStateError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

from raw_amqp import RawConnection, Tune

EXPECTED_CAPABILITIES = (
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
    "consumer_priorities",
)


def test_plain_login_opens_a_usable_connection(broker):
    conn = broker.connect()
    try:
        assert conn.is_open
        ch = conn.channel()
        assert ch.is_open
        declared = ch.queue_declare("", exclusive=True)
        assert declared.method.queue
    finally:
        conn.close()


def test_wrong_password_is_refused_with_access_refused(broker):
    with pytest.raises(ProbableAuthenticationError) as info:
        broker.connect(credentials=pika.PlainCredentials(broker.username, "not-the-password"))
    # pika wraps the broker's connection.close (sent thanks to authentication_failure_close).
    assert "403" in str(info.value)
    assert "ACCESS_REFUSED" in str(info.value)


def test_unknown_user_is_refused_with_access_refused(broker):
    with pytest.raises(ProbableAuthenticationError) as info:
        broker.connect(credentials=pika.PlainCredentials("no-such-user-pytest", "x"))
    assert "403" in str(info.value)
    assert "ACCESS_REFUSED" in str(info.value)


def test_unknown_vhost_is_refused_with_not_allowed(broker):
    with pytest.raises(ProbableAccessDeniedError) as info:
        broker.connect(virtual_host="no-such-vhost-pytest")
    text = str(info.value)
    assert "530" in text
    assert "NOT_ALLOWED" in text
    assert "vhost no-such-vhost-pytest not found" in text


def test_server_properties_name_product_version_and_capabilities(conn):
    props = conn._impl.server_properties
    assert props.get("product")
    assert props.get("version")
    capabilities = props["capabilities"]
    for name in EXPECTED_CAPABILITIES:
        assert capabilities.get(name) is True, f"capability {name!r}: {capabilities.get(name)!r}"
    assert conn.publisher_confirms_supported
    assert conn.basic_nack_supported
    assert conn.consumer_cancel_notify_supported
    assert conn.exchange_exchange_bindings_supported


def test_tune_proposes_rabbitmq_default_limits(broker):
    # Read with a raw client: pika caps frame_max at 131072 before it ever sees the offer.
    raw = RawConnection(broker.host, broker.port)
    try:
        raw.handshake(broker.username, broker.password, broker.vhost)
        assert raw.tune == Tune(channel_max=2047, frame_max=131072, heartbeat=60)
    finally:
        raw.close()


def test_heartbeat_none_accepts_the_servers_proposal(broker):
    conn = broker.connect(heartbeat=None)
    try:
        assert conn._impl.params.heartbeat == 60
    finally:
        conn.close()


def test_heartbeats_keep_an_idle_connection_alive(broker):
    conn = broker.connect(heartbeat=5)
    try:
        assert conn._impl.params.heartbeat == 5
        ch = conn.channel()
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=1)
        assert conn.is_open
        checker = conn._impl._heartbeat_checker
        # The broker must have sent heartbeats: pika would otherwise have closed the
        # connection after 10 s without inbound bytes.
        assert checker is not None and checker._heartbeat_frames_received >= 2
        declared = ch.queue_declare("", exclusive=True)
        assert declared.method.queue
    finally:
        if conn.is_open:
            conn.close()


def test_client_close_ends_the_connection(broker):
    conn = broker.connect()
    ch = conn.channel()
    conn.close()
    assert conn.is_closed
    assert ch.is_closed
    with pytest.raises(ConnectionWrongStateError):
        conn.channel()
    with pytest.raises(ConnectionWrongStateError):
        conn.close()
