"""basic.consume and acknowledgements: acks, nacks, rejects, requeue order, prefetch, cancel."""

from __future__ import annotations

import pytest

from amqp_support import (
    channel_closed_by_broker,
    connection_closed_by_broker,
    get_bodies,
    wait_until,
)


class Inbox:
    """Collects deliveries of one consumer: (method, properties, body) triples."""

    def __init__(self):
        self.items = []

    def __call__(self, _ch, method, props, body):
        self.items.append((method, props, body))

    @property
    def bodies(self):
        return [body for _, _, body in self.items]

    @property
    def tags(self):
        return [method.delivery_tag for method, _, _ in self.items]


def settle(conn, seconds=0.3):
    """Let deliveries that could still arrive arrive, so their absence means something."""
    conn.process_data_events(time_limit=seconds)


@pytest.fixture
def queue(ch, names):
    name = names("q")
    ch.queue_declare(name)
    yield name
    cleanup = ch if ch.is_open else (ch.connection.channel() if ch.connection.is_open else None)
    if cleanup is not None:
        cleanup.queue_delete(name)


def publish(ch, queue, count, prefix="m"):
    bodies = [f"{prefix}{i}".encode() for i in range(count)]
    for body in bodies:
        ch.basic_publish("", queue, body)
    return bodies


def test_auto_ack_consumer_receives_in_fifo_order(conn, ch, queue):
    sent = publish(ch, queue, 20)
    inbox = Inbox()
    ch.basic_consume(queue, inbox, auto_ack=True)
    assert wait_until(conn, lambda: len(inbox.items) == 20)
    assert inbox.bodies == sent
    assert all(not m.redelivered for m, _, _ in inbox.items)
    assert get_bodies(ch, queue) == []


def test_client_chosen_consumer_tag_is_kept(ch, queue):
    # pika always picks the tag itself; server-generated tags are tested in test_raw_protocol.
    assert ch.basic_consume(queue, lambda *a: None, consumer_tag="my-tag") == "my-tag"
    assert ch.consumer_tags == ["my-tag"]


def test_consume_from_missing_queue_is_not_found(ch, names):
    missing = names("q")
    with channel_closed_by_broker(404, f"no queue '{missing}' in vhost '/'"):
        ch.basic_consume(missing, lambda *a: None)


def test_manual_ack_removes_only_acked_messages(conn, ch, queue):
    publish(ch, queue, 3)
    inbox = Inbox()
    ch.basic_consume(queue, inbox)
    assert wait_until(conn, lambda: len(inbox.items) == 3)
    ch.basic_ack(inbox.tags[1])
    ch.close()
    again = conn.channel()
    assert get_bodies(again, queue) == [b"m0", b"m2"]


def test_ack_multiple_acks_everything_up_to_the_tag(conn, ch, queue):
    publish(ch, queue, 5)
    inbox = Inbox()
    ch.basic_consume(queue, inbox)
    assert wait_until(conn, lambda: len(inbox.items) == 5)
    ch.basic_ack(inbox.tags[2], multiple=True)
    ch.close()
    assert get_bodies(conn.channel(), queue) == [b"m3", b"m4"]


def test_nack_with_requeue_redelivers_with_redelivered_flag(conn, ch, queue):
    publish(ch, queue, 1)
    method, _, _ = ch.basic_get(queue)
    assert method.redelivered is False
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _, body = ch.basic_get(queue)
    assert (body, method.redelivered) == (b"m0", True)
    ch.basic_ack(method.delivery_tag)


def test_nack_without_requeue_discards(ch, queue):
    publish(ch, queue, 2)
    first, _, _ = ch.basic_get(queue)
    ch.basic_nack(first.delivery_tag, requeue=False)
    assert get_bodies(ch, queue) == [b"m1"]


def test_nack_multiple_requeues_all_up_to_the_tag(conn, ch, queue):
    publish(ch, queue, 4)
    inbox = Inbox()
    ch.basic_consume(queue, inbox)
    assert wait_until(conn, lambda: len(inbox.items) == 4)
    ch.basic_cancel(ch.consumer_tags[0])
    ch.basic_nack(inbox.tags[2], multiple=True, requeue=True)
    ch.basic_ack(inbox.tags[3])
    got = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        got.append((body, method.redelivered))
    assert got == [(b"m0", True), (b"m1", True), (b"m2", True)]


def test_reject_with_and_without_requeue(ch, queue):
    publish(ch, queue, 2)
    first, _, _ = ch.basic_get(queue)
    ch.basic_reject(first.delivery_tag, requeue=False)
    second, _, _ = ch.basic_get(queue)
    ch.basic_reject(second.delivery_tag, requeue=True)
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"m1", True)
    assert ch.basic_get(queue)[0] is None


def test_requeued_message_goes_back_to_its_original_position(ch, queue):
    publish(ch, queue, 3)
    first, _, _ = ch.basic_get(queue)
    ch.basic_nack(first.delivery_tag, requeue=True)
    assert get_bodies(ch, queue) == [b"m0", b"m1", b"m2"]


