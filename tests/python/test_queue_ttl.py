"""TTL: queue `x-message-ttl`, message `expiration`, and `x-expires` (an unused queue
deletes itself). Expired messages leave even when no consumer is attached."""

from __future__ import annotations

import time

import pika

from amqp_support import get_bodies, queue_exists, wait_until
from queue_args_support import wait_for_count


def test_queue_ttl_removes_messages_without_any_consumer(ch, names):
    queue = names("ttl")
    ch.queue_declare(queue, arguments={"x-message-ttl": 300})
    # Confirms make the counts below deterministic (the publishes are in the queue).
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"old")
    time.sleep(0.15)
    ch.basic_publish("", queue, b"young")
    assert ch.queue_declare(queue, passive=True).method.message_count == 2
    assert wait_for_count(ch, queue, 1) == 1
    assert get_bodies(ch, queue) == [b"young"]
    ch.queue_delete(queue)


def test_message_expiration_expires_the_message(ch, names):
    queue = names("exp")
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"short", pika.BasicProperties(expiration="100"))
    ch.basic_publish("", queue, b"long", pika.BasicProperties(expiration="60000"))
    assert wait_for_count(ch, queue, 1) == 1
    assert get_bodies(ch, queue) == [b"long"]
    ch.queue_delete(queue)


def test_the_sooner_of_queue_ttl_and_expiration_applies(ch, names):
    queue = names("ttl")
    ch.queue_declare(queue, arguments={"x-message-ttl": 100})
    ch.basic_publish("", queue, b"m", pika.BasicProperties(expiration="60000"))
    assert wait_for_count(ch, queue, 0) == 0
    ch.queue_delete(queue)


def test_per_message_ttl_waits_behind_a_longer_lived_head(ch, names):
    # RabbitMQ only expires messages at the head of the queue.
    queue = names("exp")
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"head")
    ch.basic_publish("", queue, b"short", pika.BasicProperties(expiration="50"))
    time.sleep(0.3)
    assert ch.queue_declare(queue, passive=True).method.message_count == 2
    # ...but an expired message is never handed out once it reaches the head.
    assert get_bodies(ch, queue) == [b"head"]
    ch.queue_delete(queue)


def test_zero_ttl_message_reaches_a_waiting_consumer(conn, ch, names):
    queue = names("ttl0")
    ch.queue_declare(queue, arguments={"x-message-ttl": 0})
    received = []
    ch.basic_consume(queue, lambda c, m, p, b: received.append(b), auto_ack=True)
    conn.channel().basic_publish("", queue, b"now")
    assert wait_until(conn, lambda: received == [b"now"])
    ch.queue_delete(queue)


def test_zero_ttl_message_without_consumer_is_dropped(ch, names):
    queue = names("ttl0")
    ch.queue_declare(queue, arguments={"x-message-ttl": 0})
    ch.basic_publish("", queue, b"gone")
    assert wait_for_count(ch, queue, 0) == 0
    assert ch.basic_get(queue)[0] is None
    ch.queue_delete(queue)


def test_unused_queue_with_x_expires_deletes_itself(broker, ch, names):
    queue = names("expires")
    ch.queue_declare(queue, arguments={"x-expires": 300})
    ch.basic_publish("", queue, b"kept until the queue goes")
    # Publishing is no use; a passive declare would be (so it is checked only once).
    time.sleep(0.8)
    assert not queue_exists(broker, queue)


def test_a_queue_with_a_consumer_does_not_expire(broker, conn, ch, names):
    queue = names("expires")
    ch.queue_declare(queue, arguments={"x-expires": 200})
    tag = ch.basic_consume(queue, lambda *a: None)
    conn.process_data_events(time_limit=0.6)
    assert queue_exists(broker, queue)
    ch.basic_cancel(tag)
    # Unused again from the cancel on.
    time.sleep(0.7)
    assert not queue_exists(broker, queue)


def test_redeclaring_postpones_x_expires(broker, ch, names):
    queue = names("expires")
    ch.queue_declare(queue, arguments={"x-expires": 400})
    for _ in range(4):
        time.sleep(0.2)
        ch.queue_declare(queue, arguments={"x-expires": 400})
    assert queue_exists(broker, queue)
    ch.queue_delete(queue)
