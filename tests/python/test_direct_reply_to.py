"""Direct reply-to: RPC replies that reach the caller's channel without a reply queue.

Pinned against RabbitMQ 3.10 (WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5672/%2F).
Two things RabbitMQ 3.10 does that Warren does not, and that these tests therefore leave
alone: it returns a *mandatory* reply even when the caller received it, and it gives a
reply the delivery tag the channel's next queue delivery will also get.
"""

from __future__ import annotations

import time

import pika
import pytest

from amqp_support import channel_closed_by_broker, wait_until

PSEUDO_QUEUE = "amq.rabbitmq.reply-to"


class Replies:
    """Collects what a reply consumer receives: (method, properties, body) triples."""

    def __init__(self):
        self.items = []

    def __call__(self, _ch, method, props, body):
        self.items.append((method, props, body))

    @property
    def bodies(self):
        return [body for _, _, body in self.items]


@pytest.fixture
def server(broker):
    """A second connection, the RPC server's."""
    connection = broker.connect()
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def request_queue(server, names):
    name = names("requests")
    server.channel().queue_declare(name, auto_delete=True)
    return name


def send_request(ch, queue, body=b"request", **props):
    ch.basic_publish("", queue, body, pika.BasicProperties(reply_to=PSEUDO_QUEUE, **props))


def receive_request(server_conn, queue, timeout_s=5.0):
    """The next request as the server sees it (polls: the caller's publish is asynchronous)."""
    ch = server_conn.channel()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            ch.close()
            return props, body
        server_conn.process_data_events(time_limit=0.02)
    pytest.fail(f"no request arrived on {queue}")


def test_reply_reaches_the_caller_without_a_queue(conn, ch, server, request_queue):
    replies = Replies()
    tag = ch.basic_consume(PSEUDO_QUEUE, replies, auto_ack=True)
    send_request(ch, request_queue, b"ping", correlation_id="c1")

    props, body = receive_request(server, request_queue)
    assert body == b"ping"
    assert props.correlation_id == "c1"
    assert props.reply_to.startswith(PSEUDO_QUEUE + ".")
    assert len(props.reply_to) > len(PSEUDO_QUEUE) + 1

    reply_props = pika.BasicProperties(correlation_id="c1", content_type="text/plain", headers={"h": 1})
    server.channel().basic_publish("", props.reply_to, b"pong", reply_props)

    assert wait_until(conn, lambda: replies.items)
    method, got_props, got_body = replies.items[0]
    assert got_body == b"pong"
    assert method.consumer_tag == tag
    assert (method.exchange, method.routing_key) == ("", props.reply_to)
    assert not method.redelivered
    assert (got_props.correlation_id, got_props.content_type, got_props.headers) == ("c1", "text/plain", {"h": 1})


def test_every_request_of_a_channel_carries_the_same_reply_name(ch, server, request_queue):
    ch.basic_consume(PSEUDO_QUEUE, Replies(), auto_ack=True)
    send_request(ch, request_queue, b"a")
    send_request(ch, request_queue, b"b")
    first, _ = receive_request(server, request_queue)
    second, _ = receive_request(server, request_queue)
    assert first.reply_to == second.reply_to


def test_replies_go_only_to_the_channel_that_asked(conn, server, request_queue):
    callers = [conn.channel() for _ in range(3)]
    inboxes = [Replies() for _ in callers]
    for caller, inbox in zip(callers, inboxes):
        caller.basic_consume(PSEUDO_QUEUE, inbox, auto_ack=True)
    names = []
    for i, caller in enumerate(callers):
        send_request(caller, request_queue, str(i).encode())
        props, _ = receive_request(server, request_queue)
        names.append(props.reply_to)
    assert len(set(names)) == 3
    replier = server.channel()
    for i, name in enumerate(names):
        for n in range(2):
            replier.basic_publish("", name, f"{i}.{n}".encode())
    assert wait_until(conn, lambda: all(len(inbox.items) == 2 for inbox in inboxes))
    for i, inbox in enumerate(inboxes):
        assert inbox.bodies == [f"{i}.0".encode(), f"{i}.1".encode()]


def test_reply_published_in_confirm_mode_is_confirmed(conn, ch, server, request_queue):
    replies = Replies()
    ch.basic_consume(PSEUDO_QUEUE, replies, auto_ack=True)
    send_request(ch, request_queue)
    props, _ = receive_request(server, request_queue)
    replier = server.channel()
    replier.confirm_delivery()
    replier.basic_publish("", props.reply_to, b"confirmed reply")
    assert wait_until(conn, lambda: replies.bodies == [b"confirmed reply"])


def test_consuming_replies_in_ack_mode_is_refused(ch):
    with channel_closed_by_broker(406, "reply consumer cannot acknowledge"):
        ch.basic_consume(PSEUDO_QUEUE, Replies(), auto_ack=False)


