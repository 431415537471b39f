"""Dead-lettering: each reason (rejected, expired, maxlen, delivery_limit), the x-death and
x-first-death-* headers exactly as RabbitMQ 3.10 writes them, dead-letter routing keys,
counts merged per (queue, reason), and cycles."""

from __future__ import annotations

import datetime
import time

import pika
import pytest

from queue_args_support import declare_dlx, poll_get, wait_for_count, x_death

DEATH_KEYS = ["count", "reason", "queue", "time", "exchange", "routing-keys"]


def assert_recent(ts):
    assert isinstance(ts, datetime.datetime), ts
    now = datetime.datetime.utcnow()
    assert abs((now - ts).total_seconds()) < 60, (now, ts)


def test_nack_without_requeue_dead_letters_with_reason_rejected(ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("src")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})
    props = pika.BasicProperties(headers={"a": 1, "CC": ["elsewhere"]}, expiration="60000", priority=3,
                                 delivery_mode=2, message_id="mid")
    ch.basic_publish("", queue, b"body", props)
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=False)
    method, props, body = poll_get(ch, dlq)
    assert body == b"body"
    assert (method.exchange, method.routing_key, method.redelivered) == (dlx, queue, False)
    # Other properties are kept; the expiration moves into the death record.
    assert (props.priority, props.delivery_mode, props.message_id, props.expiration) == (3, 2, "mid", None)
    headers = props.headers
    assert list(headers) == ["CC", "a", "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"]
    assert (headers["x-first-death-reason"], headers["x-first-death-queue"], headers["x-first-death-exchange"]) == (
        "rejected", queue, "")
    [death] = headers["x-death"]
    assert list(death) == DEATH_KEYS + ["original-expiration"]
    assert death["count"] == 1
    assert (death["reason"], death["queue"], death["exchange"]) == ("rejected", queue, "")
    assert death["routing-keys"] == [queue, "elsewhere"]
    assert death["original-expiration"] == "60000"
    assert_recent(death["time"])


def test_reject_without_requeue_dead_letters_too(ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("src")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"r")
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    _, props, body = poll_get(ch, dlq)
    assert body == b"r" and [d["reason"] for d in x_death(props)] == ["rejected"]


def test_expired_messages_are_dead_lettered_without_a_consumer(ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("ttl")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 100})
    ch.basic_publish("", queue, b"per-message", pika.BasicProperties(expiration="50"))
    ch.basic_publish("", queue, b"queue-ttl")
    first = poll_get(ch, dlq)
    second = poll_get(ch, dlq)
    assert [first[2], second[2]] == [b"per-message", b"queue-ttl"]
    [d1], [d2] = x_death(first[1]), x_death(second[1])
    assert list(d1) == DEATH_KEYS + ["original-expiration"] and d1["original-expiration"] == "50"
    assert list(d2) == DEATH_KEYS
    assert (d2["reason"], d2["queue"], d2["routing-keys"]) == ("expired", queue, [queue])
    assert second[1].headers["x-first-death-reason"] == "expired"


def test_drop_head_dead_letters_with_reason_maxlen(ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("max")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx, "x-max-length": 1})
    ch.basic_publish("", queue, b"m1")
    ch.basic_publish("", queue, b"m2")
    _, props, body = poll_get(ch, dlq)
    assert body == b"m1"
    [death] = x_death(props)
    assert (death["reason"], death["queue"], death["count"]) == ("maxlen", queue, 1)


