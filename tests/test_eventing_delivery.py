"""The broker process against real loopback subscribers: retries, backoff, dead letters,
replies and TTL, isolation between Triggers, subscriber resolution.

One broker process serves the module: each test has its own event types, Triggers and
subscriber paths (declared in TRIGGERS), and tells the shared subscriber how to answer on them.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from pathlib import Path

import pytest
import requests
from eventing_support import Reply, Subscriber, send, trigger, wait_for, write_spec

from eventing.broker import launch

NON_RETRYABLE = [400, 401, 403, 413, 422]
RETRYABLE = [404, 408, 409, 429, 500, 502, 503]
FAST = {"backoffDelay": "PT0.01S"}


def triggers(url: str) -> list[dict]:
    """Every Trigger the tests below use; `t.<name>` events go to path `/<name>`.

    All of them dead-letter to `dls` through the broker's delivery (Trigger over Broker).
    """

    def t(name: str, **extra) -> dict:
        return trigger(name, url + name, f"t.{name}", **extra)

    return [
        t("plain"),
        t("linear", delivery={"retry": 4, "backoffPolicy": "linear", "backoffDelay": "PT0.1S"}),
        t("exp", delivery={"retry": 2, "backoffPolicy": "exponential", "backoffDelay": "PT0.05S"}),
        *(t(f"code{c}", delivery={"retry": 3, **FAST}) for c in NON_RETRYABLE + RETRYABLE),
        t("slow", delivery={"retry": 1, "timeout": "PT0.2S", **FAST}),
        trigger("gone", "http://127.0.0.1:9/", "t.slow", delivery={"retry": 1, **FAST}),
        t("broker-default"),  # the broker's delivery: retry 2
        t("no-retry", delivery={"retry": 0}),
        trigger("iso-slow", url + "iso-slow", "t.iso", delivery={"timeout": "PT30S"}),
        trigger("iso-fast", url + "iso-fast", "t.iso"),
        t("stage"),
        t("reply"),
        t("loop"),
        {
            "name": "by-ref",
            "filter": {"attributes": {"type": "t.ref"}},
            "subscriber": {"ref": {"name": "echo"}},
            "delivery": {"retry": 20, "backoffPolicy": "linear", "backoffDelay": "PT0.05S"},
        },
        {
            "name": "late",
            "filter": {"attributes": {"type": "t.late"}},
            "subscriber": {"ref": {"name": "late"}},
            "delivery": {"retry": 1, **FAST, "deadLetterSink": {"ref": {"name": "late-dls"}}},
        },
    ]


class Router:
    """The module's one subscriber: `answer[path] = behaviour` per test, default 202."""

    def __init__(self) -> None:
        self.answer: dict[str, object] = {}
        self.sub = Subscriber(self.route)
        self.dls = Subscriber()

    def route(self, req, n):
        behaviour = self.answer.get(req.path.strip("/"))
        return behaviour(req, n) if behaviour else Reply(202)

    def at(self, path: str, event_id: str | None = None):
        return [r for r in self.sub.received if r.path == f"/{path}" and event_id in (None, r.id)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("delivery")
    router = Router()
    spec = write_spec(
        tmp / "spec.yaml",
        triggers(router.sub.url),
        {"retry": 2, **FAST, "deadLetterSink": {"uri": router.dls.url}},
        services=[
            {"name": name, "function": "deadletter"} for name in ("echo", "late", "late-dls")
        ],
    )
    handle = launch(tmp / "data", spec)
    try:
        yield router, handle, tmp / "data"
    finally:
        handle.stop()
        router.sub.close()
        router.dls.close()


def trigger_status(handle, name: str) -> dict:
    return requests.get(f"{handle.base_url}/.knflow/triggers/{name}").json()["status"]


def test_delivers_in_binary_mode_with_arrival_time_and_ttl(env):
    router, b, _ = env
    assert send(b.url, "bin-1", "t.plain", data={"x": 1}, subject="a b").status_code == 202
    (got,) = wait_for(lambda: router.at("plain", "bin-1"), what="delivery")
    assert got.headers["ce-knativebrokerttl"] == "255"
    assert got.headers["ce-knativearrivaltime"].endswith("Z")
    assert got.headers["ce-subject"] == "a%20b"  # percent-encoded per the HTTP binding
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {"x": 1}


def test_retries_retryable_codes_with_linear_backoff_then_succeeds(env):
    router, b, _ = env
    codes = {1: 503, 2: 429, 3: 404}
    router.answer["linear"] = lambda req, n: Reply(codes.get(n, 202))
    send(b.url, "lin-1", "t.linear")
    wait_for(lambda: len(router.at("linear", "lin-1")) == 4, what="4 attempts")
    times = [r.at for r in router.at("linear", "lin-1")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, want in zip(gaps, (0.1, 0.2, 0.3), strict=True):  # linear: 0.1 s * retry number
        assert gap >= want * 0.9
    time.sleep(0.3)
    assert len(router.at("linear", "lin-1")) == 4  # delivered: no more attempts
    assert router.dls.of("lin-1") == []


def test_exponential_backoff_then_dead_letter_with_error_extensions(env):
    router, b, _ = env
    long_body = b"boom " * 400  # 2000 bytes: knativeerrordata keeps the first 1024
    router.answer["exp"] = lambda req, n: Reply(500, long_body)
    send(b.url, "exp-1", "t.exp", data={"keep": "me"})
    (dead,) = wait_for(lambda: router.dls.of("exp-1"), what="dead letter")
    times = [r.at for r in router.at("exp", "exp-1")]
    assert len(times) == 3  # first try + 2 retries
    assert times[1] - times[0] >= 0.1 * 0.9  # 0.05 * 2^1
    assert times[2] - times[1] >= 0.2 * 0.9  # 0.05 * 2^2
    assert dead.headers["ce-knativeerrordest"] == router.sub.url + "exp"
    assert dead.headers["ce-knativeerrorcode"] == "500"
    assert base64.b64decode(dead.headers["ce-knativeerrordata"]) == long_body[:1024]
    assert dead.json() == {"keep": "me"}  # the original event, data untouched
    status = trigger_status(b, "exp")["knflow"]
    assert status["deadLettered"] == 1 and status["retries"] == 2


def test_only_knatives_retryable_codes_are_retried(env):
    """Each code's path answers it once, then 202."""
    router, b, _ = env
    for code in NON_RETRYABLE + RETRYABLE:
        router.answer[f"code{code}"] = lambda req, n, c=code: Reply(
            c if n == 1 else 202, b"cannot process this"
        )
        send(b.url, f"code-{code}", f"t.code{code}")
    wait_for(lambda: all(router.dls.of(f"code-{c}") for c in NON_RETRYABLE), what="dead letters")
    wait_for(lambda: all(len(router.at(f"code{c}")) == 2 for c in RETRYABLE), what="one retry each")
    for code in NON_RETRYABLE:
        assert len(router.at(f"code{code}")) == 1, code  # never retried...
        (dead,) = router.dls.of(f"code-{code}")  # ...but dead-lettered with the reason
        assert dead.headers["ce-knativeerrorcode"] == str(code)
        assert base64.b64decode(dead.headers["ce-knativeerrordata"]) == b"cannot process this"
    time.sleep(0.2)
    assert not any(router.dls.of(f"code-{c}") for c in RETRYABLE)


def test_timeout_and_connection_errors_are_retried_then_dead_lettered(env):
    router, b, _ = env
    router.answer["slow"] = lambda req, n: Reply(202, delay=1.0)
    send(b.url, "slow-1", "t.slow")
    wait_for(lambda: len(router.dls.of("slow-1")) == 2, what="two dead letters")
    assert len(router.at("slow", "slow-1")) == 2
    by_dest = {r.headers["ce-knativeerrordest"]: r for r in router.dls.of("slow-1")}
    assert set(by_dest) == {router.sub.url + "slow", "http://127.0.0.1:9/"}
    for dead in by_dest.values():
        assert "ce-knativeerrorcode" not in dead.headers  # no response, no code
    reason = base64.b64decode(by_dest[router.sub.url + "slow"].headers["ce-knativeerrordata"])
    assert b"timed out" in reason


def test_trigger_delivery_overrides_the_brokers(env):
    router, b, _ = env
    router.answer["broker-default"] = router.answer["no-retry"] = lambda req, n: Reply(503)
    send(b.url, "ovr-a", "t.broker-default")
    send(b.url, "ovr-b", "t.no-retry")
    wait_for(lambda: router.dls.of("ovr-a") and router.dls.of("ovr-b"), what="dead letters")
    assert len(router.at("broker-default", "ovr-a")) == 3  # the broker's retry: 2
    assert len(router.at("no-retry", "ovr-b")) == 1


def test_a_slow_subscriber_never_delays_another_trigger(env):
    router, b, _ = env
    router.answer["iso-slow"] = lambda req, n: Reply(202, delay=10)
    for i in range(40):
        send(b.url, f"iso-{i}", "t.iso")
    wait_for(lambda: len(router.at("iso-fast")) == 40, timeout=8, what="fast deliveries")
    # every fast delivery happened while the slow subscriber still held its first requests
    assert not any(r.answered for r in router.at("iso-slow"))
    assert len(router.at("iso-slow")) > 1  # and the slow one is called concurrently too


def test_a_reply_reenters_the_broker_with_a_lower_ttl(env):
    router, b, _ = env
    reply_headers = {
        "ce-specversion": "1.0",
        "ce-id": "reply-1",
        "ce-source": "/stage",
        "ce-type": "t.reply",
        "content-type": "application/json",
    }
    router.answer["stage"] = lambda req, n: (
        Reply(200, b'{"answer": 42}', reply_headers)
        if req.id == "stage-1"
        else Reply(202, b"accepted, no event here")
    )
    send(b.url, "stage-1", "t.stage")
    send(b.url, "stage-2", "t.stage")
    (reply,) = wait_for(lambda: router.at("reply", "reply-1"), what="the reply downstream")
    assert reply.headers["ce-knativebrokerttl"] == "254"
    assert reply.json() == {"answer": 42}
    wait_for(lambda: router.at("stage", "stage-2"), what="the second stage event")
    time.sleep(0.3)
    # a 202 with a body that is not an event is an acknowledgement, not a reply
    assert [r.id for r in router.at("reply")] == ["reply-1"]


def test_ttl_stops_a_reply_loop(env):
    router, b, _ = env

    def echo(req, n):  # replies with an event of the same type: a loop
        headers = {k: v for k, v in req.headers.items() if k.startswith("ce-")}
        headers["ce-id"] = f"{req.id}+"
        headers["content-type"] = "application/json"
        return Reply(200, b"{}", headers)

    router.answer["loop"] = echo
    before = requests.get(f"{b.base_url}/.knflow/broker").json()["status"]["knflow"]
    send(b.url, "loop", "t.loop", knativebrokerttl="5")
    wait_for(lambda: len(router.at("loop")) == 5, what="5 passes")
    time.sleep(0.5)
    assert [r.headers["ce-knativebrokerttl"] for r in router.at("loop")] == list("54321")
    after = requests.get(f"{b.base_url}/.knflow/broker").json()["status"]["knflow"]
    assert after["dropped"] - before["dropped"] == 1
    assert after["accepted"] - before["accepted"] == 5


def test_ref_subscribers_resolve_through_subscribers_json_when_it_appears(env):
    router, b, data = env
    send(b.url, "ref-1", "t.ref")
    time.sleep(0.3)
    assert router.at("echo") == []  # unresolvable: retried like a connection error
    assert trigger_status(b, "by-ref")["subscriberUri"] == ""
    add_subscriber(data, "echo", router.sub.url + "echo")
    wait_for(lambda: router.at("echo", "ref-1"), what="delivery once resolvable")
    assert trigger_status(b, "by-ref")["subscriberUri"] == router.sub.url + "echo"


def add_subscriber(data: Path, name: str, url: str) -> None:
    """What `knflow up` does once a service listens: add it to subscribers.json."""
    path = data / ".knflow/broker/subscribers.json"
    table = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**table, name: url}))


