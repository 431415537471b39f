"""Backlogs larger than a queue's memory budget: bodies are paged to disk (transient messages
to the queue's spill files, persistent ones of a durable queue left in its log) and read back
ahead of delivery. The broker's resident memory stays near its budget while the backlog
grows, consumers that come later get everything in order, and paged messages still expire,
dead-letter and survive a restart. Warren-only: it starts brokers with small budgets.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import time

import pika
import pytest

from broker_process import start_warren_broker

pytestmark = [pytest.mark.warren_only, pytest.mark.timeout(180)]

PERSISTENT = pika.BasicProperties(delivery_mode=2)
BODY_BYTES = 64 * 1024


def body(i: int, size: int = BODY_BYTES) -> bytes:
    return struct.pack(">Q", i) + bytes([i % 251]) * (size - 8)


def number(b: bytes) -> int:
    return struct.unpack(">Q", b[:8])[0]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakRss:
    """Samples a process's resident memory on a thread; `peak` is the highest seen."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@contextlib.contextmanager
def broker_with(*args, data_dir=None):
    broker = start_warren_broker(extra_args=args, data_dir=data_dir)
    try:
        yield broker
    finally:
        code = broker.warren.stop()
        out = broker.warren.output()
        assert broker.warren.problems() == [], out[max(0, out.find("panicked") - 500):][:3000]
        assert code == 0
        if data_dir is None:
            broker.warren.cleanup()


def publish_confirmed(ch, queue: str, count: int, props=None, size: int = BODY_BYTES):
    ch.confirm_delivery()
    for i in range(count):
        ch.basic_publish("", queue, body(i, size), props)


def drain_in_order(ch, queue: str, count: int, size: int = BODY_BYTES):
    """Consumes `count` messages and checks every one arrives once, in publish order."""
    ch.basic_qos(prefetch_count=200)
    expected = 0
    for method, _props, b in ch.consume(queue, inactivity_timeout=30):
        assert method is not None, f"stalled after {expected} of {count}"
        assert number(b) == expected and len(b) == size and b[-1] == expected % 251
        ch.basic_ack(method.delivery_tag)
        expected += 1
        if expected == count:
            break
    ch.cancel()
    assert expected == count


def spill_bytes(data_dir) -> int:
    return sum(p.stat().st_size for p in (data_dir / "spill").rglob("*") if p.is_file())


def test_transient_backlog_pages_to_disk_with_bounded_memory_and_drains_in_order():
    count = 3000  # ~190 MiB of bodies against an 8 MiB budget
    with broker_with("--queue-memory-budget", "8MiB") as broker:
        pid = broker.warren.process.pid
        conn = broker.connect()
        ch = conn.channel()
        ch.queue_declare("backlog")
        baseline = rss_bytes(pid)
        peak = PeakRss(pid)
        publish_confirmed(ch, "backlog", count)
        peak_rss = peak.stop()
        assert ch.queue_declare("backlog", passive=True).method.message_count == count
        on_disk = spill_bytes(broker.warren.data_dir)
        assert on_disk > (count - 200) * BODY_BYTES, "the backlog went to the spill files"
        # Budget, inbox and socket buffers, allocator slack: far below the 190 MiB published.
        assert peak_rss - baseline < 80 * 1024 * 1024, (baseline, peak_rss)
        drain_in_order(ch, "backlog", count)
        assert spill_bytes(broker.warren.data_dir) < 1024 * 1024, "spill space came back"
        conn.close()


def test_paged_persistent_backlog_survives_a_restart_and_drains_in_order(tmp_path):
    count = 1500
    with broker_with("--queue-memory-budget", "4MiB", data_dir=tmp_path) as broker:
        conn = broker.connect()
        ch = conn.channel()
        ch.queue_declare("durable-backlog", durable=True)
        publish_confirmed(ch, "durable-backlog", count, PERSISTENT)
        # Persistent messages of a durable queue page out to their log: no spill copy.
        assert spill_bytes(tmp_path) == 0
        conn.close()
    with broker_with("--queue-memory-budget", "4MiB", data_dir=tmp_path) as broker:
        pid = broker.warren.process.pid
        # Recovery keeps index entries only, not the ~95 MiB of bodies.
        assert rss_bytes(pid) < 60 * 1024 * 1024
        conn = broker.connect()
        ch = conn.channel()
        q = ch.queue_declare("durable-backlog", durable=True, passive=True)
        assert q.method.message_count == count
        drain_in_order(ch, "durable-backlog", count)
        conn.close()


def test_paged_messages_expire_and_are_dead_lettered_with_their_content():
    count = 400
    with broker_with("--queue-memory-budget", "1MiB") as broker:
        conn = broker.connect()
        ch = conn.channel()
        ch.queue_declare("dlq")
        ch.queue_declare(
            "short-lived",
            arguments={"x-message-ttl": 300, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"},
        )
        publish_confirmed(ch, "short-lived", count, size=8 * 1024)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ch.queue_declare("dlq", passive=True).method.message_count == count:
                break
            time.sleep(0.1)
        assert ch.queue_declare("short-lived", passive=True).method.message_count == 0
        drain_in_order(ch, "dlq", count, size=8 * 1024)
        conn.close()


def test_purge_and_delete_of_a_paged_queue_return_the_spill_space():
    with broker_with("--queue-memory-budget", "1MiB") as broker:
        conn = broker.connect()
        ch = conn.channel()
        ch.queue_declare("p")
        publish_confirmed(ch, "p", 300)
        assert spill_bytes(broker.warren.data_dir) > 250 * BODY_BYTES
        assert ch.queue_purge("p").method.message_count == 300
        assert spill_bytes(broker.warren.data_dir) < 1024 * 1024
        publish_confirmed(ch, "p", 300)
        ch.queue_delete("p")
        assert spill_bytes(broker.warren.data_dir) == 0
        conn.close()


def test_memory_pressure_pages_out_queues_under_their_budget():
    # A generous per-queue budget, but memory pressure from the start (past 0.1% of a 400 MiB
    # watermark): queues then keep only a read-ahead in memory, transient messages too.
    args = ("--queue-memory-budget", "1GiB", "--memory-high-watermark", "400MiB", "--memory-paging-ratio", "0.001")
    count = 2000  # ~125 MiB
    with broker_with(*args) as broker:
        pid = broker.warren.process.pid
        conn = broker.connect()
        ch = conn.channel()
        ch.queue_declare("pressured")
        peak = PeakRss(pid)
        publish_confirmed(ch, "pressured", count)
        peak_rss = peak.stop()
        assert spill_bytes(broker.warren.data_dir) > count * BODY_BYTES // 2
        assert peak_rss < 80 * 1024 * 1024, peak_rss
        assert "memory pressure" in broker.warren.output()
        drain_in_order(ch, "pressured", count)
        conn.close()