def test_second_reply_consumer_on_a_channel_is_refused(ch):
    ch.basic_consume(PSEUDO_QUEUE, Replies(), auto_ack=True)
    with channel_closed_by_broker(406, "reply consumer already set"):
        ch.basic_consume(PSEUDO_QUEUE, Replies(), auto_ack=True)


def test_request_with_reply_to_before_consuming_replies_is_refused(ch, request_queue):
    send_request(ch, request_queue)
    with channel_closed_by_broker(406, "fast reply consumer does not exist"):
        ch.queue_declare(PSEUDO_QUEUE, passive=True)


def test_request_after_cancelling_the_reply_consumer_is_refused(ch, request_queue):
    tag = ch.basic_consume(PSEUDO_QUEUE, Replies(), auto_ack=True)
    ch.basic_cancel(tag)
    send_request(ch, request_queue)
    with channel_closed_by_broker(406, "fast reply consumer does not exist"):
        ch.queue_declare(PSEUDO_QUEUE, passive=True)


def test_pseudo_queue_declares_with_no_messages_and_one_consumer(ch):
    for kwargs in ({"passive": True}, {}, {"durable": True, "exclusive": True}):
        ok = ch.queue_declare(PSEUDO_QUEUE, **kwargs).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (PSEUDO_QUEUE, 0, 1)


def test_reply_name_declares_while_its_caller_lives(broker, ch, server, request_queue):
    tag = ch.basic_consume(PSEUDO_QUEUE, Replies(), auto_ack=True)
    send_request(ch, request_queue)
    props, _ = receive_request(server, request_queue)
    ok = server.channel().queue_declare(props.reply_to, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (props.reply_to, 0, 1)
    ch.basic_cancel(tag)
    with channel_closed_by_broker(404, f"no queue '{props.reply_to}' in vhost '/'"):
        server.channel().queue_declare(props.reply_to, passive=True)


@pytest.mark.parametrize("name", [PSEUDO_QUEUE + ".garbage", PSEUDO_QUEUE + "x"])
def test_names_under_the_pseudo_queue_that_were_never_issued_are_not_found(ch, name):
    with channel_closed_by_broker(404, f"no queue '{name}' in vhost '/'"):
        ch.queue_declare(name)


def test_pseudo_queue_cannot_be_read_with_basic_get(ch):
    with channel_closed_by_broker(404, f"no queue '{PSEUDO_QUEUE}' in vhost '/'"):
        ch.basic_get(PSEUDO_QUEUE)


def test_reply_after_the_caller_cancelled_is_dropped(conn, ch, server, request_queue):
    replies = Replies()
    tag = ch.basic_consume(PSEUDO_QUEUE, replies, auto_ack=True)
    send_request(ch, request_queue)
    props, _ = receive_request(server, request_queue)
    ch.basic_cancel(tag)
    replier = server.channel()
    replier.basic_publish("", props.reply_to, b"too late")
    conn.process_data_events(time_limit=0.3)
    assert replies.items == []
    assert replier.is_open


def caller_gone(broker, server, request_queue):
    """The reply-to name of a caller whose connection has closed."""
    caller = broker.connect()
    ch = caller.channel()
    ch.basic_consume(PSEUDO_QUEUE, Replies(), auto_ack=True)
    send_request(ch, request_queue)
    props, _ = receive_request(server, request_queue)
    caller.close()
    return props.reply_to


def test_reply_to_a_caller_that_is_gone_is_dropped(broker, server, request_queue):
    name = caller_gone(broker, server, request_queue)
    replier = server.channel()
    returned = []
    replier.add_on_return_callback(lambda *a: returned.append(a))
    replier.basic_publish("", name, b"nobody listens")
    server.process_data_events(time_limit=0.3)
    assert returned == []
    assert replier.is_open
    with channel_closed_by_broker(404, f"no queue '{name}'"):
        server.channel().queue_declare(name, passive=True)


def test_mandatory_reply_to_a_caller_that_is_gone_is_returned_no_route(broker, server, request_queue):
    name = caller_gone(broker, server, request_queue)
    replier = server.channel()
    returned = []
    replier.add_on_return_callback(lambda _ch, method, props, body: returned.append((method, props, body)))
    replier.basic_publish("", name, b"bounced", pika.BasicProperties(correlation_id="c9"), mandatory=True)
    assert wait_until(server, lambda: returned)
    method, props, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == ("", name)
    assert props.correlation_id == "c9"
    assert body == b"bounced"
    assert replier.is_open


def test_server_advertises_direct_reply_to(conn):
    assert conn._impl.server_capabilities.get("direct_reply_to") is True
