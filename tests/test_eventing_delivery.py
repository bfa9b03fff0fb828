"""The broker process against real loopback subscribers: retries, backoff, dead letters,
replies and TTL, isolation between Triggers, subscriber resolution."""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from eventing_support import Reply, Subscriber, send, trigger, wait_for, write_spec

from eventing.broker import BrokerHandle, launch


@pytest.fixture
def broker(tmp_path: Path) -> Iterator:
    """`broker(triggers, delivery=None)` starts a broker process for this test."""
    handles: list[BrokerHandle] = []

    def start(triggers, delivery=None, **extra) -> BrokerHandle:
        spec = write_spec(tmp_path / "spec.yaml", triggers, delivery, **extra)
        handle = launch(tmp_path / "data", spec)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def dead_letter_sink() -> Subscriber:
    return Subscriber()


def test_delivers_in_binary_mode_with_arrival_time_and_ttl(broker):
    with Subscriber() as sub:
        b = broker([trigger("all", sub.url)])
        assert send(b.url, "e1", data={"x": 1}, subject="a b").status_code == 202
        (got,) = wait_for(lambda: sub.of("e1"), what="delivery")
        assert got.headers["ce-knativebrokerttl"] == "255"
        assert got.headers["ce-knativearrivaltime"].endswith("Z")
        assert got.headers["ce-subject"] == "a%20b"  # percent-encoded per the HTTP binding
        assert got.headers["content-type"] == "application/json"
        assert got.json() == {"x": 1}


def test_retries_retryable_codes_with_linear_backoff_then_succeeds(broker):
    codes = {1: 503, 2: 429, 3: 404}

    def flaky(req, n):
        return Reply(codes.get(n, 202))

    with Subscriber(flaky) as sub, dead_letter_sink() as dls:
        delivery = {
            "retry": 4,
            "backoffPolicy": "linear",
            "backoffDelay": "PT0.1S",
            "deadLetterSink": {"uri": dls.url},
        }
        b = broker([trigger("t", sub.url)], delivery)
        send(b.url, "e1")
        wait_for(lambda: len(sub.of("e1")) == 4, what="4 attempts")
        times = [r.at for r in sub.of("e1")]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # linear: 0.1 s, 0.2 s, 0.3 s before retries 1, 2, 3
        for gap, want in zip(gaps, (0.1, 0.2, 0.3), strict=True):
            assert gap >= want * 0.9
        time.sleep(0.3)
        assert len(sub.of("e1")) == 4  # delivered: no more attempts
        assert dls.received == []


def test_exponential_backoff_then_dead_letter_with_error_extensions(broker):
    long_body = b"boom " * 400  # 2000 bytes: knativeerrordata keeps the first 1024

    with Subscriber(lambda req, n: Reply(500, long_body)) as sub, dead_letter_sink() as dls:
        delivery = {
            "retry": 2,
            "backoffPolicy": "exponential",
            "backoffDelay": "PT0.05S",
            "deadLetterSink": {"uri": dls.url},
        }
        b = broker([trigger("t", sub.url)], delivery)
        send(b.url, "e1", data={"keep": "me"})
        (dead,) = wait_for(lambda: dls.of("e1"), what="dead letter")
        times = [r.at for r in sub.of("e1")]
        assert len(times) == 3  # first try + 2 retries
        assert times[1] - times[0] >= 0.1 * 0.9  # 0.05 * 2^1
        assert times[2] - times[1] >= 0.2 * 0.9  # 0.05 * 2^2
        assert dead.headers["ce-knativeerrordest"] == sub.url
        assert dead.headers["ce-knativeerrorcode"] == "500"
        data = base64.b64decode(dead.headers["ce-knativeerrordata"])
        assert data == long_body[:1024]
        assert dead.json() == {"keep": "me"}  # the original event, data untouched
        status = requests.get(f"{b.base_url}/.knflow/triggers/t").json()["status"]["knflow"]
        assert status["deadLettered"] == 1 and status["retries"] == 2


