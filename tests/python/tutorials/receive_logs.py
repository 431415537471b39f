#!/usr/bin/env python
"""Tutorial 3, "Publish/Subscribe": print every log line broadcast on "logs"."""
import os
import sys

import pika


def main():
    params = pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    connection = pika.BlockingConnection(params)
    channel = connection.channel()

    channel.exchange_declare(exchange="logs", exchange_type="fanout")

    # A fresh, server-named queue of our own that disappears when we disconnect.
    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    channel.queue_bind(exchange="logs", queue=queue_name)

    def on_log(ch, method, properties, body):
        print(f" [x] {body.decode()}")

    print(" [*] Waiting for logs. To exit press CTRL+C")
    channel.basic_consume(queue=queue_name, on_message_callback=on_log, auto_ack=True)

    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        try:
            sys.exit(0)
        except SystemExit:
            os._exit(0)
