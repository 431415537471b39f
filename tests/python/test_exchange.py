"""Exchanges: the four types and their routing, flags, equivalence, errors, e2e bindings."""

from __future__ import annotations

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from amqp_support import channel_closed_by_broker, exchange_exists, get_bodies


def sync(ch) -> None:
    """A synchronous round trip, so that an asynchronous error (after a publish) surfaces."""
    ch.basic_qos(prefetch_count=0)


@pytest.fixture
def declare(ch):
    """Declare exchanges and exclusive queues; clean up exchanges afterwards."""
    made = []

    def exchange(name, kind="direct", **kw):
        ch.exchange_declare(name, exchange_type=kind, **kw)
        made.append(name)
        return name

    yield exchange
    cleanup = ch.connection.channel() if ch.is_closed else ch
    for name in made:
        if cleanup.is_open:
            cleanup.exchange_delete(name)


def bound_queue(ch, exchange, routing_key="", arguments=None):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(queue, exchange, routing_key=routing_key, arguments=arguments)
    return queue


def test_predeclared_exchanges_exist(ch):
    for name, kind in [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ]:
        ch.exchange_declare(name, exchange_type=kind, passive=True)
        # A non-passive redeclaration with the same definition is allowed, even for amq.*.
        ch.exchange_declare(name, exchange_type=kind, durable=True)


def test_default_exchange_routes_by_queue_name(ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", queue, b"direct to queue")
    assert get_bodies(ch, queue) == [b"direct to queue"]


def test_direct_exchange_routes_on_exact_key(ch, declare, names):
    ex = declare(names("direct"), "direct")
    q_info = bound_queue(ch, ex, "info")
    q_error = bound_queue(ch, ex, "error")
    ch.queue_bind(q_error, ex, routing_key="critical")
    for key in ["info", "error", "critical", "debug", "info.x"]:
        ch.basic_publish(ex, key, key.encode())
    assert get_bodies(ch, q_info) == [b"info"]
    assert get_bodies(ch, q_error) == [b"error", b"critical"]


def test_fanout_exchange_ignores_routing_key(ch, declare, names):
    ex = declare(names("fanout"), "fanout")
    queues = [bound_queue(ch, ex, key) for key in ["a", "b", ""]]
    ch.basic_publish(ex, "whatever", b"everyone")
    for q in queues:
        assert get_bodies(ch, q) == [b"everyone"]


def test_topic_exchange_matches_star_and_hash(ch, declare, names):
    ex = declare(names("topic"), "topic")
    patterns = {
        "star": "*.orange.*",
        "rabbit": "*.*.rabbit",
        "lazy": "lazy.#",
        "all": "#",
        "exact": "quick.brown.fox",
        "hash_middle": "a.#.z",
    }
    queues = {label: bound_queue(ch, ex, pattern) for label, pattern in patterns.items()}
    keys = [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "quick.orange.fox",
        "lazy.brown.fox",
        "lazy",
        "quick.brown.fox",
        "orange",
        "quick.orange.male.rabbit",
        "a.z",
        "a.b.c.z",
        "",
    ]
    for key in keys:
        ch.basic_publish(ex, key, key.encode())
    got = {label: [b.decode() for b in get_bodies(ch, q)] for label, q in queues.items()}
    assert got["star"] == ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]
    assert got["rabbit"] == ["quick.orange.rabbit"]
    assert got["lazy"] == ["lazy.orange.elephant", "lazy.brown.fox", "lazy"]
    assert got["all"] == keys
    assert got["exact"] == ["quick.brown.fox"]
    assert got["hash_middle"] == ["a.z", "a.b.c.z"]