def test_two_consumers_on_one_queue_are_served_round_robin(conn, ch, queue):
    a, b = Inbox(), Inbox()
    ch.basic_consume(queue, a, auto_ack=True)
    other = conn.channel()
    other.basic_consume(queue, b, auto_ack=True)
    sent = publish(ch, queue, 10)
    assert wait_until(conn, lambda: len(a.items) + len(b.items) == 10)
    assert len(a.items) == 5 and len(b.items) == 5
    assert sorted(a.bodies + b.bodies) == sorted(sent)
    evens, odds = sent[0::2], sent[1::2]
    assert {tuple(a.bodies), tuple(b.bodies)} == {tuple(evens), tuple(odds)}


def test_prefetch_count_limits_unacked_deliveries_per_consumer(conn, ch, queue):
    ch.basic_qos(prefetch_count=2)
    publish(ch, queue, 5)
    inbox = Inbox()
    ch.basic_consume(queue, inbox)
    assert wait_until(conn, lambda: len(inbox.items) == 2)
    settle(conn)
    assert inbox.bodies == [b"m0", b"m1"]
    ch.basic_ack(inbox.tags[0])
    assert wait_until(conn, lambda: len(inbox.items) == 3)
    settle(conn)
    assert inbox.bodies == [b"m0", b"m1", b"m2"]
    ch.basic_ack(inbox.tags[2], multiple=True)
    assert wait_until(conn, lambda: len(inbox.items) == 5)


def test_per_consumer_prefetch_applies_to_each_consumer(conn, ch, names):
    q1, q2 = names("q1"), names("q2")
    for q in (q1, q2):
        ch.queue_declare(q, exclusive=True)
        publish(ch, q, 4, prefix=q[-2:])
    ch.basic_qos(prefetch_count=1)
    first, second = Inbox(), Inbox()
    ch.basic_consume(q1, first)
    ch.basic_consume(q2, second)
    assert wait_until(conn, lambda: len(first.items) == 1 and len(second.items) == 1)
    settle(conn)
    assert (len(first.items), len(second.items)) == (1, 1)


def test_global_qos_limits_the_whole_channel(conn, ch, names):
    q1, q2 = names("q1"), names("q2")
    for q in (q1, q2):
        ch.queue_declare(q, exclusive=True)
        publish(ch, q, 4)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    first, second = Inbox(), Inbox()
    ch.basic_consume(q1, first)
    ch.basic_consume(q2, second)
    assert wait_until(conn, lambda: len(first.items) + len(second.items) == 3)
    settle(conn)
    assert len(first.items) + len(second.items) == 3
    ch.basic_ack(0, multiple=True)
    assert wait_until(conn, lambda: len(first.items) + len(second.items) == 6)
    settle(conn)
    assert len(first.items) + len(second.items) == 6


def test_prefetch_does_not_limit_auto_ack_consumers(conn, ch, queue):
    ch.basic_qos(prefetch_count=1)
    publish(ch, queue, 5)
    inbox = Inbox()
    ch.basic_consume(queue, inbox, auto_ack=True)
    assert wait_until(conn, lambda: len(inbox.items) == 5)


def test_exclusive_consumer_locks_out_other_consumers(broker, ch, queue):
    ch.basic_consume(queue, lambda *a: None, exclusive=True)
    other = broker.connect()
    try:
        with channel_closed_by_broker(403, f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"):
            other.channel().basic_consume(queue, lambda *a: None)
    finally:
        other.close()


def test_exclusive_consume_on_a_queue_with_consumers_is_access_refused(conn, ch, queue):
    ch.basic_consume(queue, lambda *a: None)
    with channel_closed_by_broker(403, f"queue '{queue}' in vhost '/' in exclusive use"):
        conn.channel().basic_consume(queue, lambda *a: None, exclusive=True)


def test_cancel_stops_deliveries(conn, ch, queue):
    inbox = Inbox()
    tag = ch.basic_consume(queue, inbox, auto_ack=True)
    publish(ch, queue, 1, prefix="before")
    assert wait_until(conn, lambda: len(inbox.items) == 1)
    ch.basic_cancel(tag)
    assert ch.consumer_tags == []
    publish(ch, queue, 1, prefix="after")
    settle(conn)
    assert inbox.bodies == [b"before0"]
    assert get_bodies(ch, queue) == [b"after0"]


def test_cancel_leaves_unacked_messages_with_the_channel(conn, ch, queue):
    publish(ch, queue, 2)
    inbox = Inbox()
    tag = ch.basic_consume(queue, inbox)
    assert wait_until(conn, lambda: len(inbox.items) == 2)
    ch.basic_cancel(tag)
    # Still unacked on this channel: not ready in the queue, but ackable.
    assert ch.basic_get(queue)[0] is None
    ch.basic_ack(inbox.tags[0])
    ch.close()
    assert get_bodies(conn.channel(), queue) == [b"m1"]


def test_deleting_the_queue_sends_basic_cancel_to_its_consumers(conn, ch, names):
    queue = names("q")
    ch.queue_declare(queue)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(queue, lambda *a: None)
    conn.channel().queue_delete(queue)
    assert wait_until(conn, lambda: cancelled)
    assert cancelled == [tag]
    assert ch.consumer_tags == []
    assert ch.is_open


def test_consume_generator_ends_when_the_queue_is_deleted(conn, ch, names):
    queue = names("q")
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"only")
    seen = []
    deleter = conn.channel()
    for method, _props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=5):
        assert method is not None, "no basic.cancel within 5 s of the queue's deletion"
        seen.append(body)
        deleter.queue_delete(queue)
    assert seen == [b"only"]


