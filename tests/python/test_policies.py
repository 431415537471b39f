"""Policies: set through the HTTP management API (RabbitMQ's /api/policies) and through
`warren policy`, applied at once to existing queues and to queues declared later, with
RabbitMQ 3.10's precedence between policy and queue argument per key and queue type,
priority between policies, apply-to, clearing, and durability across a restart.

Run against RabbitMQ 3.10 with its management plugin by setting WARREN_TEST_URL and
WARREN_TEST_MANAGEMENT_URL (e.g. http://127.0.0.1:15672); that is how the expectations
here were checked.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pika
import pytest

from amqp_support import get_bodies
from broker_process import start_warren_broker, warren_bin
from queue_args_support import declare_dlx, poll_get, wait_for_count

pytestmark = pytest.mark.timeout(60)

# A negative check (something must *not* happen) watches this long; being short can only
# make it miss a bug, never fail a correct broker.
QUIET_S = 1.5


class Management:
    """A minimal client of the management API's policy endpoints."""

    def __init__(self, url: str, user: str = "guest", password: str = "guest"):
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = f"Basic {token}"
        self.created = set()

    def call(self, method: str, path: str, body=None, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", self.auth)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, json.loads(text) if text else None

    def put_policy(self, name, pattern, definition, priority=None, apply_to="queues", vhost="%2F"):
        body = {"pattern": pattern, "definition": definition, "apply-to": apply_to}
        if priority is not None:
            body["priority"] = priority
        status, answer = self.call("PUT", f"/api/policies/{vhost}/{name}", body)
        assert status in (201, 204), (status, answer)
        self.created.add(name)
        return status

    def clear_policy(self, name, vhost="%2F"):
        return self.call("DELETE", f"/api/policies/{vhost}/{name}")[0]


@pytest.fixture
def mgmt(broker):
    if not broker.management_url:
        pytest.skip("no management API (set WARREN_TEST_MANAGEMENT_URL for an external broker)")
    m = Management(broker.management_url)
    yield m
    for name in m.created:
        m.clear_policy(name)


@pytest.fixture
def confirming(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def only(queue: str) -> str:
    """A pattern matching this one queue name."""
    return "^" + re.escape(queue) + "$"


def publish_all(ch, queue: str, bodies) -> int:
    """Publishes in confirm mode; returns how many were nacked."""
    nacks = 0
    for body in bodies:
        try:
            ch.basic_publish("", queue, body)
        except pika.exceptions.NackError:
            nacks += 1
    return nacks


def exists(broker, queue: str) -> bool:
    conn = broker.connect()
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return False
    finally:
        if conn.is_open:
            conn.close()


def wait_gone(broker, queue: str, timeout_s: float = 10.0, interval_s: float = 1.0) -> bool:
    """Polls for the queue's deletion. A passive declare counts as a use of the queue (it
    restarts `x-expires`), so the polls are spaced wider than the expiry under test."""
    deadline = time.monotonic() + timeout_s
    while True:
        time.sleep(interval_s)
        if not exists(broker, queue):
            return True
        if time.monotonic() >= deadline:
            return False


def declare_quorum(ch, queue: str, **args):
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum", **args})


# --- the API itself -------------------------------------------------------------------------


def test_policy_set_over_http_is_shown_listed_replaced_and_cleared(mgmt, names):
    name = names("policy")
    body = {"pattern": "^nothing\\.", "definition": {"max-length": 3}, "priority": 1, "apply-to": "queues"}
    assert mgmt.call("PUT", f"/api/policies/%2F/{name}", body) == (201, None)
    expected = {"vhost": "/", "name": name, "pattern": "^nothing\\.", "apply-to": "queues",
                "definition": {"max-length": 3}, "priority": 1}
    assert mgmt.call("GET", f"/api/policies/%2F/{name}") == (200, expected)
    assert expected in mgmt.call("GET", "/api/policies")[1]
    assert expected in mgmt.call("GET", "/api/policies/%2F")[1]
    # Replacing answers 204; defaults are priority 0 and apply-to all.
    replaced = {"pattern": "^other$", "definition": {"message-ttl": 5}}
    assert mgmt.call("PUT", f"/api/policies/%2F/{name}", replaced) == (204, None)
    status, shown = mgmt.call("GET", f"/api/policies/%2F/{name}")
    assert (status, shown["priority"], shown["apply-to"], shown["pattern"]) == (200, 0, "all", "^other$")
    assert mgmt.clear_policy(name) == 204
    assert mgmt.call("GET", f"/api/policies/%2F/{name}") == (
        404, {"error": "Object Not Found", "reason": "Not Found"})
    assert mgmt.clear_policy(name) == 404


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"pattern": "x", "definition": {"max-lenght": 3}}, "are not recognised policy settings"),
        ({"pattern": "x", "definition": {"max-length": -1}}, "-1 is not a valid maximum length"),
        ({"pattern": "x", "definition": {"overflow": "bogus"}}, "is not a valid overflow value"),
        ({"pattern": "x", "definition": {"expires": 0}}, "0 is not a valid queue expiry"),
        ({"pattern": "x", "definition": {"message-ttl": "5"}}, "is not a valid message TTL"),
        ({"pattern": "x", "definition": {}}, "no policy provided"),
        ({"pattern": "(", "definition": {"max-length": 1}}, "pattern should be regular expression"),
        ({"pattern": "x", "definition": {"max-length": 1}, "apply-to": "bogus"}, "apply-to 'bogus' unrecognised"),
        ({"pattern": "x", "definition": {"max-length": 1}, "priority": "high"}, "priority should be a number"),
        ({"definition": {"max-length": 1}}, "pattern"),
    ],
)
def test_invalid_policy_is_refused_with_400_and_the_reason(mgmt, names, body, reason):
    status, answer = mgmt.call("PUT", f"/api/policies/%2F/{names('bad')}", body)
    assert status == 400
    assert answer["error"] == "bad_request"
    assert reason in answer["reason"].replace("&lt;", "<").replace("&gt;", ">").replace('<<"', '"').replace('">>', '"')


