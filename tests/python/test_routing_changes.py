"""A publisher keeps routing correctly while another connection changes bindings and
queues between its publishes (Warren caches routing results per publisher; any
definition change must invalidate them)."""

from __future__ import annotations

import pika
import pytest


def count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def test_publisher_follows_binding_changes_made_by_another_connection(broker, names):
    publisher = broker.connect()
    pch = publisher.channel()
    pch.confirm_delivery()
    admin = broker.connect()
    ach = admin.channel()
    ex, q1, q2 = names("ex"), names("q1"), names("q2")
    ach.exchange_declare(ex, "direct", auto_delete=False)
    ach.queue_declare(q1)
    ach.queue_declare(q2)
    ach.queue_bind(q1, ex, routing_key="k")

    pch.basic_publish(ex, "k", b"1")
    assert (count(ach, q1), count(ach, q2)) == (1, 0)

    ach.queue_unbind(q1, ex, routing_key="k")
    ach.queue_bind(q2, ex, routing_key="k")
    pch.basic_publish(ex, "k", b"2")
    assert (count(ach, q1), count(ach, q2)) == (1, 1)

    ach.queue_delete(q2)
    with pytest.raises(pika.exceptions.UnroutableError):
        pch.basic_publish(ex, "k", b"3", mandatory=True)

    ach.queue_declare(q2)
    pch.basic_publish("", q2, b"4")  # default exchange: a queue declared after the last publish
    assert count(ach, q2) == 1

    ach.exchange_delete(ex)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        pch.basic_publish(ex, "k", b"5")
    assert info.value.reply_code == 404
    ach.queue_delete(q1)
    ach.queue_delete(q2)
    publisher.close()
    admin.close()
