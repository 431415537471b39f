"""The six RabbitMQ Python tutorials, run as separate processes against the broker.

Each receiver is started first and waited for (it prints a "Waiting"/"Awaiting" line
once its queue is consumed), then the senders run to completion, then the receiver's
output is checked and it is stopped with Ctrl-C (SIGINT), as a person would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pika.exceptions import ChannelClosedByBroker

TUTORIALS = Path(__file__).resolve().parent / "tutorials"
WAIT_S = 15.0


class Script:
    """A tutorial script running in the background, its output collected line by line."""

    def __init__(self, broker, name: str, *args: str):
        env = dict(os.environ, AMQP_URL=broker.url, PYTHONUNBUFFERED="1")
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(TUTORIALS / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self.lines: list = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, predicate, what: str, timeout_s: float = WAIT_S):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate(self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not predicate(self.lines)):
                    if self.proc.poll() is not None:
                        time.sleep(0.1)  # let the reader thread collect the last lines
                    pytest.fail(f"{self.name}: no {what}; output so far:\n" + "\n".join(self.lines))
                self.cond.wait(min(remaining, 0.1))

    def wait_for_line(self, text: str, count: int = 1):
        self.wait_for(lambda lines: sum(text in line for line in lines) >= count, repr(text))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The process has exited; its last lines may still be in the pipe.
        self.reader.join(5)


@pytest.fixture
def scripts():
    started = []

    def start(broker, name, *args):
        script = Script(broker, name, *args)
        started.append(script)
        return script

    yield start
    for script in started:
        script.stop()


def run(broker, name: str, *args: str) -> str:
    env = dict(os.environ, AMQP_URL=broker.url)
    done = subprocess.run(
        [sys.executable, str(TUTORIALS / name), *args],
        capture_output=True, text=True, timeout=WAIT_S, env=env, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def purge(broker, queue: str, **declare_args):
    """Start from an empty tutorial queue (a shared broker may hold leftovers)."""
    conn = broker.connect()
    try:
        ch = conn.channel()
        ch.queue_declare(queue, **declare_args)
        ch.queue_purge(queue)
    finally:
        conn.close()


def test_tutorial_one_hello_world(broker, scripts):
    purge(broker, "hello")
    receiver = scripts(broker, "receive.py")
    receiver.wait_for_line("[*] Waiting for messages")
    assert run(broker, "send.py").strip() == "[x] Sent 'Hello World!'"
    receiver.wait_for_line("[x] Received Hello World!")
    receiver.stop()
    assert "Interrupted" in receiver.lines


def test_tutorial_one_message_waits_in_the_queue_for_a_later_receiver(broker, scripts):
    purge(broker, "hello")
    run(broker, "send.py")
    run(broker, "send.py")
    receiver = scripts(broker, "receive.py")
    receiver.wait_for_line("[x] Received Hello World!", count=2)


def eventually(predicate, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_tutorial_two_work_queues_share_tasks_between_workers(broker, scripts):
    purge(broker, "task_queue", durable=True)
    workers = [scripts(broker, "worker.py"), scripts(broker, "worker.py")]
    for worker in workers:
        worker.wait_for_line("[*] Waiting for messages")
    tasks = ["First message.", "Second message..", "Third message", "Fourth message."]
    for task in tasks:
        assert run(broker, "new_task.py", *task.split()).strip() == f"[x] Sent {task}"

    def received(worker):
        return [l.split("[x] Received ", 1)[1] for l in list(worker.lines) if "[x] Received" in l]

    def done(worker):
        return sum("[x] Done" in l for l in list(worker.lines))

    eventually(
        lambda: sum(len(received(w)) for w in workers) == 4 and all(done(w) == len(received(w)) for w in workers),
        "all four tasks received and done",
    )
    assert sorted(received(workers[0]) + received(workers[1])) == sorted(tasks)
    # prefetch_count=1: a busy worker gets no new task, so both end up working.
    assert all(received(w) for w in workers)


def test_tutorial_three_publish_subscribe_reaches_every_subscriber(broker, scripts):
    receivers = [scripts(broker, "receive_logs.py"), scripts(broker, "receive_logs.py")]
    for receiver in receivers:
        receiver.wait_for_line("[*] Waiting for logs")
    assert run(broker, "emit_log.py").strip() == "[x] Sent info: Hello World!"
    assert run(broker, "emit_log.py", "warning:", "disk", "full").strip() == "[x] Sent warning: disk full"
    for receiver in receivers:
        receiver.wait_for_line("[x] info: Hello World!")
        receiver.wait_for_line("[x] warning: disk full")


def test_tutorial_four_routing_by_severity(broker, scripts):
    errors = scripts(broker, "receive_logs_direct.py", "error")
    everything = scripts(broker, "receive_logs_direct.py", "info", "warning", "error")
    for receiver in (errors, everything):
        receiver.wait_for_line("[*] Waiting for logs")
    run(broker, "emit_log_direct.py", "info", "Run.", "Run.", "Or", "it", "will", "catch", "you.")
    run(broker, "emit_log_direct.py", "warning", "low", "disk")
    run(broker, "emit_log_direct.py", "error", "out", "of", "memory")
    everything.wait_for_line("[x] error:out of memory")
    assert [l for l in everything.lines if "[x]" in l] == [
        " [x] info:Run. Run. Or it will catch you.",
        " [x] warning:low disk",
        " [x] error:out of memory",
    ]
    errors.wait_for_line("[x] error:out of memory")
    assert [l for l in errors.lines if "[x]" in l] == [" [x] error:out of memory"]


def test_tutorial_four_receiver_without_severities_prints_usage(broker):
    env = dict(os.environ, AMQP_URL=broker.url)
    done = subprocess.run(
        [sys.executable, str(TUTORIALS / "receive_logs_direct.py")],
        capture_output=True, text=True, timeout=WAIT_S, env=env,
    )
    assert done.returncode == 1
    assert "Usage:" in done.stderr


def test_tutorial_five_topics(broker, scripts):
    kern = scripts(broker, "receive_logs_topic.py", "kern.*")
    critical = scripts(broker, "receive_logs_topic.py", "*.critical")
    everything = scripts(broker, "receive_logs_topic.py", "#")
    both = scripts(broker, "receive_logs_topic.py", "kern.*", "*.critical")
    receivers = (kern, critical, everything, both)
    for receiver in receivers:
        receiver.wait_for_line("[*] Waiting for logs")
    run(broker, "emit_log_topic.py", "kern.critical", "A critical kernel error")
    run(broker, "emit_log_topic.py", "kern.info", "kernel info")
    run(broker, "emit_log_topic.py", "cron.critical", "cron died")
    run(broker, "emit_log_topic.py")  # anonymous.info: Hello World!
    everything.wait_for_line("[x] anonymous.info:Hello World!")
    for receiver in (critical, everything, both):
        receiver.wait_for_line("[x] cron.critical:cron died")
    kern.wait_for_line("[x] kern.info:kernel info")

    def logged(receiver):
        return [l.strip() for l in receiver.lines if "[x]" in l]

    assert logged(kern) == ["[x] kern.critical:A critical kernel error", "[x] kern.info:kernel info"]
    assert logged(critical) == ["[x] kern.critical:A critical kernel error", "[x] cron.critical:cron died"]
    assert logged(everything) == [
        "[x] kern.critical:A critical kernel error",
        "[x] kern.info:kernel info",
        "[x] cron.critical:cron died",
        "[x] anonymous.info:Hello World!",
    ]
    # Matching two bindings still delivers once.
    assert logged(both) == [
        "[x] kern.critical:A critical kernel error",
        "[x] kern.info:kernel info",
        "[x] cron.critical:cron died",
    ]


def test_tutorial_six_rpc(broker, scripts):
    purge(broker, "rpc_queue")
    server = scripts(broker, "rpc_server.py")
    server.wait_for_line("[x] Awaiting RPC requests")
    out = run(broker, "rpc_client.py").splitlines()
    assert [l.strip() for l in out] == ["[x] Requesting fib(30)", "[.] Got 832040"]
    assert run(broker, "rpc_client.py", "10").splitlines()[-1].strip() == "[.] Got 55"
    server.wait_for_line("[.] fib(10)")
    assert [l.strip() for l in server.lines if "fib(" in l] == ["[.] fib(30)", "[.] fib(10)"]


def test_current_tutorials_quorum_queue_declaration_is_accepted(broker, names):
    # The upstream tutorials now declare their queues as quorum queues.
    conn = broker.connect()
    queue = names("quorum")
    try:
        ch = conn.channel()
        ch.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
        ch.basic_publish(exchange="", routing_key=queue, body="Hello World!")
        received = []
        ch.basic_consume(queue=queue, on_message_callback=lambda c, m, p, b: received.append(b),
                         auto_ack=True)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert received == [b"Hello World!"]
        # Redeclaring as the tutorials do is fine; as a classic queue is not.
        ch.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
        with pytest.raises(ChannelClosedByBroker) as info:
            conn.channel().queue_declare(queue=queue, durable=True)
        assert info.value.reply_code == 406
        assert "inequivalent arg 'x-queue-type'" in info.value.reply_text
    finally:
        if conn.is_open:
            conn.channel().queue_delete(queue)
            conn.close()
