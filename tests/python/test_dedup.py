"""Deduplication with the rabbitmq-message-deduplication plugin's names: queues declared with
`x-message-deduplication` drop a message whose `x-deduplication-header` matches one in the
queue; `x-message-deduplication` exchanges drop messages whose header they saw within their
cache (`x-cache-size`, `x-cache-ttl`, per-message `x-cache-ttl`) and route the rest to every
binding. Restart cases at the end.

Warren-only: the RabbitMQ the suite is checked against has no deduplication plugin (its
behaviour was read from the plugin's source and tests; see README)."""

from __future__ import annotations

import contextlib
import time
from decimal import Decimal

import pika
import pytest

from amqp_support import channel_closed_by_broker, get_bodies
from broker_process import start_warren_broker
from queue_args_support import poll_get, wait_for_count

pytestmark = pytest.mark.warren_only

DEDUP = "x-deduplication-header"
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def keyed(key, **props) -> pika.BasicProperties:
    return pika.BasicProperties(headers={DEDUP: key}, **props)


def dedup_queue(ch, names, **arguments) -> str:
    queue = names("dq")
    ch.queue_declare(queue, arguments={"x-message-deduplication": True, **arguments})
    return queue


def count(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


# --- queue level ---------------------------------------------------------------------------


def test_queue_drops_a_message_whose_key_is_already_in_the_queue(ch, names):
    queue = dedup_queue(ch, names)
    for body, key in [(b"s1", "order-1"), (b"s2", "order-1"), (b"i1", 42), (b"i2", 42),
                      (b"d1", Decimal("4.2")), (b"d2", Decimal("4.2")), (b"n1", None), (b"n2", None), (b"s3", "order-1")]:
        ch.basic_publish("", queue, body, keyed(key))
    assert get_bodies(ch, queue) == [b"s1", b"i1", b"d1", b"n1"]


def test_keys_of_different_types_do_not_collide(ch, names):
    queue = dedup_queue(ch, names)
    # (pika sends no floats; decimals stand for the other numeric type.)
    for body, key in [(b"str", "42"), (b"int", 42), (b"decimal", Decimal(42)), (b"bool", True)]:
        ch.basic_publish("", queue, body, keyed(key))
    assert get_bodies(ch, queue) == [b"str", b"int", b"decimal", b"bool"]


def test_messages_without_the_header_are_never_deduplicated(ch, names):
    queue = dedup_queue(ch, names)
    for _ in range(3):
        ch.basic_publish("", queue, b"plain", pika.BasicProperties(headers={"other": 1}))
    assert count(ch, queue) == 3


def test_a_queue_without_the_argument_keeps_duplicates(ch, names):
    queue = names("plain")
    ch.queue_declare(queue, arguments={"x-message-deduplication": False})
    ch.basic_publish("", queue, b"a", keyed("k"))
    ch.basic_publish("", queue, b"b", keyed("k"))
    assert count(ch, queue) == 2


def test_a_dropped_duplicate_is_confirmed_with_basic_ack(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    queue = names("dq")
    ch.queue_declare(queue, durable=True, arguments={"x-message-deduplication": True})
    # Persistent messages to a durable queue: confirms wait for the queue's answer.
    for body in [b"first", b"again", b"and again"]:
        ch.basic_publish("", queue, body, keyed("k", delivery_mode=2))  # raises on a nack
    assert get_bodies(ch, queue) == [b"first"]
    ch.queue_delete(queue)


def test_the_key_is_held_while_the_message_is_unacked_and_freed_by_its_ack(ch, names):
    queue = dedup_queue(ch, names)
    ch.basic_publish("", queue, b"one", keyed("k"))
    method, _, _ = ch.basic_get(queue, auto_ack=False)
    ch.basic_publish("", queue, b"while unacked", keyed("k"))
    assert count(ch, queue) == 0
    ch.basic_ack(method.delivery_tag)
    ch.basic_publish("", queue, b"after ack", keyed("k"))
    assert get_bodies(ch, queue) == [b"after ack"]


def test_a_requeued_message_keeps_its_key(ch, names):
    queue = dedup_queue(ch, names)
    ch.basic_publish("", queue, b"one", keyed("k"))
    method, _, _ = ch.basic_get(queue, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=True)
    ch.basic_publish("", queue, b"two", keyed("k"))
    assert get_bodies(ch, queue) == [b"one"]


def test_a_rejected_message_frees_its_key_and_is_dead_lettered(ch, names):
    dlx, dlq = names("dlx"), names("dlq")
    ch.exchange_declare(dlx, exchange_type="fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    queue = dedup_queue(ch, names, **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"one", keyed("k"))
    method, _, _ = ch.basic_get(queue, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.basic_publish("", queue, b"two", keyed("k"))
    assert get_bodies(ch, queue) == [b"two"]
    assert poll_get(ch, dlq)[2] == b"one"


def test_delivery_to_a_no_ack_consumer_frees_the_key(conn, names):
    ch = conn.channel()
    queue = dedup_queue(ch, names)
    got = []
    ch.basic_consume(queue, lambda c, m, p, body: got.append(body), auto_ack=True)
    ch.basic_publish("", queue, b"one", keyed("k"))
    conn.process_data_events(time_limit=0)
    deadline = time.monotonic() + 5
    while len(got) < 1 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    ch.basic_publish("", queue, b"two", keyed("k"))
    while len(got) < 2 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert got == [b"one", b"two"]


def test_basic_get_with_auto_ack_frees_the_key(ch, names):
    queue = dedup_queue(ch, names)
    ch.basic_publish("", queue, b"one", keyed("k"))
    assert ch.basic_get(queue, auto_ack=True)[2] == b"one"
    ch.basic_publish("", queue, b"two", keyed("k"))
    assert get_bodies(ch, queue) == [b"two"]


def test_a_message_dropped_at_the_length_limit_frees_its_key(ch, names):
    # The plugin's queue_overflow case: "this" is pushed out by "that", so "this" enters again.
    queue = dedup_queue(ch, names, **{"x-max-length": 1})
    for body in [b"this", b"that", b"this"]:
        ch.basic_publish("", queue, body, keyed(body.decode()))
    assert get_bodies(ch, queue) == [b"this"]


def test_an_expired_message_frees_its_key(ch, names):
    queue = dedup_queue(ch, names, **{"x-message-ttl": 200})
    ch.basic_publish("", queue, b"old", keyed("k"))
    time.sleep(0.4)
    ch.basic_publish("", queue, b"new", keyed("k"))
    assert get_bodies(ch, queue) == [b"new"]


def test_a_message_past_its_own_expiration_no_longer_holds_its_key(ch, names):
    queue = dedup_queue(ch, names)
    # "short" sits behind a message without TTL, so it is not removed yet when its key is
    # offered again; as in the plugin, its key counts only for its TTL.
    ch.basic_publish("", queue, b"head", keyed("head"))
    ch.basic_publish("", queue, b"short", keyed("k", expiration="200"))
    time.sleep(0.4)
    ch.basic_publish("", queue, b"again", keyed("k"))
    assert get_bodies(ch, queue) == [b"head", b"again"]


def test_purge_frees_the_keys(ch, names):
    queue = dedup_queue(ch, names)
    ch.basic_publish("", queue, b"one", keyed("k"))
    assert ch.queue_purge(queue).method.message_count == 1
    ch.basic_publish("", queue, b"two", keyed("k"))
    assert get_bodies(ch, queue) == [b"two"]


def test_a_non_boolean_argument_is_refused(ch, names):
    with channel_closed_by_broker(406, "invalid arg 'x-message-deduplication'"):
        ch.queue_declare(names("bad"), arguments={"x-message-deduplication": "yes"})


# --- exchange level ------------------------------------------------------------------------


def dedup_exchange(ch, names, durable=False, **arguments) -> str:
    exchange = names("dx")
    ch.exchange_declare(exchange, exchange_type="x-message-deduplication", durable=durable,
                        arguments={"x-cache-size": 10, **arguments})
    return exchange


def bound_queue(ch, names, exchange, routing_key="", durable=False) -> str:
    queue = names(f"q-{exchange[-14:]}-{routing_key}")
    ch.queue_declare(queue, durable=durable)
    ch.queue_bind(queue, exchange, routing_key=routing_key)
    return queue


def test_exchange_routes_a_key_once_to_every_binding(ch, names):
    exchange = dedup_exchange(ch, names)
    a = bound_queue(ch, names, exchange, "a")
    b = bound_queue(ch, names, exchange, "b")
    # Fanout-like: the routing key does not matter.
    ch.basic_publish(exchange, "zzz", b"first", keyed("k"))
    ch.basic_publish(exchange, "a", b"repeat", keyed("k"))
    ch.basic_publish(exchange, "b", b"other", keyed("other"))
    ch.basic_publish(exchange, "a", b"no key", None)
    ch.basic_publish(exchange, "a", b"no key", None)
    assert get_bodies(ch, a) == [b"first", b"other", b"no key", b"no key"]
    assert get_bodies(ch, b) == [b"first", b"other", b"no key", b"no key"]


def test_exchange_remembers_keys_after_their_messages_are_consumed(ch, names):
    exchange = dedup_exchange(ch, names)
    queue = bound_queue(ch, names, exchange)
    ch.basic_publish(exchange, "", b"first", keyed("k"))
    assert get_bodies(ch, queue) == [b"first"]
    ch.basic_publish(exchange, "", b"again", keyed("k"))
    assert get_bodies(ch, queue) == []


def test_exchange_cache_ttl_lets_a_key_through_again(ch, names):
    exchange = dedup_exchange(ch, names, **{"x-cache-ttl": 200})
    queue = bound_queue(ch, names, exchange)
    ch.basic_publish(exchange, "", b"first", keyed("k"))
    ch.basic_publish(exchange, "", b"dropped", keyed("k"))
    time.sleep(0.4)
    ch.basic_publish(exchange, "", b"later", keyed("k"))
    assert get_bodies(ch, queue) == [b"first", b"later"]


def test_message_cache_ttl_header_overrides_the_exchange_ttl(ch, names):
    exchange = dedup_exchange(ch, names, **{"x-cache-ttl": 60000})
    queue = bound_queue(ch, names, exchange)
    short = pika.BasicProperties(headers={DEDUP: "k", "x-cache-ttl": 200})
    ch.basic_publish(exchange, "", b"first", short)
    ch.basic_publish(exchange, "", b"dropped", keyed("k"))
    time.sleep(0.4)
    ch.basic_publish(exchange, "", b"later", keyed("k"))
    assert get_bodies(ch, queue) == [b"first", b"later"]


def test_a_full_exchange_cache_forgets_its_oldest_key(ch, names):
    exchange = dedup_exchange(ch, names, **{"x-cache-size": 2})
    queue = bound_queue(ch, names, exchange)
    for key in ["a", "b", "c", "b", "a"]:
        ch.basic_publish(exchange, "", key.encode(), keyed(key))
    assert get_bodies(ch, queue) == [b"a", b"b", b"c", b"a"]


def test_a_duplicate_is_unroutable_returned_if_mandatory_and_still_acked(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    exchange = dedup_exchange(ch, names)
    queue = bound_queue(ch, names, exchange)
    ch.basic_publish(exchange, "", b"first", keyed("k"), mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(exchange, "", b"again", keyed("k"), mandatory=True)
    ch.basic_publish(exchange, "", b"not mandatory", keyed("k"))  # acked, not nacked
    assert get_bodies(ch, queue) == [b"first"]


def test_a_duplicate_goes_to_the_alternate_exchange(ch, names):
    alternate = names("ae")
    ch.exchange_declare(alternate, exchange_type="fanout")
    spare = bound_queue(ch, names, alternate)
    exchange = dedup_exchange(ch, names, **{"alternate-exchange": alternate})
    queue = bound_queue(ch, names, exchange)
    ch.basic_publish(exchange, "", b"first", keyed("k"))
    ch.basic_publish(exchange, "", b"again", keyed("k"))
    assert get_bodies(ch, queue) == [b"first"]
    assert get_bodies(ch, spare) == [b"again"]


@pytest.mark.parametrize("arguments, text", [
    ({}, "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"),
    ({"x-cache-size": 0}, "'x-cache-size' must be an integer greater than 0"),
    ({"x-cache-size": "many"}, "'x-cache-size' must be an integer greater than 0"),
    ({"x-cache-size": 5, "x-cache-ttl": -1}, "Invalid argument, 'x-cache-ttl' must be an integer greater than 0"),
    ({"x-cache-size": 5, "x-cache-persistence": "tape"},
     "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"),
])
def test_bad_exchange_arguments_are_refused_as_the_plugin_does(ch, names, arguments, text):
    with channel_closed_by_broker(406, text):
        ch.exchange_declare(names("bad"), exchange_type="x-message-deduplication", arguments=arguments)


def test_redeclare_compares_the_type_but_not_the_cache_settings(conn, names):
    ch = conn.channel()
    exchange = dedup_exchange(ch, names)
    ch.exchange_declare(exchange, exchange_type="x-message-deduplication", arguments={"x-cache-size": 99})
    with channel_closed_by_broker(406, "inequivalent arg 'type'"):
        ch.exchange_declare(exchange, exchange_type="fanout")


# --- restarts ------------------------------------------------------------------------------


@contextlib.contextmanager
def warren_on(data_dir):
    broker = start_warren_broker(data_dir=data_dir)
    conn = broker.connect()
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()
        assert broker.warren.stop() == 0
        assert broker.warren.problems() == []


@pytest.mark.timeout(60)
def test_a_durable_queue_keeps_the_keys_of_its_persistent_messages_across_a_restart(tmp_path):
    with warren_on(tmp_path) as ch:
        ch.queue_declare("dedup.restart", durable=True, arguments={"x-message-deduplication": True})
        ch.confirm_delivery()
        ch.basic_publish("", "dedup.restart", b"kept", keyed("persistent", delivery_mode=2))
        ch.basic_publish("", "dedup.restart", b"lost", keyed("transient", delivery_mode=1))
    with warren_on(tmp_path) as ch:
        ch.confirm_delivery()
        ch.basic_publish("", "dedup.restart", b"dropped", keyed("persistent", delivery_mode=2))
        # The transient message did not survive the restart, so neither did its key.
        ch.basic_publish("", "dedup.restart", b"new", keyed("transient", delivery_mode=2))
        assert get_bodies(ch, "dedup.restart", auto_ack=True) == [b"kept", b"new"]
        ch.basic_publish("", "dedup.restart", b"after ack", keyed("persistent", delivery_mode=2))
        assert get_bodies(ch, "dedup.restart") == [b"after ack"]


@pytest.mark.timeout(60)
def test_an_exchange_memory_cache_starts_empty_after_a_restart_and_a_disk_cache_does_not(tmp_path):
    with warren_on(tmp_path) as ch:
        for name, persistence in [("dedup.memory", "memory"), ("dedup.disk", "disk")]:
            ch.exchange_declare(name, exchange_type="x-message-deduplication", durable=True,
                                arguments={"x-cache-size": 100, "x-cache-persistence": persistence})
            ch.queue_declare(name, durable=True)
            ch.queue_bind(name, name)
            ch.basic_publish(name, "", b"before", keyed("k", delivery_mode=2))
        # A clean stop makes the cache's newest entries durable.
    with warren_on(tmp_path) as ch:
        for name in ["dedup.memory", "dedup.disk"]:
            ch.basic_publish(name, "", b"after", keyed("k", delivery_mode=2))
            ch.basic_publish(name, "", b"after again", keyed("k", delivery_mode=2))
        assert get_bodies(ch, "dedup.memory") == [b"before", b"after"]
        assert get_bodies(ch, "dedup.disk") == [b"before"]


@pytest.mark.timeout(60)
def test_a_deleted_disk_cache_exchange_leaves_nothing_behind(tmp_path):
    with warren_on(tmp_path) as ch:
        ch.exchange_declare("dedup.gone", exchange_type="x-message-deduplication", durable=True,
                            arguments={"x-cache-size": 10, "x-cache-persistence": "disk"})
        ch.basic_publish("dedup.gone", "", b"x", keyed("k"))
        assert any((tmp_path / "exchanges").iterdir())
        ch.exchange_delete("dedup.gone")
        assert not any((tmp_path / "exchanges").iterdir())
    with warren_on(tmp_path) as ch:
        ch.exchange_declare("dedup.gone", exchange_type="x-message-deduplication", durable=True,
                            arguments={"x-cache-size": 10, "x-cache-persistence": "disk"})
        queue = "dedup.gone.q"
        ch.queue_declare(queue)
        ch.queue_bind(queue, "dedup.gone")
        ch.basic_publish("dedup.gone", "", b"y", keyed("k"))
        assert wait_for_count(ch, queue, 1) == 1
