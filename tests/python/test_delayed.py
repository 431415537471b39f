"""The `x-delayed-message` exchange type with the rabbitmq-delayed-message-exchange plugin's
names: `x-delayed-type` says how it routes, a positive `x-delay` header (ms) holds a message
that long, after which it is routed with `x-delay` negated. Restart cases at the end.

Warren-only: the RabbitMQ the suite is checked against has no delayed-message plugin (its
behaviour was read from the plugin's source, tests and issues; see README)."""

from __future__ import annotations

import contextlib
import time

import pika
import pytest

from amqp_support import channel_closed_by_broker, get_bodies
from broker_process import start_warren_broker
from queue_args_support import poll_get, wait_for_count

pytestmark = pytest.mark.warren_only


def delayed(delay, **props) -> pika.BasicProperties:
    return pika.BasicProperties(headers={"x-delay": delay}, **props)


def delayed_exchange(ch, names, kind="direct", durable=False, **arguments) -> str:
    exchange = names("delayed")
    ch.exchange_declare(exchange, exchange_type="x-delayed-message", durable=durable,
                        arguments={"x-delayed-type": kind, **arguments})
    return exchange


def bound_queue(ch, names, exchange, routing_key="", suffix="q") -> str:
    queue = names(suffix)
    ch.queue_declare(queue)
    ch.queue_bind(queue, exchange, routing_key=routing_key)
    return queue


def collect(conn, ch, queue, n, timeout_s=10.0) -> list:
    """Consumes ``n`` messages (no-ack); returns (body, headers) in arrival order."""
    got = []
    tag = ch.basic_consume(queue, lambda c, m, p, body: got.append((body, p.headers)), auto_ack=True)
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    ch.basic_cancel(tag)
    return got


def test_a_delayed_message_is_routed_when_its_delay_is_over_with_x_delay_negated(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names)
    queue = bound_queue(ch, names, exchange, "rk")
    ch.basic_publish(exchange, "rk", b"later", delayed(300))
    # Held: not in the queue right after the publish (a passive declare is a round trip).
    assert ch.queue_declare(queue, passive=True).method.message_count == 0
    method, props, body = poll_get(ch, queue, timeout_s=5)
    assert body == b"later"
    assert props.headers["x-delay"] == -300


def test_delayed_messages_arrive_in_order_of_their_delays(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names)
    queue = bound_queue(ch, names, exchange)
    delays = [500, 100, 300, 200, 100, 400]
    for i, d in enumerate(delays):
        ch.basic_publish(exchange, "", f"{d}:{i}".encode(), delayed(d))
    got = [body for body, _ in collect(conn, ch, queue, len(delays))]
    assert got == [b"100:1", b"100:4", b"200:3", b"300:2", b"400:5", b"500:0"]


@pytest.mark.parametrize("kind, bindings, keys, routed", [
    ("direct", ["mykey"], ["mykey", "noroute", "mykey"], 2),
    ("fanout", ["mykey", "", "otherkey"], ["mykey", "noroute", "mykey"], 3),
    ("topic", ["a.b.c", "a.*.c", "a.#"], ["a.b.c", "a.z.c", "a.j.k", "b.b.c"], 3),
])
def test_routes_as_its_delayed_type_with_and_without_delay(conn, names, kind, bindings, keys, routed):
    # The plugin's routing tests, with a delay of 0 (routed at once) and of 50 ms.
    ch = conn.channel()
    ch.confirm_delivery()
    exchange = delayed_exchange(ch, names, kind)
    queue = names("q")
    ch.queue_declare(queue)
    for b in bindings:
        ch.queue_bind(queue, exchange, routing_key=b)
    for k in keys:
        ch.basic_publish(exchange, k, b"now", delayed(0))
    assert ch.queue_declare(queue, passive=True).method.message_count == routed
    ch.queue_purge(queue)
    for k in keys:
        ch.basic_publish(exchange, k, b"soon", delayed(50))
    assert wait_for_count(ch, queue, routed) == routed


def test_headers_typed_delayed_exchange_matches_headers(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names, "headers")
    queue = names("q")
    ch.queue_declare(queue)
    ch.queue_bind(queue, exchange, arguments={"x-match": "all", "color": "red"})
    ch.basic_publish(exchange, "", b"red", pika.BasicProperties(headers={"x-delay": 50, "color": "red"}))
    ch.basic_publish(exchange, "", b"blue", pika.BasicProperties(headers={"x-delay": 50, "color": "blue"}))
    assert poll_get(ch, queue)[2] == b"red"
    time.sleep(0.2)
    assert get_bodies(ch, queue) == []


@pytest.mark.parametrize("header", [None, 0, -500, "soon", True, 4294967296])
def test_messages_without_a_usable_positive_delay_are_routed_at_once_unchanged(ch, names, header):
    exchange = delayed_exchange(ch, names)
    queue = bound_queue(ch, names, exchange)
    headers = {} if header is None else {"x-delay": header}
    ch.basic_publish(exchange, "", b"now", pika.BasicProperties(headers=headers))
    method, props, _ = ch.basic_get(queue, auto_ack=True)
    assert method is not None, "routed before the publisher's next round trip returns"
    assert (props.headers or {}).get("x-delay") == header


