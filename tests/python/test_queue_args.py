"""Queue and consumer argument validation: wrong types, out-of-range values, unknown modes,
queue types and their rules, redeclare equivalence; texts as RabbitMQ 3.10 words them."""

from __future__ import annotations

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from amqp_support import channel_closed_by_broker

INVALID_ARGS = [
    ({"x-max-length": -1}, "invalid arg 'x-max-length' for {q}: {{value_negative,-1}}"),
    ({"x-max-length": "10"}, "invalid arg 'x-max-length' for {q}: \"expected integer, got longstr\""),
    ({"x-max-length": True}, "invalid arg 'x-max-length' for {q}: \"expected integer, got bool\""),
    ({"x-max-length-bytes": -5}, "invalid arg 'x-max-length-bytes' for {q}: {{value_negative,-5}}"),
    ({"x-message-ttl": -1}, "invalid arg 'x-message-ttl' for {q}: {{value_negative,-1}}"),
    ({"x-message-ttl": 315360000001}, "invalid arg 'x-message-ttl' for {q}: {{value_too_large,315360000001}}"),
    ({"x-expires": 0}, "invalid arg 'x-expires' for {q}: {{value_zero,0}}"),
    ({"x-expires": "x"}, "invalid arg 'x-expires' for {q}: \"expected integer, got longstr\""),
    ({"x-max-priority": 256}, "invalid arg 'x-max-priority' for {q}: {{max_value_exceeded,256}}"),
    ({"x-max-priority": -1}, "invalid arg 'x-max-priority' for {q}: {{value_negative,-1}}"),
    ({"x-overflow": "bogus"}, "invalid arg 'x-overflow' for {q}: invalid_overflow"),
    ({"x-overflow": 1}, "invalid arg 'x-overflow' for {q}: {{unacceptable_type,signedint}}"),
    ({"x-dead-letter-exchange": 5}, "invalid type 'signedint' for arg 'x-dead-letter-exchange' in {q}"),
    ({"x-dead-letter-routing-key": "rk"}, "invalid arg 'x-dead-letter-routing-key' for {q}: routing_key_but_no_dlx_defined"),
    ({"x-single-active-consumer": "yes"}, "invalid arg 'x-single-active-consumer' for {q}: {{unacceptable_type,longstr}}"),
    ({"x-queue-type": "bogus"}, "invalid arg 'x-queue-type' for {q}: \"unsupported queue type 'bogus'\""),
    ({"x-queue-mode": "weird"}, "invalid arg 'x-queue-mode' for {q}: \"unsupported queue mode 'weird'\""),
    ({"x-delivery-limit": 3}, "invalid arg 'x-delivery-limit' for {q} of queue type rabbit_classic_queue"),
]


@pytest.mark.parametrize("arguments,text", INVALID_ARGS, ids=[str(a) for a, _ in INVALID_ARGS])
def test_invalid_argument_is_refused_with_406_naming_it(ch, names, arguments, text):
    queue = names("q")
    expected = "PRECONDITION_FAILED - " + text.format(q=f"queue '{queue}' in vhost '/'")
    with channel_closed_by_broker(406, expected) as info:
        ch.queue_declare(queue, arguments=arguments)
    assert info.value.reply_text == expected


@pytest.mark.parametrize(
    "flags,prop",
    [({"durable": False}, "non-durable"), ({"durable": True, "exclusive": True}, "exclusive-owner"),
     ({"durable": True, "auto_delete": True}, "auto-delete")],
)
def test_quorum_queue_must_be_durable_shared_and_not_auto_delete(ch, names, flags, prop):
    queue = names("quorum")
    with channel_closed_by_broker(406, f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{queue}' in vhost '/'"):
        ch.queue_declare(queue, arguments={"x-queue-type": "quorum"}, **flags)


def test_quorum_queue_refuses_classic_only_arguments(ch, names):
    queue = names("quorum")
    text = f"invalid arg 'x-max-priority' for queue '{queue}' in vhost '/' of queue type rabbit_quorum_queue"
    with channel_closed_by_broker(406, text):
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum", "x-max-priority": 5})


def test_quorum_queue_with_delivery_limit_is_accepted(ch, names):
    queue = names("quorum")
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 3})
    ch.queue_delete(queue)