def test_reject_publish_dlx_nacks_and_dead_letters_the_refused_message(conn, ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("rpdlx")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx, "x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    publisher = conn.channel()
    publisher.confirm_delivery()
    publisher.basic_publish("", queue, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        publisher.basic_publish("", queue, b"refused")
    _, props, body = poll_get(ch, dlq)
    assert body == b"refused"
    assert [(d["reason"], d["queue"]) for d in x_death(props)] == [("maxlen", queue)]
    assert ch.queue_declare(queue, passive=True).method.message_count == 1


def test_quorum_delivery_limit_dead_letters_with_reason_delivery_limit(ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("quorum")
    ch.queue_declare(queue, durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 2, "x-dead-letter-exchange": dlx})
    try:
        ch.basic_publish("", queue, b"poison", pika.BasicProperties(headers={"h": 1}))
        counts = []
        for _ in range(3):
            method, props, _ = poll_get(ch, queue, auto_ack=False)
            counts.append((method.redelivered, props.headers["x-delivery-count"]))
            ch.basic_nack(method.delivery_tag, requeue=True)
        assert counts == [(False, 0), (True, 1), (True, 2)]
        _, props, body = poll_get(ch, dlq)
        assert body == b"poison"
        assert "x-delivery-count" not in props.headers
        assert props.headers["h"] == 1
        [death] = x_death(props)
        assert (death["reason"], death["queue"]) == ("delivery_limit", queue)
        assert ch.queue_declare(queue, durable=True, passive=True).method.message_count == 0
    finally:
        ch.queue_delete(queue)


def test_quorum_consumer_sees_x_delivery_count_only_on_redeliveries(conn, ch, names):
    queue = names("quorum")
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        ch.basic_publish("", queue, b"c")
        seen = []

        def on_message(c, m, p, b):
            seen.append((m.redelivered, (p.headers or {}).get("x-delivery-count")))
            c.basic_nack(m.delivery_tag, requeue=len(seen) < 3)

        ch.basic_consume(queue, on_message)
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        assert seen == [(False, None), (True, 1), (True, 2)]
    finally:
        ch.queue_delete(queue)


def test_dead_letter_routing_key_replaces_the_key_and_drops_cc(ch, names):
    dlx, dlq = names("dlx"), names("dlq")
    ch.exchange_declare(dlx, exchange_type="direct")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx, routing_key="dead")
    queue = names("src")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", queue, b"m", pika.BasicProperties(headers={"CC": ["cc1"]}))
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, _ = poll_get(ch, dlq)
    assert (method.exchange, method.routing_key) == (dlx, "dead")
    assert "CC" not in props.headers
    assert x_death(props)[0]["routing-keys"] == [queue, "cc1"]


def test_deaths_are_counted_per_queue_and_reason(ch, names):
    # q1 and q2 dead-letter into each other; each rejection is a death.
    q1, q2, x1, x2 = names("q1"), names("q2"), names("x1"), names("x2")
    ch.exchange_declare(x1, exchange_type="fanout")
    ch.exchange_declare(x2, exchange_type="fanout")
    ch.queue_declare(q1, arguments={"x-dead-letter-exchange": x1})
    ch.queue_declare(q2, arguments={"x-dead-letter-exchange": x2})
    ch.queue_bind(q2, x1)
    ch.queue_bind(q1, x2)
    ch.basic_publish("", q1, b"m", pika.BasicProperties(headers={"z": 1}))

    def bounce(queue):
        method, props, _ = poll_get(ch, queue, auto_ack=False)
        ch.basic_reject(method.delivery_tag, requeue=False)
        return props

    bounce(q1)
    first_time = x_death(bounce(q2))[0]["time"]
    second = x_death(bounce(q1))
    # A new entry goes first with its keys sorted; the older one keeps its order.
    assert [(d["queue"], d["count"]) for d in second] == [(q2, 1), (q1, 1)]
    assert list(second[0]) == ["count", "exchange", "queue", "reason", "routing-keys", "time"]
    assert list(second[1]) == DEATH_KEYS
    _, props, _ = poll_get(ch, q2)
    deaths = x_death(props)
    # The entry that counted up goes first, its keys sorted, its time the first death's.
    assert [(d["queue"], d["count"]) for d in deaths] == [(q1, 2), (q2, 1)]
    assert list(deaths[0]) == ["count", "exchange", "queue", "reason", "routing-keys", "time"]
    assert deaths[0]["time"] == first_time
    assert list(props.headers) == ["x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason", "z"]
    assert props.headers["x-first-death-queue"] == q1


def test_older_deaths_are_listed_as_rabbitmq_3_10_reorders_them(ch, names):
    queues = [names(f"c{i}") for i in range(5)]
    exchanges = [names(f"cx{i}") for i in range(5)]
    for i, (q, x) in enumerate(zip(queues, exchanges)):
        ch.exchange_declare(x, exchange_type="fanout")
        ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
        if i:
            ch.queue_bind(q, exchanges[i - 1])
    ch.basic_publish("", queues[0], b"m")
    order = []
    for q in queues:
        method, props, _ = poll_get(ch, q, auto_ack=False)
        order.append([queues.index(d["queue"]) for d in x_death(props)])
        ch.basic_reject(method.delivery_tag, requeue=False)
    assert order == [[], [0], [1, 0], [2, 0, 1], [3, 1, 0, 2]]


def test_automatic_cycle_drops_the_message(ch, names):
    # Expiring into its own queue through the default exchange: RabbitMQ drops it.
    queue = names("cycle")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": "", "x-message-ttl": 50})
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"m")
    time.sleep(0.5)
    assert wait_for_count(ch, queue, 0) == 0


def test_a_rejection_in_the_cycle_lets_the_message_through(ch, names):
    queue = names("cycle")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": ""})
    ch.basic_publish("", queue, b"m")
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    _, props, body = poll_get(ch, queue)
    assert body == b"m" and [d["count"] for d in x_death(props)] == [1]


def test_missing_dead_letter_exchange_drops_the_message(ch, names):
    queue = names("src")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": names("nowhere")})
    ch.basic_publish("", queue, b"m")
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=False)
    assert wait_for_count(ch, queue, 0) == 0
    ch.queue_declare(queue, passive=True)  # the channel is still fine


def test_purged_and_acked_messages_are_not_dead_lettered(ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("src")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"acked")
    ch.basic_publish("", queue, b"purged")
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_ack(method.delivery_tag)
    ch.queue_purge(queue)
    time.sleep(0.2)
    assert ch.basic_get(dlq)[0] is None