def test_body_that_is_not_json_is_refused(mgmt, names):
    status, answer = mgmt.call("PUT", f"/api/policies/%2F/{names('bad')}", raw=b"not json")
    assert status == 400 and answer["error"] == "bad_request"


def test_unknown_vhost_is_404(mgmt, names):
    status, answer = mgmt.call("PUT", f"/api/policies/no-such-vhost/{names('p')}",
                               {"pattern": "x", "definition": {"max-length": 1}})
    assert (status, answer) == (404, {"error": "not_found", "reason": "vhost_not_found"})
    assert mgmt.call("GET", "/api/policies/no-such-vhost")[0] == 404


def test_wrong_or_missing_credentials_are_refused_with_401(broker, mgmt):
    wrong = Management(broker.management_url, "guest", "not-the-password")
    status, answer = wrong.call("GET", "/api/policies")
    assert status == 401 and answer["error"] == "not_authorized"
    req = urllib.request.Request(broker.management_url + "/api/policies")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401
    assert info.value.headers["WWW-Authenticate"].startswith("Basic realm=")


# --- applying policies ------------------------------------------------------------------------


def test_policy_applies_at_once_to_an_existing_queue(mgmt, ch, names):
    queue = names("q")
    ch.queue_declare(queue)
    for i in range(5):
        ch.basic_publish("", queue, str(i).encode())
    assert wait_for_count(ch, queue, 5) == 5
    mgmt.put_policy(names("p"), only(queue), {"max-length": 2})
    # drop-head drops the oldest at once.
    assert wait_for_count(ch, queue, 2) == 2
    assert get_bodies(ch, queue) == [b"3", b"4"]


