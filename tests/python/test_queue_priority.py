"""Priorities and consumer order: `x-max-priority` queues, consumer `x-priority`, and
`x-single-active-consumer`."""

from __future__ import annotations

import pika

from amqp_support import get_bodies, wait_until


def publish_with_priorities(ch, queue, priorities):
    ch.confirm_delivery()
    for i, p in enumerate(priorities):
        ch.basic_publish("", queue, f"{i}:{p}".encode(), pika.BasicProperties(priority=p))


def test_higher_priority_first_fifo_within_a_priority(ch, names):
    queue = names("prio")
    ch.queue_declare(queue, arguments={"x-max-priority": 5})
    publish_with_priorities(ch, queue, [None, 3, 9, 5, 0, 3, 200])
    # Above the maximum counts as the maximum; no priority is 0.
    assert get_bodies(ch, queue) == [b"2:9", b"3:5", b"6:200", b"1:3", b"5:3", b"0:None", b"4:0"]


def test_requeued_messages_return_to_their_place_in_their_priority(ch, names):
    queue = names("prio")
    ch.queue_declare(queue, arguments={"x-max-priority": 9})
    publish_with_priorities(ch, queue, [None, 3, 9, 5, 0, 3])
    taken = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            break
        taken.append((method.delivery_tag, body))
    for tag, body in taken:
        if body in (b"1:3", b"2:9", b"4:0"):
            ch.basic_nack(tag, requeue=True)
        else:
            ch.basic_ack(tag)
    assert get_bodies(ch, queue) == [b"2:9", b"1:3", b"4:0"]


def test_priority_property_is_ignored_without_max_priority(ch, names):
    queue = names("fifo")
    ch.queue_declare(queue)
    publish_with_priorities(ch, queue, [1, 9, 5])
    assert get_bodies(ch, queue) == [b"0:1", b"1:9", b"2:5"]


def test_high_priority_consumer_gets_messages_while_it_has_credit(broker, names):
    conn = broker.connect()
    try:
        setup = conn.channel()
        queue = names("cprio")
        setup.queue_declare(queue)
        got = []
        low, high = conn.channel(), conn.channel()
        high.basic_qos(prefetch_count=2)
        low.basic_consume(queue, lambda c, m, p, b: got.append(("low", b)), arguments={"x-priority": 0})
        high.basic_consume(queue, lambda c, m, p, b: got.append(("high", b)), arguments={"x-priority": 10})
        setup.confirm_delivery()
        for i in range(5):
            setup.basic_publish("", queue, str(i).encode())
        assert wait_until(conn, lambda: len(got) == 5)
        assert [who for who, _ in got].count("high") == 2
        assert sorted(b for who, b in got if who == "high") == [b"0", b"1"]
        setup.queue_delete(queue)
    finally:
        conn.close()


def test_single_active_consumer_receives_all_and_the_next_takes_over(broker, names):
    conn = broker.connect()
    try:
        setup = conn.channel()
        queue = names("sac")
        setup.queue_declare(queue, arguments={"x-single-active-consumer": True})
        got = []
        first, second = conn.channel(), conn.channel()
        first.basic_qos(prefetch_count=10)
        first.basic_consume(queue, lambda c, m, p, b: got.append(("first", b, m.delivery_tag)))
        second.basic_consume(queue, lambda c, m, p, b: got.append(("second", b, m.delivery_tag)))
        setup.confirm_delivery()
        for i in range(4):
            setup.basic_publish("", queue, str(i).encode())
        assert wait_until(conn, lambda: len(got) == 4)
        assert {who for who, _, _ in got} == {"first"}
        # The active consumer's channel closes without acking: its messages and the rest go
        # to the next consumer, in order.
        first.close()
        setup.basic_publish("", queue, b"4")
        assert wait_until(conn, lambda: len(got) == 9)
        assert [(who, b) for who, b, _ in got[4:]] == [("second", str(i).encode()) for i in range(5)]
        setup.queue_delete(queue)
    finally:
        conn.close()
