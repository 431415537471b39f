"""AMQPS: pika over TLS 1.2 and 1.3, the EXTERNAL mechanism, refused peers, reload on SIGHUP.

Certificates are made for each run with the openssl command line: a CA, a server
certificate for 127.0.0.1 signed by it, client certificates signed by it (CN=guest, a user
the broker has; CN=nobody, one it has not) and a client certificate from another CA.
The broker runs with RabbitMQ's ``verify_peer`` and ``fail_if_no_peer_cert = false``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pika
import pika.exceptions
import pytest

from broker_process import WarrenProcess
from raw_amqp import PROTOCOL_HEADER

pytestmark = [pytest.mark.warren_only, pytest.mark.timeout(60)]

TLS_RE = re.compile(r"AMQPS \(TLS\) listener at ([0-9.]+):(\d+)")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def make_cert(d: Path, ca: str, name: str, cn: str, server: bool = False) -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/O=warren-test/CN={cn}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server
                   else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", ext.name, "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="module")
def certs():
    d = Path(tempfile.mkdtemp(prefix="warren-tls-"))
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "ca", "server", "127.0.0.1", server=True)
    make_cert(d, "other-ca", "server2", "127.0.0.1", server=True)
    make_cert(d, "ca", "guest", "guest")
    make_cert(d, "ca", "nobody", "nobody")
    make_cert(d, "other-ca", "stranger", "guest")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_tls_warren(certs: Path, *extra: str, cert: str = "server") -> tuple:
    """A Warren with a TLS listener; returns (process, amqp port, amqps port)."""
    shutil.copy(certs / f"{cert}.pem", certs / "live.pem")
    shutil.copy(certs / f"{cert}.key", certs / "live.key")
    warren = WarrenProcess.start(extra_args=(
        "--tls-listen", "127.0.0.1:0",
        "--tls-cert-file", str(certs / "live.pem"),
        "--tls-key-file", str(certs / "live.key"),
        "--tls-ca-file", str(certs / "ca.pem"),
        "--tls-verify-peer",
        *extra,
    ))
    _, port = warren.wait_for_listening()
    deadline = time.monotonic() + 10
    while not (match := TLS_RE.search(warren.output())):
        assert time.monotonic() < deadline, warren.output()
        time.sleep(0.02)
    return warren, port, int(match.group(2))


@pytest.fixture(scope="module")
def tls_broker(certs):
    warren, port, tls_port = start_tls_warren(certs, "--handshake-timeout-ms", "1000")
    yield port, tls_port
    assert warren.stop() == 0
    assert not warren.problems(), warren.output()
    warren.cleanup()


def client_context(certs: Path, client: str | None = None, ca: str = "ca",
                   version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / f"{ca}.pem"))
    if client:
        ctx.load_cert_chain(str(certs / f"{client}.pem"), str(certs / f"{client}.key"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def connect(port: int, ctx: ssl.SSLContext, credentials=None) -> pika.BlockingConnection:
    params = pika.ConnectionParameters(
        host="127.0.0.1", port=port, ssl_options=pika.SSLOptions(ctx, "127.0.0.1"),
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=5)
    return pika.BlockingConnection(params)


def round_trip(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"over tls" * 1000)
    assert ch.basic_get(q, auto_ack=True)[2] == b"over tls" * 1000
    conn.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_pika_publishes_and_gets_over_tls_with_plain_login(certs, tls_broker, version):
    round_trip(connect(tls_broker[1], client_context(certs, version=version)))


def test_external_login_takes_the_user_from_the_certificate_cn(certs, tls_broker):
    ctx = client_context(certs, client="guest")
    round_trip(connect(tls_broker[1], ctx, pika.credentials.ExternalCredentials()))


def test_external_login_for_a_cn_that_is_no_user_is_refused(certs, tls_broker):
    ctx = client_context(certs, client="nobody")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as err:
        connect(tls_broker[1], ctx, pika.credentials.ExternalCredentials())
    assert "EXTERNAL" in str(err.value)


def test_external_login_without_a_client_certificate_is_refused(certs, tls_broker):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(tls_broker[1], client_context(certs), pika.credentials.ExternalCredentials())


def test_a_client_certificate_from_another_ca_is_refused_in_the_tls_handshake(certs, tls_broker):
    ctx = client_context(certs, client="stranger")
    raw = socket.create_connection(("127.0.0.1", tls_broker[1]), timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        # TLS 1.3 reports the refusal of the client certificate on the first read.
        tls.sendall(PROTOCOL_HEADER)
        if not tls.recv(4096):
            raise ConnectionResetError("closed")
    raw.close()


def test_a_plaintext_client_on_the_tls_port_gets_no_amqp(tls_broker):
    with socket.create_connection(("127.0.0.1", tls_broker[1]), timeout=5) as s:
        s.sendall(PROTOCOL_HEADER)
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    # At most a TLS alert record (content type 21), never connection.start.
    assert received == b"" or received[0] == 21, received


def mechanisms(port: int, ctx: ssl.SSLContext | None = None) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx else raw
    with s:
        s.sendall(PROTOCOL_HEADER)
        start = b""
        while len(start) < 7 or len(start) < 8 + int.from_bytes(start[3:7], "big"):
            start += s.recv(4096)
    return start


def test_external_is_offered_only_on_the_tls_listener(certs, tls_broker):
    assert b"EXTERNAL" in mechanisms(tls_broker[1], client_context(certs))
    assert b"EXTERNAL" not in mechanisms(tls_broker[0])


def test_fail_if_no_peer_cert_refuses_clients_without_a_certificate(certs):
    warren, _, tls_port = start_tls_warren(certs, "--tls-fail-if-no-peer-cert")
    try:
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            connect(tls_port, client_context(certs))
        round_trip(connect(tls_port, client_context(certs, client="guest")))
    finally:
        warren.stop()
        warren.cleanup()
    assert not warren.problems(), warren.output()


def test_sighup_reloads_the_certificate_for_new_connections(certs):
    warren, _, tls_port = start_tls_warren(certs)
    try:
        kept = connect(tls_port, client_context(certs))
        shutil.copy(certs / "server2.pem", certs / "live.pem")
        shutil.copy(certs / "server2.key", certs / "live.key")
        warren.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "TLS certificates reloaded" not in warren.output():
            assert time.monotonic() < deadline, warren.output()
            time.sleep(0.05)
        round_trip(connect(tls_port, client_context(certs, ca="other-ca")))
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            connect(tls_port, client_context(certs))
        round_trip(kept)
    finally:
        warren.stop()
        warren.cleanup()
    assert not warren.problems(), warren.output()


def test_a_silent_client_on_the_tls_port_is_dropped_after_the_handshake_timeout(tls_broker):
    with socket.create_connection(("127.0.0.1", tls_broker[1])) as s:
        s.settimeout(5)
        begun = time.monotonic()
        try:
            assert s.recv(4096) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - begun < 4


def test_the_management_api_serves_https_with_the_same_certificate(certs):
    warren, _, _ = start_tls_warren(certs, "--tls-management")
    try:
        match = re.search(r"management API listening on https://([0-9.]+):(\d+)", warren.output())
        assert match, warren.output()
        url = f"https://127.0.0.1:{match.group(2)}/api/policies"
        request = urllib.request.Request(url, headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, context=client_context(certs), timeout=5) as r:
            assert r.status == 200
            assert json.loads(r.read()) == []
    finally:
        warren.stop()
        warren.cleanup()
    assert not warren.problems(), warren.output()