def test_nothing_resolvable_yet_waits_for_whichever_comes_first(env):
    """Subscriber and dead-letter sink both without an address (services starting): the event
    is kept, and goes to the subscriber once it has one, not to the dead-letter sink."""
    router, b, data = env
    send(b.url, "late-1", "t.late")
    wait_for(lambda: trigger_status(b, "late")["knflow"]["retries"] >= 2, what="retries")
    add_subscriber(data, "late", router.sub.url + "late")
    wait_for(lambda: router.at("late", "late-1"), timeout=15, what="delivery to the subscriber")
    add_subscriber(data, "late-dls", router.dls.url + "late-dls")
    time.sleep(0.3)
    assert router.dls.of("late-1") == []


def test_batch_mode_ingress_accepts_every_event(env):
    router, b, _ = env
    batch = [
        {"specversion": "1.0", "id": f"batch-{i}", "source": "/t", "type": "t.plain", "data": i}
        for i in range(3)
    ]
    resp = requests.post(
        b.url, json=batch, headers={"content-type": "application/cloudevents-batch+json"}
    )
    assert resp.status_code == 202
    wait_for(
        lambda: (
            sorted(r.id for r in router.at("plain") if r.id.startswith("batch-"))
            == ["batch-0", "batch-1", "batch-2"]
        ),
        what="3 deliveries",
    )


def test_stop_is_prompt_even_with_a_follower_streaming(tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", [trigger("t", "http://127.0.0.1:9/")])
    b = launch(tmp_path / "data", spec)
    try:
        with requests.get(f"{b.base_url}/.knflow/events?follow=1", stream=True, timeout=10) as s:
            assert s.headers["content-type"] == "text/event-stream"
            started = time.monotonic()
            b.stop(timeout=20)
            assert time.monotonic() - started < 5
            assert b.proc.returncode == 0  # it shut down by itself, not killed
    finally:
        b.stop()