def test_a_string_delay_header_is_read_as_a_number(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names)
    queue = bound_queue(ch, names, exchange)
    ch.basic_publish(exchange, "", b"later", delayed("200"))
    assert ch.queue_declare(queue, passive=True).method.message_count == 0
    _, props, body = poll_get(ch, queue)
    assert body == b"later" and props.headers["x-delay"] == -200


def test_exchange_to_exchange_after_the_delay(conn, names):
    # The plugin's e2e case: a delayed exchange bound to a direct exchange with the queue.
    ch = conn.channel()
    exchange = delayed_exchange(ch, names)
    inner = names("inner")
    ch.exchange_declare(inner, exchange_type="direct")
    queue = bound_queue(ch, names, inner)
    ch.exchange_bind(inner, exchange)
    for d in [300, 100, 200]:
        ch.basic_publish(exchange, "", str(d).encode(), delayed(d))
    assert [b for b, _ in collect(conn, ch, queue, 3)] == [b"100", b"200", b"300"]


def test_a_released_message_is_not_delayed_again_by_a_second_delayed_exchange(conn, names):
    ch = conn.channel()
    first = delayed_exchange(ch, names)
    second = names("second")
    ch.exchange_declare(second, exchange_type="x-delayed-message", arguments={"x-delayed-type": "fanout"})
    ch.exchange_bind(second, first)
    queue = bound_queue(ch, names, second)
    ch.basic_publish(first, "", b"once", delayed(200))
    _, props, body = poll_get(ch, queue)
    assert body == b"once" and props.headers["x-delay"] == -200


def test_a_mandatory_delayed_message_is_returned_at_once_and_still_delivered(conn, names):
    # As with the plugin: the exchange routes nothing at publish time (a documented limit).
    ch = conn.channel()
    exchange = delayed_exchange(ch, names)
    queue = bound_queue(ch, names, exchange)
    returned = []
    ch.add_on_return_callback(lambda c, m, p, body: returned.append((m.reply_code, body)))
    ch.basic_publish(exchange, "", b"held", delayed(200), mandatory=True)
    conn.process_data_events(time_limit=0.1)
    assert returned == [(312, b"held")]
    assert poll_get(ch, queue)[2] == b"held"


