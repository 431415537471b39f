#!/usr/bin/env python
"""Tutorial 1, "Hello World!": print every message arriving on the queue "hello"."""
import os
import sys

import pika


def main():
    params = pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
    connection = pika.BlockingConnection(params)
    channel = connection.channel()

    channel.queue_declare(queue="hello")

    def on_message(ch, method, properties, body):
        print(f" [x] Received {body.decode()}")

    channel.basic_consume(queue="hello", on_message_callback=on_message, auto_ack=True)

    print(" [*] Waiting for messages. To exit press CTRL+C")
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
