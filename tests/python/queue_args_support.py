"""Helpers for the queue-argument tests (TTL, limits, dead-lettering, priorities)."""

from __future__ import annotations

import time

import pika


def declare_dlx(ch, names, kind: str = "fanout"):
    """A dead-letter exchange and a queue bound to it (routing key '#' for topic, '' else);
    returns (exchange, queue)."""
    exchange, queue = names("dlx"), names("dlq")
    ch.exchange_declare(exchange, exchange_type=kind)
    ch.queue_declare(queue)
    ch.queue_bind(queue, exchange, routing_key="#" if kind == "topic" else "")
    return exchange, queue


def poll_get(ch, queue: str, timeout_s: float = 5.0, auto_ack: bool = True):
    """basic.get until a message arrives; returns (method, properties, body) or Nones."""
    deadline = time.monotonic() + timeout_s
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None or time.monotonic() >= deadline:
            return method, props, body
        time.sleep(0.02)


def wait_for_count(ch, queue: str, expected: int, timeout_s: float = 5.0) -> int:
    """Polls a passive declare until the queue holds ``expected`` ready messages."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = ch.queue_declare(queue, passive=True).method.message_count
        if count == expected or time.monotonic() >= deadline:
            return count
        time.sleep(0.02)


def publish(ch, queue: str, body: bytes, exchange: str = "", **props):
    ch.basic_publish(exchange, queue, body, pika.BasicProperties(**props) if props else None)


def x_death(props) -> list:
    return (props.headers or {}).get("x-death") or []