NON_RETRYABLE = [400, 401, 403, 413, 422]
RETRYABLE = [404, 408, 409, 429, 500, 502, 503]


def test_only_knatives_retryable_codes_are_retried(broker):
    """One Trigger per status code; each subscriber path answers its code once, then 202."""

    def by_path(req, n):
        code = int(req.path.strip("/"))
        return Reply(code if n == 1 else 202, b"cannot process this")

    with Subscriber(by_path) as sub, dead_letter_sink() as dls:
        triggers = [
            trigger(f"c{c}", f"{sub.url}{c}", f"code.{c}") for c in NON_RETRYABLE + RETRYABLE
        ]
        delivery = {"retry": 3, "backoffDelay": "PT0.01S", "deadLetterSink": {"uri": dls.url}}
        b = broker(triggers, delivery)
        for code in NON_RETRYABLE + RETRYABLE:
            send(b.url, f"e{code}", type_=f"code.{code}")
        wait_for(lambda: len(dls.received) == len(NON_RETRYABLE), what="dead letters")
        wait_for(
            lambda: len(sub.received) == len(NON_RETRYABLE) + 2 * len(RETRYABLE), what="retries"
        )
        for code in NON_RETRYABLE:
            assert len(sub.of(f"e{code}")) == 1, code  # never retried...
            (dead,) = dls.of(f"e{code}")  # ...but dead-lettered with the reason
            assert dead.headers["ce-knativeerrorcode"] == str(code)
            assert base64.b64decode(dead.headers["ce-knativeerrordata"]) == b"cannot process this"
        for code in RETRYABLE:
            assert len(sub.of(f"e{code}")) == 2, code  # retried once, then accepted
        time.sleep(0.2)
        assert len(dls.received) == len(NON_RETRYABLE)


def test_timeout_and_connection_errors_are_retried_then_dead_lettered(broker):
    with Subscriber(lambda req, n: Reply(202, delay=1.0)) as slow, dead_letter_sink() as dls:
        triggers = [
            trigger("slow", slow.url, delivery={"timeout": "PT0.2S"}),
            trigger("gone", "http://127.0.0.1:9/"),  # nothing listens on the discard port
        ]
        delivery = {"retry": 1, "backoffDelay": "PT0.05S", "deadLetterSink": {"uri": dls.url}}
        b = broker(triggers, delivery)
        send(b.url, "e1")
        wait_for(lambda: len(dls.of("e1")) == 2, what="two dead letters")
        assert len(slow.of("e1")) == 2
        by_dest = {r.headers["ce-knativeerrordest"]: r for r in dls.of("e1")}
        assert set(by_dest) == {slow.url, "http://127.0.0.1:9/"}
        for dead in by_dest.values():
            assert "ce-knativeerrorcode" not in dead.headers  # no response, no code
        reason = base64.b64decode(by_dest[slow.url].headers["ce-knativeerrordata"]).decode()
        assert "timed out" in reason


def test_trigger_delivery_overrides_the_brokers(broker):
    with Subscriber(lambda req, n: Reply(503)) as sub, dead_letter_sink() as dls:
        triggers = [
            trigger("default", sub.url, "a"),
            trigger("once", sub.url, "b", delivery={"retry": 0}),
        ]
        delivery = {"retry": 2, "backoffDelay": "PT0.01S", "deadLetterSink": {"uri": dls.url}}
        b = broker(triggers, delivery)
        send(b.url, "ea", type_="a")
        send(b.url, "eb", type_="b")
        wait_for(lambda: dls.of("ea") and dls.of("eb"), what="dead letters")
        assert len(sub.of("ea")) == 3
        assert len(sub.of("eb")) == 1


def test_a_slow_subscriber_never_delays_another_trigger(broker):
    with (
        Subscriber(lambda req, n: Reply(202, delay=3)) as slow,
        Subscriber() as fast,
    ):
        b = broker([trigger("slow", slow.url), trigger("fast", fast.url)])
        started = time.monotonic()
        for i in range(40):
            send(b.url, f"e{i}")
        wait_for(lambda: len(fast.ids()) == 40, timeout=2.5, what="fast deliveries")
        assert time.monotonic() - started < 3  # none of them waited for the slow subscriber
        assert not any(r.answered for r in slow.received)  # the slow one is still busy


