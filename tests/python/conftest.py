"""Fixtures shared by the pika integration tests: the broker, connections, unique names.

See broker_process.py for how the broker under test is chosen (WARREN_TEST_URL or a
Warren binary started on an ephemeral port). Most tests share one session-scoped
broker and isolate themselves by unique queue and exchange names; tests that need a
broker of their own (shutdown behaviour, start-up line) use ``fresh_warren``.
"""

from __future__ import annotations

import uuid

import pytest

from broker_process import Broker, external_url, start_warren_broker


def pytest_collection_modifyitems(config, items):
    if not external_url():
        return
    skip = pytest.mark.skip(reason="Warren-only behaviour; WARREN_TEST_URL points at another broker")
    for item in items:
        if "warren_only" in item.keywords:
            item.add_marker(skip)


def _stop_and_check(broker: Broker) -> None:
    warren = broker.warren
    assert warren is not None
    warren.stop()
    problems = warren.problems()
    if problems:
        tail = "\n".join(warren.lines[-60:])
        pytest.fail("; ".join(problems) + "\n--- warren stderr (tail) ---\n" + tail)
    warren.cleanup()


@pytest.fixture(scope="session")
def broker():
    url = external_url()
    if url:
        yield Broker.from_url(url)
        return
    started = start_warren_broker()
    yield started
    _stop_and_check(started)


@pytest.fixture
def fresh_warren():
    """A Warren of this test's own, for tests that stop or restart the broker."""
    if external_url():
        pytest.skip("needs a Warren process of its own")
    started = start_warren_broker()
    yield started
    _stop_and_check(started)


@pytest.fixture
def conn(broker):
    connection = broker.connect()
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def names(request):
    """``names("q")`` gives a name unique to this test run, so tests can share a broker."""
    test = request.node.name.replace("[", ".").replace("]", "")[:40]
    run = uuid.uuid4().hex[:8]

    def make(kind: str = "q") -> str:
        return f"pytest.{test}.{kind}.{run}"

    return make
