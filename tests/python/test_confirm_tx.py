"""Publisher confirms and AMQP transactions."""

from __future__ import annotations

import pika

from amqp_support import channel_closed_by_broker, get_bodies, message_count, wait_until


def test_confirmed_publishes_are_acked_and_enqueued(broker, ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    for i in range(50):
        # In confirm mode BlockingChannel.basic_publish waits for the broker's ack and
        # raises NackError/UnroutableError otherwise.
        ch.basic_publish("", queue, str(i).encode())
    assert ch.queue_declare(queue, passive=True).method.message_count == 50


def test_persistent_message_to_durable_queue_is_confirmed(broker, ch, names):
    queue = names("durable")
    ch.queue_declare(queue, durable=True)
    try:
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"kept", pika.BasicProperties(delivery_mode=2))
        assert message_count(broker, queue) == 1
    finally:
        ch.queue_delete(queue)


def test_unroutable_non_mandatory_publish_is_still_confirmed(ch, names):
    ch.confirm_delivery()
    ch.basic_publish("amq.direct", names("nowhere"), b"dropped")
    assert ch.is_open


def test_confirm_select_is_idempotent(ch):
    ch.confirm_delivery()
    ch._impl.confirm_delivery(ack_nack_callback=lambda *a: None)  # a second confirm.select
    ch.basic_qos(prefetch_count=0)
    assert ch.is_open


def test_confirm_deliveries_carry_increasing_tags(conn):
    # The asynchronous channel reports each basic.ack the broker sends.
    acks = []
    impl = conn.channel()._impl
    impl.confirm_delivery(ack_nack_callback=lambda frame: acks.append(frame.method))
    queue_ok = []
    impl.queue_declare("", exclusive=True, callback=lambda f: queue_ok.append(f.method.queue))
    assert wait_until(conn, lambda: queue_ok)
    for i in range(10):
        impl.basic_publish("", queue_ok[0], str(i).encode())

    def confirmed_up_to():
        return max((m.delivery_tag for m in acks), default=0)

    assert wait_until(conn, lambda: confirmed_up_to() == 10)
    assert all(m.NAME == "Basic.Ack" for m in acks)
    singles = [m.delivery_tag for m in acks if not m.multiple]
    assert singles == sorted(singles)


def test_tx_and_confirm_modes_exclude_each_other(conn):
    tx = conn.channel()
    tx.tx_select()
    with channel_closed_by_broker(406, "cannot switch from tx to confirm mode"):
        tx.confirm_delivery()
    confirm = conn.channel()
    confirm.confirm_delivery()
    with channel_closed_by_broker(406, "cannot switch from confirm to tx mode"):
        confirm.tx_select()


def test_tx_rollback_discards_publishes_and_commit_delivers(ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    ch.basic_publish("", queue, b"rolled back")
    ch.basic_qos(prefetch_count=0)
    assert ch.queue_declare(queue, passive=True).method.message_count == 0
    ch.tx_rollback()
    assert ch.queue_declare(queue, passive=True).method.message_count == 0
    ch.basic_publish("", queue, b"committed 1")
    ch.basic_publish("", queue, b"committed 2")
    ch.tx_commit()
    assert get_bodies(ch, queue) == [b"committed 1", b"committed 2"]


def test_tx_acks_take_effect_only_at_commit(conn, ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", queue, b"a")
    ch.basic_publish("", queue, b"b")
    ch.tx_select()
    first, _, _ = ch.basic_get(queue)
    ch.basic_ack(first.delivery_tag)
    ch.tx_rollback()
    # Still unacked on this channel after the rollback: ackable again, this time committed.
    second, _, _ = ch.basic_get(queue)
    ch.basic_ack(second.delivery_tag)
    ch.basic_ack(first.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert get_bodies(conn.channel(), queue) == []


def test_rolled_back_ack_leaves_the_message_to_be_requeued(conn, ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", queue, b"kept")
    ch.tx_select()
    method, _, _ = ch.basic_get(queue)
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    ch.close()
    method, _, body = conn.channel().basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"kept", True)


def test_tx_reject_without_requeue_takes_effect_at_commit(conn, ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", queue, b"dropped at commit")
    ch.tx_select()
    method, _, _ = ch.basic_get(queue)
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.tx_commit()
    ch.close()
    assert get_bodies(conn.channel(), queue) == []


def test_commit_without_select_is_precondition_failed(conn):
    with channel_closed_by_broker(406, "channel is not transactional"):
        conn.channel().tx_commit()
    with channel_closed_by_broker(406, "channel is not transactional"):
        conn.channel().tx_rollback()


def test_channel_stays_transactional_after_commit(ch):
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    ch.basic_publish("", queue, b"1")
    ch.tx_commit()
    ch.basic_publish("", queue, b"2")
    ch.tx_rollback()
    assert get_bodies(ch, queue) == [b"1"]