def test_recover_with_requeue_redelivers_unacked_messages(conn, ch, queue):
    publish(ch, queue, 3)
    inbox = Inbox()
    ch.basic_qos(prefetch_count=10)
    ch.basic_consume(queue, inbox)
    assert wait_until(conn, lambda: len(inbox.items) == 3)
    ch.basic_ack(inbox.tags[0])
    ch.basic_recover(requeue=True)
    assert wait_until(conn, lambda: len(inbox.items) == 5)
    redelivered = inbox.items[3:]
    assert [body for _, _, body in redelivered] == [b"m1", b"m2"]
    assert all(m.redelivered for m, _, _ in redelivered)


def test_recover_without_requeue_is_not_implemented(conn, ch, queue):
    # RabbitMQ closes the connection: 540 NOT_IMPLEMENTED - requeue=false.
    with connection_closed_by_broker(540, "requeue=false"):
        ch.basic_recover(requeue=False)


@pytest.mark.parametrize("closer", ["channel", "connection"])
def test_unacked_messages_return_in_order_marked_redelivered_when_consumer_goes_away(
    broker, ch, queue, closer
):
    publish(ch, queue, 6)
    consumer_conn = broker.connect()
    consumer = consumer_conn.channel()
    inbox = Inbox()
    consumer.basic_consume(queue, inbox)
    assert wait_until(consumer_conn, lambda: len(inbox.items) == 6)
    consumer.basic_ack(inbox.tags[1])
    consumer.basic_ack(inbox.tags[4])
    if closer == "channel":
        consumer.close()
        consumer_conn.close()
    else:
        consumer_conn.close()
    got = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        got.append((body, method.redelivered))
    assert got == [(b"m0", True), (b"m2", True), (b"m3", True), (b"m5", True)]


def test_ack_of_unknown_delivery_tag_is_precondition_failed(ch):
    with channel_closed_by_broker(406, "PRECONDITION_FAILED - unknown delivery tag 42"):
        ch.basic_ack(42)
        ch.basic_qos(prefetch_count=0)


def test_double_ack_is_precondition_failed(ch, queue):
    publish(ch, queue, 1)
    method, _, _ = ch.basic_get(queue)
    ch.basic_ack(method.delivery_tag)
    with channel_closed_by_broker(406, f"unknown delivery tag {method.delivery_tag}"):
        ch.basic_ack(method.delivery_tag)
        ch.basic_qos(prefetch_count=0)


@pytest.mark.parametrize("settle_op", ["nack", "reject"])
def test_nack_or_reject_of_unknown_tag_is_precondition_failed(ch, settle_op):
    with channel_closed_by_broker(406, "unknown delivery tag 7"):
        getattr(ch, f"basic_{settle_op}")(7)
        ch.basic_qos(prefetch_count=0)


def test_ack_multiple_with_tag_zero_acks_everything(ch, queue):
    publish(ch, queue, 3)
    for _ in range(3):
        ch.basic_get(queue)
    ch.basic_ack(0, multiple=True)
    ch.close()
    assert get_bodies(ch.connection.channel(), queue) == []


def test_ack_of_auto_acked_delivery_is_precondition_failed(conn, ch, queue):
    publish(ch, queue, 1)
    inbox = Inbox()
    ch.basic_consume(queue, inbox, auto_ack=True)
    assert wait_until(conn, lambda: inbox.items)
    with channel_closed_by_broker(406, "unknown delivery tag 1"):
        ch.basic_ack(inbox.tags[0])
        ch.basic_qos(prefetch_count=0)


def test_message_goes_to_another_consumer_after_nack(conn, ch, queue):
    # Round-trip through requeue: with a slow consumer holding prefetch 1, a requeued
    # message is delivered again, to whichever consumer has credit.
    ch.basic_qos(prefetch_count=1)
    publish(ch, queue, 1)
    inbox = Inbox()
    ch.basic_consume(queue, inbox)
    assert wait_until(conn, lambda: len(inbox.items) == 1)
    ch.basic_nack(inbox.tags[0], requeue=True)
    assert wait_until(conn, lambda: len(inbox.items) == 2)
    method, _, body = inbox.items[1]
    assert (body, method.redelivered) == (b"m0", True)
    ch.basic_ack(method.delivery_tag)
