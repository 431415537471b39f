"""Queues: naming, passive/durable/exclusive/auto-delete, equivalence, bind, purge, delete."""

from __future__ import annotations

import re

import pytest

from amqp_support import channel_closed_by_broker, get_bodies, queue_exists, wait_until


@pytest.fixture
def queue(ch, names):
    """A plain (non-exclusive, non-durable) queue, deleted after the test."""
    name = names("q")
    ch.queue_declare(name)
    yield name
    cleanup = ch if ch.is_open else (ch.connection.channel() if ch.connection.is_open else None)
    if cleanup is not None:
        cleanup.queue_delete(name)


def test_empty_name_gets_a_server_generated_name(ch):
    ok = ch.queue_declare("", exclusive=True)
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", ok.method.queue), ok.method.queue
    assert ok.method.message_count == 0
    assert ok.method.consumer_count == 0
    assert ch.queue_declare("", exclusive=True).method.queue != ok.method.queue


def test_passive_declare_of_missing_queue_is_not_found(ch, names):
    missing = names("missing")
    with channel_closed_by_broker(404, f"NOT_FOUND - no queue '{missing}' in vhost '/'"):
        ch.queue_declare(missing, passive=True)


def test_declare_ok_reports_message_and_consumer_counts(conn, ch, queue):
    # Publish with confirms: RabbitMQ answers declare-ok's counts ahead of deliveries it
    # has not processed yet, so counts are only deterministic for confirmed messages.
    publisher = conn.channel()
    publisher.confirm_delivery()
    for i in range(4):
        publisher.basic_publish("", queue, str(i).encode())
    ok = ch.queue_declare(queue)
    assert (ok.method.message_count, ok.method.consumer_count) == (4, 0)
    ch.basic_qos(prefetch_count=1)
    delivered = []
    ch.basic_consume(queue, lambda *a: delivered.append(a[3]), auto_ack=False)
    assert wait_until(conn, lambda: len(delivered) == 1)
    ok = ch.queue_declare(queue, passive=True)
    # One message went to the consumer (unacked): declare-ok counts only ready ones.
    assert (ok.method.message_count, ok.method.consumer_count) == (3, 1)


def test_durable_queue_outlives_its_connection(broker, names):
    name = names("durable")
    conn = broker.connect()
    conn.channel().queue_declare(name, durable=True)
    conn.close()
    assert queue_exists(broker, name)
    other = broker.connect()
    try:
        ok = other.channel().queue_declare(name, durable=True, passive=True)
        assert ok.method.queue == name
        other.channel().queue_delete(name)
    finally:
        other.close()


def test_exclusive_queue_is_locked_to_its_connection(broker, ch, names):
    name = names("excl")
    ch.queue_declare(name, exclusive=True)
    intruder = broker.connect()
    try:
        locked = f"cannot obtain exclusive access to locked queue '{name}' in vhost '/'"
        for attempt in [
            lambda c: c.queue_declare(name, exclusive=True),
            lambda c: c.queue_declare(name, passive=True),
            lambda c: c.basic_consume(name, lambda *a: None),
            lambda c: c.basic_get(name),
            lambda c: c.queue_delete(name),
            lambda c: c.queue_purge(name),
        ]:
            with channel_closed_by_broker(405, locked):
                attempt(intruder.channel())
    finally:
        intruder.close()
    # Its own connection still uses it.
    ch.basic_publish("", name, b"mine")
    assert get_bodies(ch, name) == [b"mine"]


def test_exclusive_queue_is_deleted_when_its_connection_closes(broker, names):
    name = names("excl")
    conn = broker.connect()
    conn.channel().queue_declare(name, exclusive=True)
    assert queue_exists(broker, name)
    conn.close()
    assert not queue_exists(broker, name)


