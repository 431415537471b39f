#!/usr/bin/env python
"""Tutorial 3, "Publish/Subscribe": broadcast a log line through the fanout exchange "logs"."""
import os
import sys

import pika

params = pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
connection = pika.BlockingConnection(params)
channel = connection.channel()

channel.exchange_declare(exchange="logs", exchange_type="fanout")

message = " ".join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(exchange="logs", routing_key="", body=message)
print(f" [x] Sent {message}")

connection.close()
