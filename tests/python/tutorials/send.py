#!/usr/bin/env python
"""Tutorial 1, "Hello World!": put one message on the queue "hello"."""
import os

import pika

params = pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
connection = pika.BlockingConnection(params)
channel = connection.channel()

# Declaring is idempotent: whichever of sender and receiver runs first creates it.
channel.queue_declare(queue="hello")

channel.basic_publish(exchange="", routing_key="hello", body="Hello World!")
print(" [x] Sent 'Hello World!'")

connection.close()