def test_auto_delete_queue_is_deleted_after_its_last_consumer_cancels(broker, ch, names):
    name = names("autodel")
    ch.queue_declare(name, auto_delete=True)
    # Never consumed: it stays.
    assert queue_exists(broker, name)
    first = ch.basic_consume(name, lambda *a: None)
    second = ch.basic_consume(name, lambda *a: None)
    ch.basic_cancel(first)
    assert queue_exists(broker, name)
    ch.basic_cancel(second)
    assert not queue_exists(broker, name)


def test_auto_delete_queue_is_deleted_when_its_consumers_channel_closes(broker, conn, names):
    name = names("autodel")
    ch = conn.channel()
    ch.queue_declare(name, auto_delete=True)
    ch.basic_consume(name, lambda *a: None)
    ch.close()
    assert not queue_exists(broker, name)


@pytest.mark.parametrize(
    "flag, first, second, received, current",
    [
        ("durable", dict(durable=False), dict(durable=True), "true", "false"),
        ("durable", dict(durable=True), dict(durable=False), "false", "true"),
        ("auto_delete", dict(auto_delete=False), dict(auto_delete=True), "true", "false"),
    ],
)
def test_redeclare_with_other_flag_is_precondition_failed(conn, names, flag, first, second, received, current):
    ch = conn.channel()
    name = names("q")
    ch.queue_declare(name, **first)
    try:
        with channel_closed_by_broker(
            406,
            f"PRECONDITION_FAILED - inequivalent arg '{flag}' for queue '{name}' in vhost '/': "
            f"received '{received}' but current is '{current}'",
        ):
            conn.channel().queue_declare(name, **second)
    finally:
        conn.channel().queue_delete(name)


def test_redeclare_with_other_argument_is_precondition_failed(conn, names):
    ch = conn.channel()
    name = names("q")
    ch.queue_declare(name, arguments={"x-max-length": 10})
    try:
        ch.queue_declare(name, arguments={"x-max-length": 10})  # same: fine
        with channel_closed_by_broker(406, f"inequivalent arg 'x-max-length' for queue '{name}'"):
            conn.channel().queue_declare(name, arguments={"x-max-length": 20})
    finally:
        conn.channel().queue_delete(name)


def test_declaring_amq_prefixed_queue_is_access_refused(ch):
    with channel_closed_by_broker(403, "queue name 'amq.pytest' contains reserved prefix 'amq.*'"):
        ch.queue_declare("amq.pytest")


def test_bind_routes_and_unbind_stops_routing(ch, queue):
    ch.queue_bind(queue, "amq.direct", routing_key=queue + ".key")
    ch.basic_publish("amq.direct", queue + ".key", b"bound")
    assert get_bodies(ch, queue) == [b"bound"]
    ch.queue_unbind(queue, "amq.direct", routing_key=queue + ".key")
    ch.basic_publish("amq.direct", queue + ".key", b"unbound")
    assert get_bodies(ch, queue) == []
    # Unbinding what is not bound is not an error.
    ch.queue_unbind(queue, "amq.direct", routing_key=queue + ".key")


def test_unbinding_is_idempotent_even_when_an_end_is_missing(ch, queue, names):
    # RabbitMQ answers unbind-ok whatever is missing; clients rely on it when they unbind
    # an auto-delete queue that went with its last consumer (aio-pika's RPC does).
    ch.queue_unbind(names("no-such-queue"), "amq.direct", routing_key="k")
    ch.queue_unbind(queue, names("no-such-exchange"), routing_key="k")
    ch.exchange_unbind(names("no-such-dest"), "amq.direct", routing_key="k")
    ch.exchange_unbind("amq.fanout", names("no-such-source"), routing_key="k")
    # Binding, though, needs both ends.
    with channel_closed_by_broker(404, "no queue"):
        ch.queue_bind(names("no-such-queue"), "amq.direct", routing_key="k")


def test_auto_delete_queue_unbound_after_its_consumer_left(broker, ch):
    q = ch.queue_declare("", auto_delete=True).method.queue
    ch.queue_bind(q, "amq.headers", arguments={"From": q, "x-match": "any"})
    tag = ch.basic_consume(q, lambda *a: None, auto_ack=True, exclusive=True)
    ch.basic_cancel(tag)
    ch.queue_unbind(q, "amq.headers", arguments={"From": q, "x-match": "any"})
    assert not queue_exists(broker, q)