def test_lowered_limit_dead_letters_the_dropped_messages(mgmt, ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("q")
    ch.queue_declare(queue)
    for i in range(3):
        ch.basic_publish("", queue, str(i).encode())
    mgmt.put_policy(names("p"), only(queue), {"max-length": 1, "dead-letter-exchange": dlx})
    assert wait_for_count(ch, dlq, 2) == 2
    method, props, body = poll_get(ch, dlq)
    assert body == b"0"
    assert props.headers["x-death"][0]["reason"] == "maxlen"


def test_policy_applies_to_queues_declared_later(mgmt, confirming, names):
    queue = names("q")
    mgmt.put_policy(names("p"), only(queue), {"max-length": 1, "overflow": "reject-publish"})
    confirming.queue_declare(queue)
    assert publish_all(confirming, queue, [b"a", b"b", b"c"]) == 2
    assert get_bodies(confirming, queue) == [b"a"]


def test_policy_set_on_a_running_queue_makes_it_nack_refused_publishes(mgmt, confirming, names):
    queue = names("q")
    confirming.queue_declare(queue)
    assert publish_all(confirming, queue, [b"a"]) == 0
    mgmt.put_policy(names("p"), only(queue), {"max-length": 1, "overflow": "reject-publish"})
    deadline = time.monotonic() + 5
    nacks = 0
    # The policy reaches the queue asynchronously (in RabbitMQ too): publish until refused.
    while nacks == 0 and time.monotonic() < deadline:
        nacks = publish_all(confirming, queue, [b"x"])
        time.sleep(0.05)
    assert nacks == 1
    assert get_bodies(confirming, queue)[0] == b"a"


def test_message_ttl_from_a_policy_expires_new_messages(mgmt, ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": dlx})
    mgmt.put_policy(names("p"), only(queue), {"message-ttl": 50})
    time.sleep(0.2)  # let the policy reach the queue before publishing
    ch.basic_publish("", queue, b"short-lived")
    method, props, body = poll_get(ch, dlq)
    assert body == b"short-lived"
    assert props.headers["x-death"][0]["reason"] == "expired"


# --- precedence between policy and arguments (RabbitMQ 3.10) ----------------------------------


@pytest.mark.parametrize("policy_len, arg_len, effective", [(2, 4, 2), (4, 2, 2)])
def test_max_length_takes_the_smaller_of_policy_and_argument(mgmt, ch, names, policy_len, arg_len, effective):
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-max-length": arg_len})
    mgmt.put_policy(names("p"), only(queue), {"max-length": policy_len})
    time.sleep(0.2)
    for i in range(6):
        ch.basic_publish("", queue, str(i).encode())
    assert wait_for_count(ch, queue, effective) == effective
    time.sleep(0.2)
    assert ch.queue_declare(queue, passive=True).method.message_count == effective


@pytest.mark.parametrize("policy_ttl, arg_ttl", [(50, 600000), (600000, 50)])
def test_message_ttl_takes_the_smaller_of_policy_and_argument(mgmt, ch, names, policy_ttl, arg_ttl):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-message-ttl": arg_ttl, "x-dead-letter-exchange": dlx})
    mgmt.put_policy(names("p"), only(queue), {"message-ttl": policy_ttl})
    time.sleep(0.2)
    ch.basic_publish("", queue, b"m")
    assert poll_get(ch, dlq)[2] == b"m"


def test_classic_overflow_argument_wins_over_the_policy(mgmt, confirming, names):
    queue = names("q")
    confirming.queue_declare(queue, arguments={"x-max-length": 2, "x-overflow": "drop-head"})
    mgmt.put_policy(names("p"), only(queue), {"overflow": "reject-publish"})
    time.sleep(0.2)
    assert publish_all(confirming, queue, [b"1", b"2", b"3"]) == 0
    assert get_bodies(confirming, queue) == [b"2", b"3"]


def test_quorum_overflow_policy_wins_over_the_argument(mgmt, confirming, names):
    queue = names("q")
    declare_quorum(confirming, queue, **{"x-max-length": 2, "x-overflow": "drop-head"})
    mgmt.put_policy(names("p"), only(queue), {"overflow": "reject-publish"})
    time.sleep(0.5)
    # RabbitMQ's quorum queue refuses once it is over the limit (it lets one more in);
    # Warren's refuses at the limit. Either way publishes are nacked, not heads dropped.
    nacks = publish_all(confirming, queue, [b"1", b"2", b"3", b"4"])
    assert nacks >= 1
    assert get_bodies(confirming, queue)[0] == b"1"
    confirming.queue_delete(queue)


def test_classic_expires_takes_the_smaller_of_policy_and_argument(broker, mgmt, ch, names):
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-expires": 600000})
    mgmt.put_policy(names("p"), only(queue), {"expires": 300})
    assert wait_gone(broker, queue)


def test_quorum_expires_policy_wins_over_the_argument(broker, mgmt, ch, names):
    queue = names("q")
    declare_quorum(ch, queue, **{"x-expires": 2000})
    mgmt.put_policy(names("p"), only(queue), {"expires": 600000})
    time.sleep(2000 / 1000 + QUIET_S)
    assert exists(broker, queue)
    ch.queue_delete(queue)


@pytest.mark.parametrize("quorum", [False, True], ids=["classic", "quorum"])
def test_dead_letter_argument_wins_over_the_policy(mgmt, ch, names, quorum):
    by_arg, by_policy = names("arg"), names("policy")
    ch.queue_declare(by_arg)
    ch.queue_declare(by_policy)
    queue = names("q")
    args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": by_arg}
    if quorum:
        declare_quorum(ch, queue, **args)
    else:
        ch.queue_declare(queue, arguments=args)
    mgmt.put_policy(names("p"), only(queue),
                    {"dead-letter-exchange": "", "dead-letter-routing-key": by_policy})
    time.sleep(0.3)
    ch.basic_publish("", queue, b"m")
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert poll_get(ch, by_arg)[2] == b"m"
    assert ch.queue_declare(by_policy, passive=True).method.message_count == 0
    ch.queue_delete(queue)


def test_policy_routing_key_completes_the_argument_exchange(mgmt, ch, names):
    target = names("target")
    ch.queue_declare(target)
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-dead-letter-exchange": ""})
    mgmt.put_policy(names("p"), only(queue), {"dead-letter-routing-key": target})
    time.sleep(0.3)
    ch.basic_publish("", queue, b"m")
    method, _, _ = poll_get(ch, queue, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert poll_get(ch, target)[2] == b"m"


def test_quorum_delivery_limit_takes_the_smaller_value(mgmt, ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("q")
    declare_quorum(ch, queue, **{"x-delivery-limit": 10, "x-dead-letter-exchange": dlx})
    mgmt.put_policy(names("p"), only(queue), {"delivery-limit": 1})
    time.sleep(0.5)
    ch.basic_publish("", queue, b"poison")
    for _ in range(2):
        method, _, _ = poll_get(ch, queue, auto_ack=False)
        assert method is not None
        ch.basic_nack(method.delivery_tag, requeue=True)
    assert poll_get(ch, dlq)[2] == b"poison"
    ch.queue_delete(queue)


def test_delivery_limit_policy_skips_classic_queues(mgmt, ch, names):
    # RabbitMQ 3.10: a policy with a key a queue type does not support does not apply to
    # queues of that type at all; the next matching policy does.
    queue = names("q")
    ch.queue_declare(queue)
    mgmt.put_policy(names("quorum-only"), only(queue), {"max-length": 1, "delivery-limit": 3}, priority=10)
    mgmt.put_policy(names("classic"), only(queue), {"max-length": 3}, priority=1)
    time.sleep(0.2)
    for i in range(5):
        ch.basic_publish("", queue, str(i).encode())
    assert wait_for_count(ch, queue, 3) == 3


# --- priority, apply-to, clearing, redeclaring --------------------------------------------


def test_highest_priority_policy_applies_alone_and_clearing_it_brings_the_next(mgmt, ch, names):
    queue = names("q")
    high, low = names("high"), names("low")
    mgmt.put_policy(low, only(queue), {"max-length": 3}, priority=1)
    mgmt.put_policy(high, only(queue), {"max-length": 1}, priority=10)
    ch.queue_declare(queue)
    for i in range(5):
        ch.basic_publish("", queue, str(i).encode())
    assert wait_for_count(ch, queue, 1) == 1
    assert mgmt.clear_policy(high) == 204
    time.sleep(0.2)
    for i in range(5):
        ch.basic_publish("", queue, str(i).encode())
    assert wait_for_count(ch, queue, 3) == 3


def test_only_the_winning_policy_applies_not_a_merge(mgmt, ch, names):
    dlx, dlq = declare_dlx(ch, names)
    queue = names("q")
    mgmt.put_policy(names("ttl"), only(queue), {"message-ttl": 10, "dead-letter-exchange": dlx}, priority=1)
    mgmt.put_policy(names("len"), only(queue), {"max-length": 5}, priority=2)
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"kept")
    time.sleep(QUIET_S)
    assert ch.queue_declare(dlq, passive=True).method.message_count == 0
    assert get_bodies(ch, queue) == [b"kept"]


def test_apply_to_exchanges_leaves_queues_alone(mgmt, ch, names):
    queue = names("q")
    ch.queue_declare(queue)
    mgmt.put_policy(names("p"), only(queue), {"max-length": 1}, apply_to="exchanges")
    time.sleep(0.2)
    for i in range(3):
        ch.basic_publish("", queue, str(i).encode())
    time.sleep(0.2)
    assert ch.queue_declare(queue, passive=True).method.message_count == 3


def test_alternate_exchange_policy_takes_unroutable_messages(mgmt, ch, names):
    exchange, ae, caught = names("x"), names("ae"), names("caught")
    ch.exchange_declare(ae, exchange_type="fanout")
    ch.queue_declare(caught)
    ch.queue_bind(caught, ae)
    ch.exchange_declare(exchange, exchange_type="direct")
    # A queues-only policy does not touch exchanges.
    mgmt.put_policy(names("queues"), only(exchange), {"alternate-exchange": ae}, apply_to="queues")
    time.sleep(0.2)
    ch.basic_publish(exchange, "nowhere", b"lost")
    mgmt.put_policy(names("exchanges"), only(exchange), {"alternate-exchange": ae}, apply_to="exchanges")
    time.sleep(0.2)
    ch.basic_publish(exchange, "nowhere", b"caught")
    assert poll_get(ch, caught)[2] == b"caught"
    assert ch.queue_declare(caught, passive=True).method.message_count == 0


def test_alternate_exchange_argument_wins_over_the_policy(mgmt, ch, names):
    exchange = names("x")
    by_arg, by_policy = names("arg"), names("policy")
    for ae in (by_arg, by_policy):
        ch.exchange_declare(ae, exchange_type="fanout")
        ch.queue_declare(ae)
        ch.queue_bind(ae, ae)
    ch.exchange_declare(exchange, exchange_type="direct", arguments={"alternate-exchange": by_arg})
    mgmt.put_policy(names("p"), only(exchange), {"alternate-exchange": by_policy}, apply_to="all")
    time.sleep(0.2)
    ch.basic_publish(exchange, "nowhere", b"m")
    assert poll_get(ch, by_arg)[2] == b"m"
    assert ch.queue_declare(by_policy, passive=True).method.message_count == 0


def test_clearing_a_policy_restores_the_arguments(mgmt, ch, names):
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-max-length": 4})
    policy = names("p")
    mgmt.put_policy(policy, only(queue), {"max-length": 1})
    time.sleep(0.2)
    for i in range(3):
        ch.basic_publish("", queue, str(i).encode())
    assert wait_for_count(ch, queue, 1) == 1
    assert mgmt.clear_policy(policy) == 204
    time.sleep(0.2)
    for i in range(6):
        ch.basic_publish("", queue, str(i).encode())
    assert wait_for_count(ch, queue, 4) == 4


def test_redeclare_compares_arguments_only_not_the_policy(mgmt, conn, names):
    ch = conn.channel()
    queue = names("q")
    ch.queue_declare(queue, arguments={"x-max-length": 10})
    mgmt.put_policy(names("p"), only(queue), {"max-length": 2, "message-ttl": 1000})
    time.sleep(0.2)
    ch.queue_declare(queue, arguments={"x-max-length": 10})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(queue, arguments={"x-max-length": 2})
    assert info.value.reply_code == 406
    assert "inequivalent arg 'x-max-length'" in info.value.reply_text


# --- the CLI ----------------------------------------------------------------------------------


def warren_policy(broker, *args, url=None, password="guest"):
    cmd = [str(warren_bin()), "policy", *args, "--url", url or broker.management_url,
           "--user", "guest", "--password", password]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture
def cli(broker, mgmt):
    if not warren_bin().exists():
        pytest.skip("the warren binary is not built")
    return lambda *args, **kw: warren_policy(broker, *args, **kw)


def test_cli_sets_lists_and_clears_a_policy(cli, mgmt, confirming, names):
    queue, name = names("q"), names("cli")
    mgmt.created.add(name)
    done = cli("set", name, only(queue), '{"max-length": 1, "overflow": "reject-publish"}',
               "--priority", "3", "--apply-to", "queues")
    assert done.returncode == 0, done.stderr
    assert name in done.stdout
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    row = next(line.split("\t") for line in listed.stdout.splitlines() if f"\t{name}\t" in line)
    assert row == ["/", name, only(queue), "queues", '{"max-length":1,"overflow":"reject-publish"}', "3"]
    confirming.queue_declare(queue)
    assert publish_all(confirming, queue, [b"a", b"b"]) == 1
    cleared = cli("clear", name)
    assert cleared.returncode == 0, cleared.stderr
    assert name not in cli("list", "--vhost", "/").stdout
    again = cli("clear", name)
    assert again.returncode != 0 and f"no policy '{name}'" in again.stderr


def test_cli_reports_a_refused_policy_with_the_reason(cli, names):
    refused = cli("set", names("bad"), "x", '{"max-length": -1}')
    assert refused.returncode != 0
    assert "refused the policy" in refused.stderr and "-1 is not a valid maximum length" in refused.stderr
    not_json = cli("set", names("bad"), "x", "{max-length: 1}")
    assert not_json.returncode != 0 and "not JSON" in not_json.stderr


def test_cli_reports_refused_credentials_and_an_unreachable_broker(cli):
    denied = cli("list", password="wrong")
    assert denied.returncode != 0 and "refused the credentials of user 'guest'" in denied.stderr
    # A port nothing listens on: bind one, note it, close it.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    down = cli("list", url=f"http://127.0.0.1:{port}")
    assert down.returncode != 0 and "cannot reach the management API" in down.stderr


# --- durability ---------------------------------------------------------------------------------


@pytest.mark.warren_only
def test_policies_survive_a_restart_and_apply_to_recovered_queues(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = start_warren_broker(data_dir=data_dir)
    try:
        m = Management(first.management_url)
        m.put_policy("limit", "^restart\\.", {"max-length": 2}, priority=4)
        conn = first.connect()
        ch = conn.channel()
        ch.queue_declare("restart.q", durable=True)
        conn.close()
    finally:
        assert first.warren.stop() == 0
    second = start_warren_broker(data_dir=data_dir)
    try:
        m = Management(second.management_url)
        status, shown = m.call("GET", "/api/policies/%2F/limit")
        assert status == 200
        assert shown == {"vhost": "/", "name": "limit", "pattern": "^restart\\.", "apply-to": "queues",
                         "definition": {"max-length": 2}, "priority": 4}
        conn = second.connect()
        ch = conn.channel()
        for i in range(4):
            ch.basic_publish("", "restart.q", str(i).encode(), pika.BasicProperties(delivery_mode=2))
        assert wait_for_count(ch, "restart.q", 2) == 2
        ch.queue_declare("restart.new")
        for i in range(4):
            ch.basic_publish("", "restart.new", str(i).encode())
        assert wait_for_count(ch, "restart.new", 2) == 2
        conn.close()
        assert m.clear_policy("limit") == 204
    finally:
        assert second.warren.stop() == 0
    third = start_warren_broker(data_dir=data_dir)
    try:
        assert Management(third.management_url).call("GET", "/api/policies") == (200, [])
    finally:
        assert third.warren.stop() == 0
        third.warren.cleanup()