def test_headers_exchange_matches_all_or_any(ch, declare, names):
    ex = declare(names("headers"), "headers")
    q_all = bound_queue(ch, ex, arguments={"x-match": "all", "format": "pdf", "type": "report"})
    q_any = bound_queue(ch, ex, arguments={"x-match": "any", "format": "pdf", "type": "log"})
    q_default = bound_queue(ch, ex, arguments={"format": "zip", "type": "log"})  # default: all
    cases = [
        ("pdf-report", {"format": "pdf", "type": "report", "extra": 1}),
        ("pdf-only", {"format": "pdf"}),
        ("log-only", {"type": "log"}),
        ("zip-log", {"format": "zip", "type": "log"}),
        ("none", None),
    ]
    for body, headers in cases:
        ch.basic_publish(ex, "ignored", body.encode(), pika.BasicProperties(headers=headers))
    assert get_bodies(ch, q_all) == [b"pdf-report"]
    assert get_bodies(ch, q_any) == [b"pdf-report", b"pdf-only", b"log-only", b"zip-log"]
    assert get_bodies(ch, q_default) == [b"zip-log"]


def test_passive_declare_of_missing_exchange_is_not_found(ch, names):
    missing = names("missing")
    with channel_closed_by_broker(404, f"no exchange '{missing}' in vhost '/'"):
        ch.exchange_declare(missing, passive=True)


def test_redeclare_with_other_type_is_precondition_failed(conn, declare, ch, names):
    ex = declare(names("ex"), "direct")
    other = conn.channel()
    with channel_closed_by_broker(406, "inequivalent arg 'type'"):
        other.exchange_declare(ex, exchange_type="fanout")


@pytest.mark.parametrize(
    "flag, first, second",
    [
        ("durable", dict(durable=False), dict(durable=True)),
        ("auto_delete", dict(auto_delete=False), dict(auto_delete=True)),
        ("internal", dict(internal=False), dict(internal=True)),
    ],
)
def test_redeclare_with_other_flag_is_precondition_failed(conn, declare, ch, names, flag, first, second):
    ex = declare(names("ex"), "direct", **first)
    ch.exchange_declare(ex, exchange_type="direct", **first)  # same definition: fine
    other = conn.channel()
    with channel_closed_by_broker(406, f"inequivalent arg '{flag}' for exchange '{ex}'"):
        other.exchange_declare(ex, exchange_type="direct", **second)


def test_durable_exchange_survives_declaring_connection(broker, names):
    ex = names("durable")
    conn = broker.connect()
    conn.channel().exchange_declare(ex, exchange_type="topic", durable=True)
    conn.close()
    assert exchange_exists(broker, ex)
    other = broker.connect()
    try:
        other.channel().exchange_declare(ex, exchange_type="topic", durable=True, passive=True)
        other.channel().exchange_delete(ex)
    finally:
        other.close()
    assert not exchange_exists(broker, ex)


def test_publish_to_internal_exchange_is_access_refused(ch, declare, names):
    ex = declare(names("internal"), "fanout", internal=True)
    with channel_closed_by_broker(403, f"cannot publish to internal exchange '{ex}'"):
        ch.basic_publish(ex, "", b"nope")
        sync(ch)


def test_publish_to_missing_exchange_closes_channel_with_not_found(conn, names):
    ch = conn.channel()
    missing = names("missing")
    with channel_closed_by_broker(404, f"no exchange '{missing}' in vhost '/'"):
        ch.basic_publish(missing, "rk", b"lost")
        sync(ch)
    assert conn.is_open


def test_delete_removes_exchange_and_deleting_missing_is_ok(broker, ch, names):
    ex = names("ex")
    ch.exchange_declare(ex, exchange_type="direct")
    ch.exchange_delete(ex)
    assert not exchange_exists(broker, ex)
    ch.exchange_delete(ex)  # RabbitMQ: deleting an absent exchange succeeds
    assert ch.is_open


def test_delete_if_unused_with_binding_is_precondition_failed(conn, ch, declare, names):
    ex = declare(names("ex"), "direct")
    bound_queue(ch, ex, "k")
    other = conn.channel()
    with channel_closed_by_broker(406, f"exchange '{ex}' in vhost '/' in use"):
        other.exchange_delete(ex, if_unused=True)
    ch.exchange_delete(ex, if_unused=False)


