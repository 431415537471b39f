"""Where the tests find their broker: an already-running one, or a Warren we start.

Two modes, chosen by the environment:

* ``WARREN_TEST_URL`` set (e.g. ``amqp://guest:guest@127.0.0.1:5672/%2F``): every test
  talks to that broker. This is how the suite is validated against real RabbitMQ, so
  that each assertion encodes RabbitMQ's behaviour before Warren is measured by it.
* otherwise: the Warren binary (``WARREN_BIN``, default ``<repo>/target/debug/warren``)
  is started as ``warren serve --listen 127.0.0.1:0 --management-listen 127.0.0.1:0
  --data-dir <tmp>``; the ports are read from its ``listening on HOST:PORT`` and
  ``management API listening on http://HOST:PORT`` log lines on stderr.

The management API (policies) of an external broker is named by ``WARREN_TEST_MANAGEMENT_URL``
(e.g. ``http://127.0.0.1:15672``); tests that need it skip without it.

A started Warren is checked when it stops: it must exit 0 after SIGTERM and must not
have printed a Rust panic, because a broker that panics on test traffic is broken
even when every assertion passed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pika

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING_RE = re.compile(r"listening on ([0-9.]+|\[[0-9a-f:]*\]):(\d+)")
MANAGEMENT_RE = re.compile(r"management API listening on (http://(?:[0-9.]+|\[[0-9a-f:]*\]):\d+)")
PANIC_RE = re.compile(r"panicked at")
ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STARTUP_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0


def external_url() -> Optional[str]:
    """The already-running broker to test, or None when Warren must be started."""
    return os.environ.get("WARREN_TEST_URL") or None


def warren_bin() -> Path:
    return Path(os.environ.get("WARREN_BIN", REPO_ROOT / "target" / "debug" / "warren"))


@dataclass
class WarrenProcess:
    """A Warren broker started for the tests, with its stderr captured line by line."""

    process: subprocess.Popen
    data_dir: Path
    lines: list = field(default_factory=list)
    _reader: Optional[threading.Thread] = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    owns_data_dir: bool = True

    @classmethod
    def start(
        cls, extra_args: tuple = (), data_dir: Optional[Path] = None, listen: str = "127.0.0.1:0"
    ) -> "WarrenProcess":
        binary = warren_bin()
        if not binary.exists():
            raise RuntimeError(
                f"Warren binary not found at {binary}: build it (cargo build -p warren) "
                "or set WARREN_BIN, or set WARREN_TEST_URL to test a running broker"
            )
        owns_data_dir = data_dir is None
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="warren-pytest-"))
        cmd = [str(binary), "serve", "--listen", listen, "--management-listen", "127.0.0.1:0"]
        cmd += ["--data-dir", str(data_dir)]
        cmd += list(extra_args)
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        warren = cls(process=proc, data_dir=data_dir, owns_data_dir=owns_data_dir)
        # Drain stderr on a thread: an unread pipe that fills up would block the broker.
        warren._reader = threading.Thread(target=warren._read_stderr, daemon=True)
        warren._reader.start()
        return warren

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._cond:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                # tracing may colour its output; match and report the plain text.
                self.lines.append(ANSI_ESCAPE_RE.sub("", line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_listening(self, timeout_s: float = STARTUP_TIMEOUT_S) -> tuple:
        """Block until the ``listening on HOST:PORT`` line appears; return (host, port)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for line in self.lines:
                    m = LISTENING_RE.search(line)
                    if m:
                        return m.group(1), int(m.group(2))
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(
                        f"warren exited with {self.process.returncode} before listening:\n"
                        + "\n".join(self.lines)
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(
                        f"warren printed no 'listening on' line within {timeout_s}s:\n"
                        + "\n".join(self.lines)
                    )
                self._cond.wait(min(remaining, 0.2))

    def management_url(self) -> Optional[str]:
        """The management API's base URL, from the start-up log (printed before the AMQP line)."""
        m = MANAGEMENT_RE.search(self.output())
        return m.group(1) if m else None

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(2.0)
        return self.process.returncode

    def problems(self) -> list:
        """Why this run counts as a failure: a non-zero exit or a panic in the log."""
        found = []
        if self.process.returncode not in (0, None):
            found.append(f"warren exited with code {self.process.returncode}")
        if PANIC_RE.search(self.output()):
            found.append("warren printed a Rust panic")
        return found

    def cleanup(self) -> None:
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class Broker:
    """Connection coordinates of the broker under test."""

    host: str
    port: int
    vhost: str = "/"
    username: str = "guest"
    password: str = "guest"
    warren: Optional[WarrenProcess] = None
    management_url: Optional[str] = None

    @classmethod
    def from_url(cls, url: str) -> "Broker":
        parts = urllib.parse.urlparse(url)
        vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5672,
            vhost=vhost,
            username=urllib.parse.unquote(parts.username or "guest"),
            password=urllib.parse.unquote(parts.password or "guest"),
            management_url=os.environ.get("WARREN_TEST_MANAGEMENT_URL") or None,
        )

    @property
    def url(self) -> str:
        vhost = urllib.parse.quote(self.vhost, safe="")
        return f"amqp://{self.username}:{self.password}@{self.host}:{self.port}/{vhost}"

    @property
    def is_warren(self) -> bool:
        return self.warren is not None

    def params(self, **overrides) -> pika.ConnectionParameters:
        kwargs = dict(
            host=self.host,
            port=self.port,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.username, self.password),
            connection_attempts=1,
            socket_timeout=5,
            blocked_connection_timeout=10,
        )
        kwargs.update(overrides)
        return pika.ConnectionParameters(**kwargs)

    def connect(self, **overrides) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.params(**overrides))


def start_warren_broker(
    extra_args: tuple = (), data_dir: Optional[Path] = None, listen: str = "127.0.0.1:0"
) -> Broker:
    """Start Warren (on a fresh data dir unless one is given) and wait until it listens."""
    warren = WarrenProcess.start(extra_args, data_dir, listen)
    try:
        host, port = warren.wait_for_listening()
    except Exception:
        warren.stop()
        warren.cleanup()
        raise
    return Broker(host=host, port=port, warren=warren, management_url=warren.management_url())