def test_a_reply_reenters_the_broker_with_a_lower_ttl(broker):
    reply_headers = {
        "ce-specversion": "1.0",
        "ce-id": "reply-1",
        "ce-source": "/stage",
        "ce-type": "test.reply",
        "content-type": "application/json",
    }

    def stage(req, n):
        if req.type == "test.event":
            return Reply(200, b'{"answer": 42}', reply_headers)
        return Reply(202, b"accepted, no event here")

    with Subscriber(stage) as sub, Subscriber() as downstream:
        triggers = [
            trigger("stage", sub.url, "test.event"),
            trigger("next", downstream.url, "test.reply"),
        ]
        b = broker(triggers)
        send(b.url, "e1")
        (reply,) = wait_for(lambda: downstream.of("reply-1"), what="the reply downstream")
        assert reply.headers["ce-knativebrokerttl"] == "254"
        assert reply.json() == {"answer": 42}
        time.sleep(0.3)
        # the 202 with a body that is not an event is an acknowledgement, not a reply
        assert [r.id for r in downstream.received] == ["reply-1"]


def test_ttl_stops_a_reply_loop(broker):
    def echo(req, n):  # replies with an event of the same type: a loop
        headers = {k: v for k, v in req.headers.items() if k.startswith("ce-")}
        headers["ce-id"] = f"{req.id}+"
        headers["content-type"] = "application/json"
        return Reply(200, b"{}", headers)

    with Subscriber(echo) as sub:
        b = broker([trigger("loop", sub.url, "test.event")])
        send(b.url, "e", knativebrokerttl="5")
        wait_for(lambda: len(sub.received) == 5, what="5 passes")
        time.sleep(0.5)
        assert [r.headers["ce-knativebrokerttl"] for r in sub.received] == ["5", "4", "3", "2", "1"]
        counts = requests.get(f"{b.base_url}/.knflow/broker").json()["status"]["knflow"]
        assert counts["dropped"] == 1 and counts["accepted"] == 5


def test_ref_subscribers_resolve_through_subscribers_json_when_it_appears(broker, tmp_path):
    with Subscriber() as sub:
        b = broker(
            [{"name": "svc", "subscriber": {"ref": {"name": "echo"}}}],
            {"retry": 10, "backoffDelay": "PT0.05S", "backoffPolicy": "linear"},
            services=[{"name": "echo", "function": "deadletter"}],
        )
        send(b.url, "e1")
        time.sleep(0.3)
        assert sub.received == []  # unresolvable: retried like a connection error
        state = requests.get(f"{b.base_url}/.knflow/triggers/svc").json()["status"]
        assert state["subscriberUri"] == ""
        (tmp_path / "data/.knflow/broker/subscribers.json").write_text(
            json.dumps({"echo": sub.url})
        )
        wait_for(lambda: sub.of("e1"), what="delivery once resolvable")


def test_batch_mode_ingress_accepts_every_event(broker):
    with Subscriber() as sub:
        b = broker([trigger("t", sub.url)])
        batch = [
            {"specversion": "1.0", "id": f"b{i}", "source": "/t", "type": "test.event", "data": i}
            for i in range(3)
        ]
        resp = requests.post(
            b.url, json=batch, headers={"content-type": "application/cloudevents-batch+json"}
        )
        assert resp.status_code == 202
        wait_for(lambda: sorted(sub.ids()) == ["b0", "b1", "b2"], what="3 deliveries")


def test_stop_is_prompt_even_with_a_follower_streaming(broker):
    b = broker([trigger("t", "http://127.0.0.1:9/")])
    with requests.get(f"{b.base_url}/.knflow/events?follow=1", stream=True, timeout=10) as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        started = time.monotonic()
        b.stop(timeout=20)
        assert time.monotonic() - started < 5
        assert b.proc.returncode == 0  # it shut down by itself, not killed