def test_delete_if_unused_without_bindings_succeeds(broker, ch, names):
    ex = names("ex")
    ch.exchange_declare(ex, exchange_type="direct")
    ch.exchange_delete(ex, if_unused=True)
    assert not exchange_exists(broker, ex)


@pytest.mark.parametrize("name", ["amq.pytest-custom", "amq.direct2"])
def test_declaring_amq_prefixed_exchange_is_access_refused(ch, name):
    with channel_closed_by_broker(403, f"exchange name '{name}' contains reserved prefix 'amq.*'"):
        ch.exchange_declare(name, exchange_type="direct")


def test_binding_to_default_exchange_is_access_refused(ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    with channel_closed_by_broker(403, "operation not permitted on the default exchange"):
        ch.queue_bind(queue, "", routing_key="x")


def test_deleting_predeclared_exchange_is_access_refused(ch):
    with channel_closed_by_broker(403, "deletion of system exchange 'amq.direct' in vhost '/' not allowed"):
        ch.exchange_delete("amq.direct")


@pytest.mark.parametrize("operation", ["delete", "passive-declare"])
def test_operations_on_the_default_exchange_are_access_refused(ch, operation):
    with channel_closed_by_broker(403, "operation not permitted on the default exchange"):
        if operation == "delete":
            ch.exchange_delete("")
        else:
            ch.exchange_declare("", passive=True)


def test_exchange_to_exchange_binding_routes_and_unbind_stops_it(ch, declare, names):
    source = declare(names("src"), "topic")
    dest = declare(names("dst"), "fanout")
    queue = bound_queue(ch, dest)
    ch.exchange_bind(destination=dest, source=source, routing_key="orders.*")
    ch.basic_publish(source, "orders.new", b"routed")
    ch.basic_publish(source, "invoices.new", b"not routed")
    assert get_bodies(ch, queue) == [b"routed"]
    ch.exchange_unbind(destination=dest, source=source, routing_key="orders.*")
    ch.basic_publish(source, "orders.new", b"after unbind")
    assert get_bodies(ch, queue) == []


def test_exchange_bind_to_missing_source_is_not_found(ch, declare, names):
    dest = declare(names("dst"), "fanout")
    missing = names("missing")
    with channel_closed_by_broker(404, f"no exchange '{missing}' in vhost '/'"):
        ch.exchange_bind(destination=dest, source=missing)


def test_alternate_exchange_catches_unroutable_messages(ch, declare, names):
    alternate = declare(names("ae"), "fanout")
    caught = bound_queue(ch, alternate)
    main = declare(names("main"), "direct", arguments={"alternate-exchange": alternate})
    routed = bound_queue(ch, main, "known")
    ch.basic_publish(main, "known", b"routed")
    ch.basic_publish(main, "unknown", b"unroutable")
    assert get_bodies(ch, routed) == [b"routed"]
    assert get_bodies(ch, caught) == [b"unroutable"]


def test_auto_delete_exchange_goes_away_with_its_last_binding(broker, ch, names):
    ex = names("autodel")
    ch.exchange_declare(ex, exchange_type="direct", auto_delete=True)
    q1 = bound_queue(ch, ex, "a")
    q2 = bound_queue(ch, ex, "b")
    ch.queue_unbind(q1, ex, routing_key="a")
    assert exchange_exists(broker, ex)
    ch.queue_unbind(q2, ex, routing_key="b")
    assert not exchange_exists(broker, ex)


def test_auto_delete_exchange_without_bindings_stays(broker, ch, names):
    ex = names("autodel")
    ch.exchange_declare(ex, exchange_type="direct", auto_delete=True)
    try:
        assert exchange_exists(broker, ex)
    finally:
        ch.exchange_delete(ex)


def test_unknown_exchange_type_is_a_channel_error(ch, names):
    # RabbitMQ 3.13 and later: 406 PRECONDITION_FAILED on the channel (3.10 closed the
    # connection with 503 COMMAND_INVALID); pika's own acceptance suite expects 406.
    with channel_closed_by_broker(406, "unknown exchange type 'no-such-type'"):
        ch.exchange_declare(names("ex"), exchange_type="no-such-type")