def test_publisher_confirms_ack_delayed_messages(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    exchange = delayed_exchange(ch, names, durable=True)
    queue = bound_queue(ch, names, exchange)
    ch.basic_publish(exchange, "", b"persistent", delayed(100, delivery_mode=2))  # raises on nack
    ch.basic_publish(exchange, "", b"transient", delayed(100))
    assert wait_for_count(ch, queue, 2) == 2
    ch.exchange_delete(exchange)


def test_a_transaction_commits_delayed_messages(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names, durable=True)
    queue = bound_queue(ch, names, exchange)
    ch.tx_select()
    ch.basic_publish(exchange, "", b"in tx", delayed(100, delivery_mode=2))
    ch.tx_commit()
    assert poll_get(ch, queue)[2] == b"in tx"
    ch.exchange_delete(exchange)


def test_the_alternate_exchange_gets_a_delayed_message_only_if_unroutable_when_due(conn, names):
    ch = conn.channel()
    alternate = names("ae")
    ch.exchange_declare(alternate, exchange_type="fanout")
    spare = bound_queue(ch, names, alternate, suffix="spare")
    exchange = delayed_exchange(ch, names, **{"alternate-exchange": alternate})
    queue = bound_queue(ch, names, exchange, "bound")
    ch.basic_publish(exchange, "bound", b"routed", delayed(100))
    ch.basic_publish(exchange, "unbound", b"unroutable", delayed(100))
    assert poll_get(ch, queue)[2] == b"routed"
    assert poll_get(ch, spare)[2] == b"unroutable"
    assert get_bodies(ch, spare) == []


def test_bindings_are_looked_at_when_the_delay_is_over(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names)
    queue = names("late")
    ch.queue_declare(queue)
    ch.basic_publish(exchange, "", b"bound later", delayed(400))
    ch.queue_bind(queue, exchange, routing_key="")
    assert poll_get(ch, queue)[2] == b"bound later"


def test_deleting_the_exchange_drops_what_it_holds(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names)
    queue = bound_queue(ch, names, exchange)
    ch.basic_publish(exchange, "", b"never", delayed(200))
    ch.exchange_delete(exchange)
    time.sleep(0.4)
    assert get_bodies(ch, queue) == []


def test_a_delayed_deduplication_exchange_deduplicates_when_it_routes(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names, "x-message-deduplication", **{"x-cache-size": 10})
    queue = bound_queue(ch, names, exchange, "any")
    for body in [b"first", b"second"]:
        ch.basic_publish(exchange, "other", body,
                         pika.BasicProperties(headers={"x-delay": 100, "x-deduplication-header": "k"}))
    assert poll_get(ch, queue)[2] == b"first"
    time.sleep(0.3)
    assert get_bodies(ch, queue) == []


@pytest.mark.parametrize("arguments, text", [
    ({}, "Invalid argument, 'x-delayed-type' must be an existing exchange type"),
    ({"x-delayed-type": 5}, "Invalid argument, 'x-delayed-type' must be an existing exchange type"),
    ({"x-delayed-type": "x-delayed-message"},
     "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"),
    ({"x-delayed-type": "x-message-deduplication"}, "'x-cache-size' must be an integer greater than 0"),
])
def test_bad_delayed_type_is_refused_as_the_plugin_does(ch, names, arguments, text):
    with channel_closed_by_broker(406, text):
        ch.exchange_declare(names("bad"), exchange_type="x-delayed-message", arguments=arguments)


def test_an_unknown_delayed_type_is_refused_as_an_unknown_type_is(ch, names):
    with channel_closed_by_broker(406, "unknown exchange type 'x-not-valid-type'"):
        ch.exchange_declare(names("bad"), exchange_type="x-delayed-message",
                            arguments={"x-delayed-type": "x-not-valid-type"})


def test_redeclare_ignores_a_different_delayed_type_as_the_plugin_does(conn, names):
    ch = conn.channel()
    exchange = delayed_exchange(ch, names, "direct")
    ch.exchange_declare(exchange, exchange_type="x-delayed-message", arguments={"x-delayed-type": "topic"})
    with channel_closed_by_broker(406, "inequivalent arg 'type'"):
        ch.exchange_declare(exchange, exchange_type="direct")


# --- restarts ------------------------------------------------------------------------------


@contextlib.contextmanager
def warren_on(data_dir):
    broker = start_warren_broker(data_dir=data_dir)
    conn = broker.connect()
    try:
        yield conn, conn.channel()
    finally:
        if conn.is_open:
            conn.close()
        assert broker.warren.stop() == 0
        assert broker.warren.problems() == []


def durable_fabric(ch, name="delayed.restart"):
    ch.exchange_declare(name, exchange_type="x-delayed-message", durable=True,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_declare(name, durable=True)
    ch.queue_bind(name, name, routing_key="rk")


@pytest.mark.timeout(60)
def test_persistent_delayed_messages_survive_a_restart_before_their_delay_is_over(tmp_path):
    delays = [3000, 1000, 2500, 1500, 2000]
    with warren_on(tmp_path) as (conn, ch):
        durable_fabric(ch)
        ch.confirm_delivery()
        for d in delays:
            ch.basic_publish("delayed.restart", "rk", str(d).encode(), delayed(d, delivery_mode=2))
        ch.basic_publish("delayed.restart", "rk", b"transient", delayed(1000, delivery_mode=1))
        assert ch.queue_declare("delayed.restart", durable=True, passive=True).method.message_count == 0
    with warren_on(tmp_path) as (conn, ch):
        got = collect(conn, ch, "delayed.restart", len(delays), timeout_s=15)
        assert [b for b, _ in got] == [b"1000", b"1500", b"2000", b"2500", b"3000"]
        assert [h["x-delay"] for _, h in got] == [-1000, -1500, -2000, -2500, -3000]
        time.sleep(0.2)
        # Transient messages are held in memory only, as in a durable queue.
        assert get_bodies(ch, "delayed.restart") == []


@pytest.mark.timeout(60)
def test_delayed_messages_due_while_the_broker_was_down_are_routed_at_start(tmp_path):
    with warren_on(tmp_path) as (conn, ch):
        durable_fabric(ch)
        ch.confirm_delivery()
        ch.basic_publish("delayed.restart", "rk", b"due while down", delayed(500, delivery_mode=2))
    time.sleep(0.8)
    with warren_on(tmp_path) as (conn, ch):
        _, props, body = poll_get(ch, "delayed.restart", timeout_s=2)
        assert body == b"due while down" and props.headers["x-delay"] == -500
        # A clean stop makes the queue's and the store's acks durable at once.
    with warren_on(tmp_path) as (conn, ch):
        # Routed, consumed and acked: it does not come back.
        time.sleep(0.3)
        assert get_bodies(ch, "delayed.restart") == []


@pytest.mark.timeout(60)
def test_a_deleted_durable_delayed_exchange_does_not_come_back(tmp_path):
    with warren_on(tmp_path) as (conn, ch):
        durable_fabric(ch)
        ch.confirm_delivery()
        ch.basic_publish("delayed.restart", "rk", b"dropped", delayed(500, delivery_mode=2))
        ch.exchange_delete("delayed.restart")
    with warren_on(tmp_path) as (conn, ch):
        durable_fabric(ch)
        time.sleep(0.8)
        assert get_bodies(ch, "delayed.restart") == []
