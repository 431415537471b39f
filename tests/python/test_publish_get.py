"""basic.publish and basic.get: get-ok fields, properties and headers, body sizes, returns."""

from __future__ import annotations

import datetime
import decimal

import pika
import pytest
from pika.exceptions import UnroutableError

from amqp_support import channel_closed_by_broker, wait_until


@pytest.fixture
def queue(ch):
    return ch.queue_declare("", exclusive=True).method.queue


def test_get_ok_carries_routing_info_and_remaining_count(ch, queue):
    for body in [b"one", b"two", b"three"]:
        ch.basic_publish("", queue, body)
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert body == b"one"
    assert method.exchange == ""
    assert method.routing_key == queue
    assert method.redelivered is False
    assert method.message_count == 2
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert (body, method.message_count) == (b"two", 1)
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert (body, method.message_count) == (b"three", 0)


def test_get_on_empty_queue_returns_get_empty(ch, queue):
    assert ch.basic_get(queue, auto_ack=True) == (None, None, None)
    assert ch.is_open


def test_get_on_missing_queue_is_not_found(ch, names):
    missing = names("q")
    with channel_closed_by_broker(404, f"no queue '{missing}' in vhost '/'"):
        ch.basic_get(missing)


def test_delivery_tags_count_up_per_channel_from_one(ch, queue):
    for i in range(3):
        ch.basic_publish("", queue, str(i).encode())
    tags = [ch.basic_get(queue, auto_ack=False)[0].delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]
    ch.basic_ack(3, multiple=True)


def test_exchange_and_routing_key_are_those_of_the_publish(ch, queue):
    ch.queue_bind(queue, "amq.topic", routing_key="a.*")
    ch.basic_publish("amq.topic", "a.b", b"via topic")
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert (method.exchange, method.routing_key, body) == ("amq.topic", "a.b", b"via topic")


def test_all_basic_properties_round_trip(ch, queue, broker):
    sent = pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers={"h": "v"},
        delivery_mode=2,
        priority=7,
        correlation_id="corr-1",
        reply_to="reply.queue",
        expiration="60000",
        message_id="msg-1",
        timestamp=1700000000,
        type="order.created",
        user_id=broker.username,
        app_id="pytest",
    )
    ch.basic_publish("", queue, b"{}", sent)
    _, got, body = ch.basic_get(queue, auto_ack=True)
    assert body == b"{}"
    for field in [
        "content_type", "content_encoding", "headers", "delivery_mode", "priority",
        "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
        "user_id", "app_id",
    ]:
        assert getattr(got, field) == getattr(sent, field), field


def test_absent_properties_stay_absent(ch, queue):
    ch.basic_publish("", queue, b"bare")
    _, got, _ = ch.basic_get(queue, auto_ack=True)
    for field in ["content_type", "headers", "delivery_mode", "priority", "correlation_id",
                  "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id"]:
        assert getattr(got, field) is None, field


@pytest.mark.parametrize("mode", [1, 2])
def test_delivery_mode_round_trips(ch, queue, mode):
    ch.basic_publish("", queue, b"x", pika.BasicProperties(delivery_mode=mode))
    assert ch.basic_get(queue, auto_ack=True)[1].delivery_mode == mode


# pika 1.3 can send these header value types (it has no encoder for float).
HEADER_VALUES = {
    "str": "plain",
    "unicode": "h\u00e9llo \u2603",
    "empty_str": "",
    "int": 42,
    "negative_int": -42,
    "zero": 0,
    "big_int": 2**40,
    "big_negative_int": -(2**40),
    "max_int64": 2**63 - 1,
    "true": True,
    "false": False,
    "nested_dict": {"a": 1, "b": {"c": "d", "e": [1, 2]}},
    "empty_dict": {},
    "list": [1, "two", [3, 4], {"k": "v"}, True, None],
    "empty_list": [],
    "bytes": b"\x00\x01\xfe\xff",
    "none": None,
    "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "decimal": decimal.Decimal("3.14"),
    "decimal_integral": decimal.Decimal("17"),
    "decimal_negative": decimal.Decimal("-0.005"),
}


def test_headers_of_every_type_pika_sends_round_trip(ch, queue):
    ch.basic_publish("", queue, b"x", pika.BasicProperties(headers=HEADER_VALUES))
    _, got, _ = ch.basic_get(queue, auto_ack=True)
    assert set(got.headers) == set(HEADER_VALUES)
    for key, value in HEADER_VALUES.items():
        assert got.headers[key] == value, key
        if isinstance(value, bool):
            assert type(got.headers[key]) is bool, key  # not the integer 1/0
        elif not isinstance(value, int):
            assert type(got.headers[key]) is type(value), key


def test_user_id_matching_the_login_is_accepted(ch, queue, broker):
    ch.basic_publish("", queue, b"x", pika.BasicProperties(user_id=broker.username))
    assert ch.basic_get(queue, auto_ack=True)[1].user_id == broker.username


def test_user_id_of_someone_else_is_precondition_failed(ch, queue, broker):
    with channel_closed_by_broker(
        406, f"user_id property set to 'mallory' but authenticated user was '{broker.username}'"
    ):
        ch.basic_publish("", queue, b"x", pika.BasicProperties(user_id="mallory"))
        ch.basic_qos(prefetch_count=0)


def test_invalid_expiration_is_precondition_failed(ch, queue):
    with channel_closed_by_broker(406, "invalid expiration 'soon'"):
        ch.basic_publish("", queue, b"x", pika.BasicProperties(expiration="soon"))
        ch.basic_qos(prefetch_count=0)


@pytest.mark.parametrize(
    "size",
    [0, 1, 131064, 131065, 131072, 1024 * 1024 + 7],
    ids=["empty", "one-byte", "one-full-frame", "one-frame-plus-one", "128KiB", "1MiB-plus"],
)
def test_bodies_of_any_size_round_trip(ch, queue, size):
    body = bytes((i * 7 + 3) % 251 for i in range(size))
    ch.basic_publish("", queue, body)
    method, _, got = ch.basic_get(queue, auto_ack=True)
    assert method is not None
    assert len(got) == size
    assert got == body


def test_mandatory_unroutable_message_is_returned_with_no_route(conn, ch, names):
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append((method, props, body)))
    key = names("nowhere")
    ch.basic_publish(
        "amq.direct", key, b"bounced", pika.BasicProperties(message_id="m1"), mandatory=True
    )
    assert wait_until(conn, lambda: returned)
    method, props, body = returned[0]
    assert method.reply_code == 312
    assert method.reply_text == "NO_ROUTE"
    assert (method.exchange, method.routing_key) == ("amq.direct", key)
    assert props.message_id == "m1"
    assert body == b"bounced"


def test_non_mandatory_unroutable_message_is_dropped_silently(conn, ch, names):
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish("amq.direct", names("nowhere"), b"dropped")
    ch.basic_qos(prefetch_count=0)
    conn.process_data_events(time_limit=0.2)
    assert returned == []
    assert ch.is_open


def test_mandatory_unroutable_in_confirm_mode_raises_unroutable(ch, names):
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as info:
        ch.basic_publish("amq.direct", names("nowhere"), b"bounced", mandatory=True)
    [returned] = info.value.messages
    assert returned.method.reply_code == 312
    assert returned.body == b"bounced"
    assert ch.is_open


def test_mandatory_routed_message_is_not_returned(ch, queue):
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"routed", mandatory=True)
    assert ch.basic_get(queue, auto_ack=True)[2] == b"routed"