@pytest.mark.warren_only
def test_stream_queues_are_refused_until_warren_has_them(ch, names):
    queue = names("stream")
    with channel_closed_by_broker(406, "invalid arg 'x-queue-type'") as info:
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "stream"})
    assert "'stream'" in info.value.reply_text


def test_non_durable_stream_is_refused_as_rabbitmq_does(ch, names):
    queue = names("stream")
    with channel_closed_by_broker(406, f"invalid property 'non-durable' for queue '{queue}'"):
        ch.queue_declare(queue, arguments={"x-queue-type": "stream"})


def test_valid_arguments_and_unknown_ones_are_accepted(ch, names):
    queue = names("q")
    arguments = {
        "x-message-ttl": 0, "x-expires": 60000, "x-max-length": 2**40, "x-max-length-bytes": 0,
        "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": "nowhere", "x-dead-letter-routing-key": "k",
        "x-max-priority": 255, "x-single-active-consumer": True, "x-queue-mode": "lazy", "x-queue-type": "classic",
        "x-whatever": 1,
    }
    ch.queue_declare(queue, arguments=arguments)
    ch.queue_delete(queue)


def test_redeclare_with_another_value_names_both_values(ch, conn, names):
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-max-length": 5})
    try:
        with channel_closed_by_broker(406, "") as info:
            conn.channel().queue_declare(queue, arguments={"x-max-length": 6})
        assert info.value.reply_text == (
            f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{queue}' in vhost '/': "
            "received '6' but current is '5'"
        )
        with channel_closed_by_broker(406, "received none but current is the value '5' of type 'signedint'"):
            conn.channel().queue_declare(queue)
    finally:
        conn.channel().queue_delete(queue)


def test_explicit_classic_type_is_equivalent_to_none(ch, names):
    queue = names("q")
    ch.queue_declare(queue)
    ch.queue_declare(queue, arguments={"x-queue-type": "classic"})
    ch.queue_delete(queue)


def test_redeclare_with_invalid_argument_is_inequivalent_not_invalid(ch, conn, names):
    # An existing queue is only compared, never validated again (RabbitMQ's order).
    queue = names("q")
    ch.queue_declare(queue)
    try:
        with channel_closed_by_broker(406, f"inequivalent arg 'x-max-length' for queue '{queue}'"):
            conn.channel().queue_declare(queue, arguments={"x-max-length": -1})
    finally:
        conn.channel().queue_delete(queue)


def test_consumer_priority_must_be_an_integer(ch, conn, names):
    queue = names("q")
    ch.queue_declare(queue)
    try:
        text = f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{queue}' in vhost '/': \"expected integer, got longstr\""
        with channel_closed_by_broker(406, text):
            ch.basic_consume(queue, lambda *a: None, arguments={"x-priority": "high"})
        other = conn.channel()
        tag = other.basic_consume(queue, lambda *a: None, arguments={"x-priority": -5})
        other.basic_cancel(tag)
    finally:
        conn.channel().queue_delete(queue)


@pytest.mark.parametrize(
    "expiration,reason",
    [("abc", "no_integer"), ("1.5", "{leftover_string,\".5\"}"), ("-1", "{value_negative,-1}"),
     ("315360000001", "{value_too_large,315360000001}")],
)
def test_invalid_expiration_property_closes_the_channel(ch, names, expiration, reason):
    queue = names("q")
    ch.queue_declare(queue, exclusive=True)
    with channel_closed_by_broker(406, f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"):
        ch.basic_publish("", queue, b"x", pika.BasicProperties(expiration=expiration))
        ch.queue_declare(queue, passive=True)