def test_binding_the_same_key_twice_delivers_once(ch, queue):
    ch.queue_bind(queue, "amq.topic", routing_key="dup.#")
    ch.queue_bind(queue, "amq.topic", routing_key="dup.#")
    ch.queue_bind(queue, "amq.topic", routing_key="dup.*")
    ch.basic_publish("amq.topic", "dup.x", b"once")
    assert get_bodies(ch, queue) == [b"once"]
    ch.queue_unbind(queue, "amq.topic", routing_key="dup.#")
    ch.queue_unbind(queue, "amq.topic", routing_key="dup.*")


def test_bind_to_missing_exchange_is_not_found(ch, queue, names):
    missing = names("ex")
    with channel_closed_by_broker(404, f"no exchange '{missing}' in vhost '/'"):
        ch.queue_bind(queue, missing, routing_key="k")


def test_bind_missing_queue_is_not_found(ch, names):
    missing = names("q")
    with channel_closed_by_broker(404, f"no queue '{missing}' in vhost '/'"):
        ch.queue_bind(missing, "amq.direct", routing_key="k")


def test_purge_returns_the_number_of_messages_removed(ch, queue):
    for i in range(5):
        ch.basic_publish("", queue, str(i).encode())
    assert ch.queue_purge(queue).method.message_count == 5
    assert ch.queue_purge(queue).method.message_count == 0
    assert ch.queue_declare(queue, passive=True).method.message_count == 0


def test_purge_keeps_unacked_messages(ch, queue):
    for i in range(3):
        ch.basic_publish("", queue, str(i).encode())
    method, _, _ = ch.basic_get(queue, auto_ack=False)
    assert ch.queue_purge(queue).method.message_count == 2
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert get_bodies(ch, queue) == [b"0"]


def test_purge_of_missing_queue_is_not_found(ch, names):
    missing = names("q")
    with channel_closed_by_broker(404, f"no queue '{missing}' in vhost '/'"):
        ch.queue_purge(missing)


def test_delete_returns_the_number_of_messages_removed(broker, ch, names):
    name = names("q")
    ch.queue_declare(name)
    for i in range(7):
        ch.basic_publish("", name, str(i).encode())
    assert ch.queue_delete(name).method.message_count == 7
    assert not queue_exists(broker, name)
    # Deleting a queue that does not exist succeeds with a count of zero.
    assert ch.queue_delete(name).method.message_count == 0


def test_delete_if_unused_with_a_consumer_is_precondition_failed(conn, ch, queue):
    ch.basic_consume(queue, lambda *a: None)
    with channel_closed_by_broker(406, f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' in use"):
        conn.channel().queue_delete(queue, if_unused=True)


def test_delete_if_empty_with_messages_is_precondition_failed(conn, ch, queue):
    ch.basic_publish("", queue, b"still here")
    with channel_closed_by_broker(406, f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' not empty"):
        conn.channel().queue_delete(queue, if_empty=True)
    assert get_bodies(ch, queue) == [b"still here"]


def test_delete_if_unused_and_if_empty_succeed_on_an_idle_empty_queue(broker, ch, names):
    name = names("q")
    ch.queue_declare(name)
    assert ch.queue_delete(name, if_unused=True, if_empty=True).method.message_count == 0
    assert not queue_exists(broker, name)


def test_deleting_a_queue_removes_its_bindings(ch, names):
    name = names("q")
    ch.queue_declare(name)
    ch.queue_bind(name, "amq.direct", routing_key=name)
    ch.queue_delete(name)
    ch.queue_declare(name)
    try:
        ch.basic_publish("amq.direct", name, b"no binding any more")
        assert get_bodies(ch, name) == []
    finally:
        ch.queue_delete(name)
