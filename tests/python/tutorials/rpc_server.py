#!/usr/bin/env python
"""Tutorial 6, "RPC": answer Fibonacci requests from "rpc_queue" on each caller's reply_to."""
import os

import pika

params = pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
connection = pika.BlockingConnection(params)
channel = connection.channel()

channel.queue_declare(queue="rpc_queue")


def fib(n):
    # Deliberately the slow recursive definition, as in the tutorial.
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


def on_request(ch, method, props, body):
    n = int(body)

    print(f" [.] fib({n})")
    response = fib(n)

    # Reply to the caller's queue, tagged with its correlation id.
    ch.basic_publish(
        exchange="",
        routing_key=props.reply_to,
        properties=pika.BasicProperties(correlation_id=props.correlation_id),
        body=str(response),
    )
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue="rpc_queue", on_message_callback=on_request)

print(" [x] Awaiting RPC requests")
try:
    channel.start_consuming()
except KeyboardInterrupt:
    print("Interrupted")
