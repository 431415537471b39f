"""Warren's own process behaviour: start-up line, graceful shutdown, restart on its data.

These need a Warren process of their own (``fresh_warren``) and are skipped when the
suite runs against an external broker through WARREN_TEST_URL.
"""

from __future__ import annotations

import pika
import pytest
from pika.exceptions import ConnectionClosedByBroker

from broker_process import LISTENING_RE, start_warren_broker

pytestmark = [pytest.mark.warren_only, pytest.mark.timeout(40)]


def test_startup_line_names_the_ephemeral_port_and_the_data_dir(fresh_warren):
    warren = fresh_warren.warren
    output = warren.output()
    match = LISTENING_RE.search(output)
    assert match and match.group(1) == "127.0.0.1"
    assert int(match.group(2)) == fresh_warren.port != 0
    assert str(warren.data_dir) in output
    conn = fresh_warren.connect()
    assert conn.is_open
    conn.close()


def test_sigterm_closes_clients_with_connection_forced_and_exits_zero(fresh_warren):
    conn = fresh_warren.connect()
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)
    other = fresh_warren.connect()
    assert fresh_warren.warren.stop() == 0
    for client in (conn, other):
        with pytest.raises(ConnectionClosedByBroker) as info:
            for _ in range(50):
                client.process_data_events(time_limit=0.1)
        assert info.value.reply_code == 320
        assert "CONNECTION_FORCED" in info.value.reply_text


def test_durable_queue_and_persistent_messages_survive_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = start_warren_broker(data_dir=data_dir)
    try:
        conn = first.connect()
        ch = conn.channel()
        ch.queue_declare("restart.durable", durable=True)
        ch.queue_declare("restart.transient", durable=False)
        ch.exchange_declare("restart.ex", exchange_type="topic", durable=True)
        ch.queue_bind("restart.durable", "restart.ex", routing_key="keep.#")
        ch.confirm_delivery()
        ch.basic_publish("restart.ex", "keep.1", b"persistent", pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("restart.ex", "keep.2", b"transient", pika.BasicProperties(delivery_mode=1))
        conn.close()
    finally:
        assert first.warren.stop() == 0
        assert first.warren.problems() == []

    second = start_warren_broker(data_dir=data_dir)
    try:
        conn = second.connect()
        ch = conn.channel()
        assert ch.queue_declare("restart.durable", passive=True).method.message_count == 1
        method, _, body = ch.basic_get("restart.durable", auto_ack=True)
        assert body == b"persistent"
        ch.basic_publish("restart.ex", "keep.3", b"binding survived")
        assert ch.basic_get("restart.durable", auto_ack=True)[2] == b"binding survived"
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            conn.channel().queue_declare("restart.transient", passive=True)
        assert info.value.reply_code == 404
        conn.close()
    finally:
        assert second.warren.stop() == 0
        assert second.warren.problems() == []


def test_listening_on_every_ipv6_address_takes_ipv4_and_ipv6_clients():
    # Warren's default listener is `[::]`, as RabbitMQ's: Node.js resolves `localhost` to
    # ::1 first, Python to 127.0.0.1; both must reach the broker.
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    broker = start_warren_broker(listen="[::]:0")
    try:
        assert broker.host == "[::]"
        for host in ("127.0.0.1", "::1"):
            params = broker.params(host=host)
            conn = pika.BlockingConnection(params)  # guest: loopback over either family
            conn.channel().queue_declare("", exclusive=True)
            conn.close()
    finally:
        assert broker.warren.stop() == 0
        broker.warren.cleanup()
