#!/usr/bin/env python
"""Tutorial 2, "Work queues": publish a task; each '.' in it is one second of work."""
import os
import sys

import pika

params = pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"))
connection = pika.BlockingConnection(params)
channel = connection.channel()

# A durable queue and persistent messages: tasks survive a broker restart.
channel.queue_declare(queue="task_queue", durable=True)

message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key="task_queue",
    body=message,
    properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
)
print(f" [x] Sent {message}")

connection.close()
