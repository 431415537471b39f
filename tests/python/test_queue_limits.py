"""Length limits (peak shaving): `x-max-length`, `x-max-length-bytes` and `x-overflow`.
With reject-publish, confirming publishers get basic.nack for what is refused."""

from __future__ import annotations

import pika
import pytest

from amqp_support import get_bodies


@pytest.fixture
def confirming(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def test_drop_head_keeps_the_newest_messages(confirming, names):
    queue = names("max")
    confirming.queue_declare(queue, arguments={"x-max-length": 2})
    for i in range(5):
        confirming.basic_publish("", queue, str(i).encode())
    assert get_bodies(confirming, queue) == [b"3", b"4"]


def test_max_length_bytes_counts_message_bodies(confirming, names):
    queue = names("bytes")
    confirming.queue_declare(queue, arguments={"x-max-length-bytes": 10})
    for body in [b"12345", b"67890", b"abc"]:
        confirming.basic_publish("", queue, body)
    assert get_bodies(confirming, queue) == [b"67890", b"abc"]


def test_a_message_over_the_byte_limit_is_dropped_itself(confirming, names):
    queue = names("bytes")
    confirming.queue_declare(queue, arguments={"x-max-length-bytes": 3})
    confirming.basic_publish("", queue, b"abcdef")
    assert confirming.queue_declare(queue, passive=True).method.message_count == 0


def test_reject_publish_nacks_refused_messages(confirming, names):
    queue = names("reject")
    confirming.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    confirming.basic_publish("", queue, b"a")
    with pytest.raises(pika.exceptions.NackError):
        confirming.basic_publish("", queue, b"b")
    # A mandatory publish is nacked too, not returned: it was routed.
    with pytest.raises(pika.exceptions.NackError):
        confirming.basic_publish("", queue, b"c", mandatory=True)
    assert get_bodies(confirming, queue) == [b"a"]


def test_reject_publish_by_bytes_refuses_what_would_exceed(confirming, names):
    queue = names("reject")
    confirming.queue_declare(queue, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    outcome = []
    for body in [b"12345678", b"12345678", b"1"]:
        try:
            confirming.basic_publish("", queue, body)
            outcome.append("ack")
        except pika.exceptions.NackError:
            outcome.append("nack")
    assert outcome == ["ack", "nack", "ack"]


def test_persistent_publish_to_a_durable_reject_publish_queue_is_nacked(confirming, names):
    queue = names("reject")
    confirming.queue_declare(queue, durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    try:
        with pytest.raises(pika.exceptions.NackError):
            confirming.basic_publish("", queue, b"p", pika.BasicProperties(delivery_mode=2))
    finally:
        confirming.queue_delete(queue)


def test_a_publish_to_a_full_queue_and_a_free_one_is_nacked(confirming, names):
    full, free, fanout = names("full"), names("free"), names("fanout")
    confirming.exchange_declare(fanout, exchange_type="fanout")
    confirming.queue_declare(full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    confirming.queue_declare(free)
    confirming.queue_bind(full, fanout)
    confirming.queue_bind(free, fanout)
    with pytest.raises(pika.exceptions.NackError):
        confirming.basic_publish(fanout, "", b"m")
    assert get_bodies(confirming, free) == [b"m"]


def test_without_confirms_refused_messages_are_dropped(ch, names):
    queue = names("reject")
    ch.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    for body in [b"a", b"b", b"c"]:
        ch.basic_publish("", queue, body)
    assert get_bodies(ch, queue) == [b"a"]


def test_unacked_messages_do_not_count_against_the_limit(confirming, names):
    queue = names("reject")
    confirming.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    confirming.basic_publish("", queue, b"a")
    method, _, _ = confirming.basic_get(queue, auto_ack=False)
    confirming.basic_publish("", queue, b"b")
    confirming.basic_nack(method.delivery_tag, requeue=True)
    # The returned message takes its place back, over the limit.
    assert get_bodies(confirming, queue) == [b"a", b"b"]


def test_queue_without_limits_confirms_transient_messages_at_once(confirming, names):
    queue = names("plain")
    confirming.queue_declare(queue)
    for i in range(50):
        confirming.basic_publish("", queue, str(i).encode())
    assert confirming.queue_declare(queue, passive=True).method.message_count == 50
